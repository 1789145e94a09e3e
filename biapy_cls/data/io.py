"""Read image files into numpy arrays with a known axis order.

2D images come out as (y, x, c), 3D volumes as (z, y, x, c). How axes are recognised:

- 2D: a 2-axis array is (y, x). A 3-axis array is (y, x, c) when its last axis equals the channel
  count of DATA.PATCH_SIZE, (c, y, x) when its first axis does; otherwise an axis of at most 4 that is
  smaller than the other two is taken as channels. Leading axes of length 1 are dropped.
- 3D: a 3-axis array is (z, y, x). A 4-axis array is (z, y, x, c), (z, c, y, x) (ImageJ) or
  (c, z, y, x), tried in that order, matching the channel count of DATA.PATCH_SIZE.
- Anything else is an error that names the file and its shape.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from biapy_cls.errors import DataError

log = logging.getLogger("biapy_cls")

# Divisor that maps a dtype's full range to [0, 1] ("div" normalization); floats are taken as they are.
INTEGER_RANGES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(bool): 1.0}


def dtype_range(dtype: np.dtype) -> float:
    dtype = np.dtype(dtype)
    if dtype in INTEGER_RANGES:
        return INTEGER_RANGES[dtype]
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return 1.0


NIFTI_SUFFIXES = (".nii", ".nii.gz")


def require_readers(paths: list[Path], where: str) -> None:
    """Fail before anything is written when a file needs an optional package that is not installed."""
    nifti = next((p for p in paths if p.name.lower().endswith(NIFTI_SUFFIXES)), None)
    if nifti is not None and importlib.util.find_spec("nibabel") is None:
        raise DataError(
            f"{where} holds NIfTI volumes (e.g. '{nifti}'), which need the package 'nibabel': "
            "pip install 'biapy-cls[nifti]' (or pip install nibabel), then run again."
        )


def read_file(path: Path) -> np.ndarray:
    """Decode one file as stored, naming the file if it cannot be read."""
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
        elif name.endswith((".tif", ".tiff")):
            import tifffile

            arr = tifffile.imread(path)
        elif name.endswith(NIFTI_SUFFIXES):
            try:
                import nibabel
            except ImportError as err:
                raise DataError(
                    f"'{path}' is a NIfTI file, which needs the package 'nibabel': pip install 'biapy-cls[nifti]'"
                ) from err
            # NIfTI stores (x, y, z[, c]); we work in (z, y, x[, c]).
            arr = np.asarray(nibabel.load(str(path)).dataobj)
            arr = np.swapaxes(arr, 0, 2) if arr.ndim >= 3 else arr
        elif name.endswith((".png", ".jpg", ".jpeg", ".bmp")):
            arr = _read_with_pillow(path)
        else:
            import imageio.v3 as iio

            arr = iio.imread(path)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - every decoder has its own exception types
        raise DataError(f"Cannot read the image '{path}': {what_is_wrong(path, err)} replace or remove it.") from err
    arr = np.asarray(arr)
    if arr.dtype == object or arr.size == 0:
        raise DataError(f"The file '{path}' holds no pixel data (shape {arr.shape}, dtype {arr.dtype}): remove it.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"The image '{path}' has complex values ({arr.dtype}); convert it to a real-valued image.")
    return arr


def what_is_wrong(path: Path, err: Exception) -> str:
    """The decoder's complaint, or what the file plainly is when that says more (an empty file, a text file,
    an image larger than Pillow decodes: not corrupt, and worth saying so)."""
    from PIL import Image

    if isinstance(err, Image.DecompressionBombError):
        return (f"its header declares a huge image ({err}), which Pillow refuses to decode (it may be a "
                "'decompression bomb', a small file that expands to gigabytes). If it is a real image, crop or "
                "downscale it to the size you classify at (e.g. tiles saved as TIFF); otherwise")
    if "allow_pickle" in str(err):
        return ("it holds Python objects (a pickled array), which are never loaded since unpickling can run code: "
                "save the pixels as a numeric array (np.save(f, np.asarray(pixels, dtype=np.float32))), or")
    try:
        with path.open("rb") as file:
            head = file.read(64)
    except OSError:
        head = None
    if head == b"":
        return "it is an empty file (0 bytes), e.g. a copy or download that did not finish:"
    if head and head.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the image itself: fetch the images with 'git lfs pull', or"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"it is a text file, not an image (it starts with {head[:40].decode()!r}):"
    return f"{type(err).__name__}: {err}. The file is corrupt, truncated or not an image:"


def check_array(arr, name: Path) -> np.ndarray:
    """An in-memory image with the checks read_file makes on a file's pixels."""
    arr = np.asarray(arr)
    if arr.dtype == object or arr.size == 0 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{name} holds no pixel data (shape {arr.shape}, dtype {arr.dtype}): give a numeric array.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{name} has complex values ({arr.dtype}); convert it to a real-valued image.")
    return arr


# EXIF orientation -> the transposition that shows the image as viewers do (Pillow's ImageOps.exif_transpose).
# Values of Image.Transpose: 0 FLIP_LEFT_RIGHT, 1 FLIP_TOP_BOTTOM, 2 ROTATE_90, 3 ROTATE_180, 4 ROTATE_270,
# 5 TRANSPOSE, 6 TRANSVERSE.
ROTATIONS = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}


def _read_with_pillow(path: Path) -> np.ndarray:
    """PNG/JPEG/BMP through Pillow directly: 3x faster per small image than imageio.v3.imread, whose plugin
    lookup dominates lazy loading (bench/). Same conversions as imageio: palettes applied, 16-bit PNG as uint16;
    an EXIF orientation is applied, so the pixels are oriented as every image viewer shows them."""
    from PIL import Image

    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)  # an EXIF orientation, as camera photos carry
        if image.mode == "P":
            # A palette of greys only (ImageJ's indexed 8-bit, an inverted LUT) is a grey image: read as the
            # greys shown, one channel, not as RGB, which made a grey data set "mix channel counts".
            image = image.convert("L" if _grey_palette(image) else image.palette.mode)
        elif image.format == "PNG" and image.mode == "I":
            image = image.convert("I;16")
        elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV"):  # print/video colour spaces: 4 "channels" of CMYK
            image = image.convert("RGB")  # are not RGB + alpha; read the colours as shown
        if orientation in ROTATIONS:
            image = image.transpose(ROTATIONS[orientation])
        return np.array(image)  # a writable copy: torch warns about wrapping read-only arrays (lazy loading)


def _grey_palette(image) -> bool:
    """Whether every colour a palette image uses is a grey (r == g == b) and none is transparent."""
    if "transparency" in image.info:
        return False
    palette = np.asarray(image.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    used = np.unique(np.asarray(image))
    used = used[used < len(palette)]
    colours = palette[used]
    return len(colours) > 0 and bool((colours == colours[:, :1]).all())


def _squeeze_leading(arr: np.ndarray, target_ndim: int) -> np.ndarray:
    while arr.ndim > target_ndim and arr.shape[0] == 1:
        arr = arr[0]
    return arr


def _channel_axis_guess(shape: tuple[int, ...], spatial: int) -> int | None:
    """Index of an axis of at most 4 that is smaller than every other axis, first or last only."""
    for axis in (len(shape) - 1, 0):
        others = [s for i, s in enumerate(shape) if i != axis]
        if shape[axis] <= 4 and all(shape[axis] < s for s in others) and len(others) == spatial:
            return axis
    return None


def to_channels_last(arr: np.ndarray, ndim: str, channels: int, path: Path) -> np.ndarray:
    """(y, x, c) for 2D, (z, y, x, c) for 3D, following the rules in this module's docstring."""
    spatial = 3 if ndim == "3D" else 2
    arr = _squeeze_leading(arr, spatial + 1)
    if arr.ndim == spatial:
        if spatial == 3 and arr.shape[-1] <= 4 and arr.shape[-1] * 4 <= min(arr.shape[:2]):
            raise DataError(
                f"'{path}' has shape {arr.shape}, which looks like a 2D image with {arr.shape[-1]} channels, "
                "but PROBLEM.NDIM is 3D. Use 3D volumes (tif stacks, npy) or set PROBLEM.NDIM 2D."
            )
        return arr[..., None]
    if arr.ndim == spatial + 1:
        candidates = [arr.ndim - 1, 1, 0] if spatial == 3 else [arr.ndim - 1, 0]
        for axis in candidates:
            if arr.shape[axis] == channels:
                return np.moveaxis(arr, axis, -1)
        guess = _channel_axis_guess(arr.shape, spatial)
        if guess is not None:
            return np.moveaxis(arr, guess, -1)
    if ndim == "2D" and arr.ndim == 3:
        raise DataError(
            f"'{path}' has shape {arr.shape}: not a 2D image (y, x) or (y, x, {channels}). If your images are "
            "3D volumes, set PROBLEM.NDIM 3D and a 4-value DATA.PATCH_SIZE (z, y, x, c); otherwise check the "
            "channel count in DATA.PATCH_SIZE."
        )
    if ndim == "3D" and arr.ndim == 2:
        raise DataError(
            f"'{path}' has shape {arr.shape}, a 2D image, but PROBLEM.NDIM is 3D. Use 3D volumes "
            "(z, y, x) or set PROBLEM.NDIM 2D and a 3-value DATA.PATCH_SIZE (y, x, c)."
        )
    want = "(y, x) or (y, x, c)" if spatial == 2 else "(z, y, x) or (z, y, x, c)"
    raise DataError(
        f"'{path}' has shape {arr.shape}, which is not {want} with {channels} channel(s) as DATA.PATCH_SIZE "
        f"says. Check PROBLEM.NDIM ({ndim}) and the channel count in DATA.PATCH_SIZE."
    )


# Formats whose second (grey+alpha) or fourth (RGBA) channel is transparency. In TIFF, .npy and NIfTI files
# every channel is image data (2- and 4-channel microscopy): dropping one as "alpha" lost a channel silently.
ALPHA_FORMATS = (".png", ".bmp", ".gif", ".webp")


def has_alpha_format(path: Path | None) -> bool:
    return path is not None and str(path).lower().endswith(ALPHA_FORMATS)


def accepts_channels(have: int, channels: int, force_rgb: bool, path: Path | None) -> bool:
    """Whether `fit_channels` turns an image of `have` channels (of the file `path`) into `channels`."""
    alpha = has_alpha_format(path)
    return (have == channels or (have == 1 and channels == 3 and force_rgb)
            or (alpha and ((have == 4 and channels == 3) or (have == 2 and channels == 1)
                           or (have == 2 and channels == 3 and force_rgb))))


def fit_channels(arr: np.ndarray, channels: int, force_rgb: bool, path: Path, alpha: bool | None = None) -> np.ndarray:
    """Make the channel count (last axis) equal `channels`: grey->RGB with FORCE_RGB, RGBA->RGB (PNG/BMP only,
    or `alpha` True: an array given to predict(), most often a PNG read by the caller)."""
    have = arr.shape[-1]
    if have == channels:
        return arr
    alpha = has_alpha_format(path) if alpha is None else alpha
    if have == 1 and channels == 3 and force_rgb:
        return np.repeat(arr, 3, axis=-1)
    if have == 4 and channels == 3 and alpha:
        return arr[..., :3]  # RGBA PNGs: the alpha channel carries no image content
    if have == 2 and channels == 1 and alpha:  # grey + alpha
        return arr[..., :1]
    if have == 2 and channels == 3 and force_rgb and alpha:  # grey + alpha -> RGB, as FORCE_RGB does for grey
        return np.repeat(arr[..., :1], 3, axis=-1)
    hint = (" or set DATA.FORCE_RGB True to turn grey (and grey+alpha) images into RGB"
            if (have == 1 or (have == 2 and alpha)) and channels == 3 else "")
    if have in (2, 4) and not alpha:
        hint += (f" (in a {Path(str(path)).suffix or 'array'} image every channel is image data: none is dropped "
                 "as transparency)")
    raise ChannelMismatch(
        f"'{path}' has {have} channel(s) but DATA.PATCH_SIZE asks for {channels}. Set the last value of "
        f"DATA.PATCH_SIZE to {have}{hint}.", path, have, channels
    )


class ChannelMismatch(DataError):
    """An image whose channel count DATA.PATCH_SIZE (or the checkpoint) does not accept."""

    # Defaults: a DataLoader worker re-raises the error in the main process with its message alone.
    def __init__(self, message: str, path: Path | None = None, have: int = 0, channels: int = 0):
        super().__init__(message)
        self.path, self.have, self.channels = path, have, channels


# Files whose non-finite pixels were already reported by this process (lazy loading reads a file every epoch).
_NON_FINITE_REPORTED: set[str] = set()


def standard_dtype(arr: np.ndarray, path: Path) -> np.ndarray:
    """The pixels in a dtype whose value range the rest of the tool knows, values unchanged.

    Integers other than uint8/uint16 (int8..int64, uint32, uint64) are stored as uint8 when their values
    fit 0..255 and uint16 when they fit 0..65535, as BiaPy's `div` divides by 255 or 65535 by the maximum:
    dividing them by their dtype's own maximum (2**63 for int64) left values near 1e-17 that trained to chance.
    Wider or negative integers become float32 as they are, like float images. Non-finite float pixels
    (NaN, +-inf) are replaced by the image's finite minimum (NaN, -inf) or maximum (+inf), with a warning
    naming the file: one NaN pixel otherwise makes every loss and metric NaN.
    """
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        low, high = int(arr.min()), int(arr.max())
        if low >= 0 and high <= 255:
            return arr.astype(np.uint8)
        if low >= 0 and high <= 65535:
            return arr.astype(np.uint16)
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            if not finite.any():
                raise DataError(f"The image '{path}' holds no finite pixel value (all NaN or infinite): remove it.")
            low, high = arr[finite].min(), arr[finite].max()
            bad = int(arr.size - finite.sum())
            if str(path) not in _NON_FINITE_REPORTED:
                _NON_FINITE_REPORTED.add(str(path))
                log.warning(f"'{path}' has {bad} NaN or infinite pixel value(s) of {arr.size}; they are replaced by "
                            f"the image's finite minimum ({low:g}; +inf by the maximum, {high:g}). Fix the file to "
                            "silence this warning.")
            arr = np.nan_to_num(arr, nan=low, posinf=high, neginf=low)
        peak = float(np.abs(arr).max())
        if peak > float(np.finfo(np.float32).max):  # stored and computed as float32: these would become infinite
            raise DataError(
                f"The image '{path}' holds values up to {peak:.3g}, beyond what 32-bit floats hold (3.4e38), which "
                "the images are computed in: they would become infinite and the loss NaN. Rescale the file's values "
                "(e.g. divide by their maximum) or remove it."
            )
    return arr


def read_image(path: Path, ndim: str, channels: int, force_rgb: bool, array: np.ndarray | None = None) -> np.ndarray:
    """One file as (y, x, c) or (z, y, x, c) with exactly `channels` channels, in a standard dtype
    (see `standard_dtype`). `array`: the image already in memory (the Python API's predict); `path` then
    only names it in errors."""
    arr = standard_dtype(read_file(path) if array is None else check_array(array, path), path)
    arr = to_channels_last(arr, ndim, channels, path)
    return fit_channels(arr, channels, force_rgb, path, alpha=True if array is not None else None)
