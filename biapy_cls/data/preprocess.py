"""DATA.PREPROCESS: image operations applied once per image as it is read, before it is fitted to DATA.PATCH_SIZE.

The operations are scikit-image's (as in BiaPy), applied in BiaPy's order: RESIZE, ZOOM, GAUSSIAN_BLUR,
MEDIAN_BLUR, MATCH_HISTOGRAM, CLAHE, CANNY. Images are channels-last, (y, x, c) or (z, y, x, c), and keep
their dtype: integer results are rounded and clipped to the dtype (BiaPy truncates them), results that
scikit-image gives on a 0..1 scale are brought back to the dtype's range. CANNY gives uint8 edges (0/255)
in every channel.

`Preprocessing` is resolved once from the config (with the MATCH_HISTOGRAM reference histogram read from
its folder), saved in the checkpoint through `state_dict`, and restored from it in a test-only run, so
that the test images go through what the model was trained on even when the reference folder is gone.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from yacs.config import CfgNode as CN

from biapy_cls.errors import ConfigError

log = logging.getLogger("biapy_cls")

ORDER = ("RESIZE", "ZOOM", "GAUSSIAN_BLUR", "MEDIAN_BLUR", "MATCH_HISTOGRAM", "CLAHE", "CANNY")
SPLITS = ("TRAIN", "VAL", "TEST")
RESIZE_MODES = ("constant", "edge", "symmetric", "reflect", "wrap")
BLUR_MODES = ("reflect", "constant", "nearest", "mirror", "wrap")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_preprocess_cfg(cfg: CN, errors: list[str]) -> None:
    """Config-only checks of DATA.PREPROCESS (the reference folder is read later, with the data)."""
    pre, ndim = cfg.DATA.PREPROCESS, cfg.PROBLEM.NDIM
    spatial = 3 if ndim == "3D" else 2
    if not any(pre[s] for s in SPLITS):
        return
    if pre.RESIZE.ENABLE:
        shape = tuple(pre.RESIZE.OUTPUT_SHAPE)
        if ndim == "3D" and shape == (512, 512):  # BiaPy's 2D default, which BiaPy turns into 3 values in 3D
            pre.RESIZE.OUTPUT_SHAPE = (512, 512, 512)
        elif len(shape) != spatial or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
            errors.append(f"DATA.PREPROCESS.RESIZE.OUTPUT_SHAPE is {shape}; a {ndim} run needs {spatial} positive "
                          f"integers, {'(z, y, x)' if spatial == 3 else '(y, x)'}.")
        if pre.RESIZE.ORDER not in range(6):
            errors.append(f"DATA.PREPROCESS.RESIZE.ORDER is {pre.RESIZE.ORDER}; it must be 0 to 5 (1 = linear).")
        if pre.RESIZE.MODE not in RESIZE_MODES:
            errors.append(f"DATA.PREPROCESS.RESIZE.MODE is {pre.RESIZE.MODE!r}; accepted: {', '.join(RESIZE_MODES)}.")
    if pre.ZOOM.ENABLE:
        try:
            zoom_factors(list(pre.ZOOM.ZOOM_FACTOR), ndim)
        except ConfigError as err:
            errors.append(str(err))
    if pre.GAUSSIAN_BLUR.ENABLE:
        blur = pre.GAUSSIAN_BLUR
        if not blur.SIGMA >= 0:
            errors.append(f"DATA.PREPROCESS.GAUSSIAN_BLUR.SIGMA is {blur.SIGMA}; it must be 0 or more (pixels).")
        if blur.MODE not in BLUR_MODES:
            errors.append(f"DATA.PREPROCESS.GAUSSIAN_BLUR.MODE is {blur.MODE!r}; accepted: {', '.join(BLUR_MODES)}.")
        if blur.CHANNEL_AXIS not in (None, -1, spatial):
            errors.append(f"DATA.PREPROCESS.GAUSSIAN_BLUR.CHANNEL_AXIS is {blur.CHANNEL_AXIS!r}; images are read "
                          f"channels-last, so it must be None or -1 (or {spatial}, the last axis in {ndim}).")
    if pre.MEDIAN_BLUR.ENABLE:
        kernel = tuple(pre.MEDIAN_BLUR.KERNEL_SIZE)
        if len(kernel) != spatial + 1 or not all(_number(v) and int(v) == v and v > 0 for v in kernel):
            form = "(z, y, x, c), e.g. (3, 3, 3, 1)" if spatial == 3 else "(y, x, c), e.g. (3, 3, 1)"
            errors.append(f"DATA.PREPROCESS.MEDIAN_BLUR.KERNEL_SIZE is {kernel}; a {ndim} run needs {spatial + 1} "
                          f"positive integers {form}.")
    if pre.CLAHE.ENABLE:
        size = pre.CLAHE.KERNEL_SIZE
        sizes = [size] if _number(size) else list(size) if isinstance(size, (list, tuple)) else None
        bad = sizes is None or len(sizes) not in (1, spatial) or not all(_number(v) and v >= 1 for v in sizes)
        if size is not None and bad:
            errors.append(f"DATA.PREPROCESS.CLAHE.KERNEL_SIZE is {size!r}; it must be None (1/8 of each side), one "
                          f"number or {spatial} numbers of at least 1 pixel.")
        if not _number(pre.CLAHE.CLIP_LIMIT) or not 0 <= pre.CLAHE.CLIP_LIMIT <= 1:
            errors.append(f"DATA.PREPROCESS.CLAHE.CLIP_LIMIT is {pre.CLAHE.CLIP_LIMIT}; it must be between 0 and 1.")
    if pre.CANNY.ENABLE:
        if ndim != "2D":
            errors.append("DATA.PREPROCESS.CANNY works on 2D images only, but PROBLEM.NDIM is 3D.")
        for key in ("LOW_THRESHOLD", "HIGH_THRESHOLD"):
            if pre.CANNY[key] is not None and not _number(pre.CANNY[key]):
                errors.append(f"DATA.PREPROCESS.CANNY.{key} is {pre.CANNY[key]!r}; it must be a number or None.")
    if pre.MATCH_HISTOGRAM.ENABLE and not str(pre.MATCH_HISTOGRAM.REFERENCE_PATH).strip():
        errors.append("DATA.PREPROCESS.MATCH_HISTOGRAM.REFERENCE_PATH is empty: set it to a folder of reference "
                      "images.")


def zoom_factors(factors: list, ndim: str) -> tuple[float, ...]:
    """Per spatial axis zoom from BiaPy's 5 values (T, Z, C, Y, X) or one value per spatial axis."""
    spatial = 3 if ndim == "3D" else 2
    if not all(_number(f) and f > 0 for f in factors) or len(factors) not in (5, spatial):
        raise ConfigError(f"DATA.PREPROCESS.ZOOM.ZOOM_FACTOR is {factors}; give BiaPy's 5 positive factors in T, Z, C, "
                          f"Y, X order or {spatial} (one per spatial axis).")
    if len(factors) == 5:
        t, z, c, y, x = factors
        if t != 1 or c != 1 or (spatial == 2 and z != 1):
            no_z = ", nor has a 2D image a z axis" if spatial == 2 else ""
            raise ConfigError(f"DATA.PREPROCESS.ZOOM.ZOOM_FACTOR is {factors} (T, Z, C, Y, X): images have no time "
                              f"axis and channels are not zoomed{no_z}, so those factors must be 1.")
        factors = [z, y, x] if spatial == 3 else [y, x]
    return tuple(float(f) for f in factors)


def _to_dtype(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the input dtype: integers rounded and clipped (not truncated, as a bare astype would)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(dtype)
    return out.astype(dtype, copy=False)


def _unit_to_dtype(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """scikit-image results on a 0..1 scale back to the range of an integer dtype."""
    return _to_dtype(out * np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else out, dtype)


def reference_histogram(images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(values, counts) of every channel of the pooled reference images."""
    channels = images[0].shape[-1]
    return [np.unique(np.concatenate([im[..., c].ravel() for im in images]), return_counts=True)
            for c in range(channels)]


def match_channel(source: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """skimage.exposure.match_histograms for one channel against a reference given by its histogram.

    The same computation as scikit-image's `_match_cumulative_cdf`, but the reference histogram is measured
    once instead of again for every image (scikit-image re-reads every reference pixel on each call)."""
    if source.dtype.kind == "u":
        lookup = source.reshape(-1)
        src_counts = np.bincount(lookup)
    else:
        _, lookup, src_counts = np.unique(source.reshape(-1), return_inverse=True, return_counts=True)
    src_quantiles = np.cumsum(src_counts) / source.size
    ref_quantiles = np.cumsum(counts) / counts.sum()
    return np.interp(src_quantiles, ref_quantiles, values)[lookup].reshape(source.shape)


@dataclass
class Preprocessing:
    """The enabled operations (name, parameters) in order, and the splits they apply to."""

    ndim: str
    operations: list[tuple[str, dict]]
    splits: dict[str, bool]
    reference: list[tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)

    @classmethod
    def from_cfg(cls, cfg: CN, channels: int, force_rgb: bool = False) -> Preprocessing | None:
        """None when no split is preprocessed or no operation is enabled."""
        pre, ndim = cfg.DATA.PREPROCESS, cfg.PROBLEM.NDIM
        splits = {s: bool(pre[s]) for s in SPLITS}
        if cfg.DATA.VAL.FROM_TRAIN:  # validation images are training images: treated alike (as BiaPy does)
            splits["VAL"] = splits["TRAIN"]
        ops: list[tuple[str, dict]] = []
        r = pre.RESIZE
        if r.ENABLE:
            ops.append(("RESIZE", dict(output_shape=tuple(r.OUTPUT_SHAPE), order=r.ORDER, mode=r.MODE,
                                       cval=float(r.CVAL), clip=r.CLIP, preserve_range=r.PRESERVE_RANGE,
                                       anti_aliasing=r.ANTI_ALIASING)))
        if pre.ZOOM.ENABLE:
            ops.append(("ZOOM", dict(scale=zoom_factors(list(pre.ZOOM.ZOOM_FACTOR), ndim))))
        if pre.GAUSSIAN_BLUR.ENABLE:
            ops.append(("GAUSSIAN_BLUR", dict(sigma=float(pre.GAUSSIAN_BLUR.SIGMA), mode=pre.GAUSSIAN_BLUR.MODE)))
        if pre.MEDIAN_BLUR.ENABLE:
            ops.append(("MEDIAN_BLUR", dict(kernel_size=tuple(pre.MEDIAN_BLUR.KERNEL_SIZE))))
        reference = None
        if pre.MATCH_HISTOGRAM.ENABLE:
            path = str(pre.MATCH_HISTOGRAM.REFERENCE_PATH)
            ops.append(("MATCH_HISTOGRAM", dict(reference_path=path)))
            if any(splits.values()):
                reference = load_reference(path, ndim, channels, force_rgb)
        if pre.CLAHE.ENABLE:
            size = pre.CLAHE.KERNEL_SIZE
            ops.append(("CLAHE", dict(kernel_size=tuple(size) if isinstance(size, (list, tuple)) else size,
                                      clip_limit=float(pre.CLAHE.CLIP_LIMIT))))
        if pre.CANNY.ENABLE:
            if channels not in (1, 3):
                raise ConfigError(f"DATA.PREPROCESS.CANNY works on grey or RGB images, but the images have {channels} "
                                  "channels (DATA.PATCH_SIZE). Switch CANNY off or use 1 or 3 channels.")
            ops.append(("CANNY", dict(low_threshold=pre.CANNY.LOW_THRESHOLD, high_threshold=pre.CANNY.HIGH_THRESHOLD)))
        if ops and splits["TRAIN"] and not splits["TEST"] and cfg.TEST.ENABLE and not cfg.DATA.TEST.USE_VAL_AS_TEST:
            log.warning("DATA.PREPROCESS.TRAIN is True but DATA.PREPROCESS.TEST is False: the model is trained on "
                        "preprocessed images and tested on raw ones.")
        if not ops or not any(splits.values()):
            if ops:
                log.warning("DATA.PREPROCESS operations are enabled but DATA.PREPROCESS.TRAIN, VAL and TEST are all "
                            "False, so no image is preprocessed.")
            return None
        return cls(ndim, ops, splits, reference)

    def applies_to(self, split: str) -> bool:
        return self.splits.get(split, False)

    def output_spatial(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial size of an image of size `spatial` after the operations."""
        for name, params in self.operations:
            if name == "RESIZE":
                spatial = tuple(params["output_shape"])
            elif name == "ZOOM":  # the size skimage.transform.rescale gives
                spatial = tuple(int(np.round(s * f)) for s, f in zip(spatial, params["scale"]))
        return spatial

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Apply every operation to one channels-last image."""
        for name, params in self.operations:
            image = getattr(self, f"_{name.lower()}")(image, **params)
        return image

    # ------------------------------------------------------------------ the operations (scikit-image)
    @staticmethod
    def _resize(image, output_shape, order, mode, cval, clip, preserve_range, anti_aliasing):
        from skimage.transform import resize

        out = resize(image, output_shape, order=order, mode=mode, cval=cval, clip=clip, preserve_range=preserve_range,
                     anti_aliasing=anti_aliasing)
        # Without preserve_range scikit-image puts integer images on 0..1; the stored dtype needs its own range back.
        return _to_dtype(out, image.dtype) if preserve_range else _unit_to_dtype(out, image.dtype)

    @staticmethod
    def _zoom(image, scale):
        from skimage.transform import rescale

        return _to_dtype(rescale(image, scale, order=1, preserve_range=True, channel_axis=-1), image.dtype)

    @staticmethod
    def _gaussian_blur(image, sigma, mode):
        from skimage.filters import gaussian

        # channel_axis=-1: each channel blurred alone (BiaPy's default None also blurs across RGB channels).
        return _to_dtype(gaussian(image, sigma=sigma, mode=mode, preserve_range=True, channel_axis=-1), image.dtype)

    @staticmethod
    def _median_blur(image, kernel_size):
        from skimage.filters import median

        return median(image, footprint=np.ones(kernel_size, dtype=bool))

    def _match_histogram(self, image, reference_path):
        assert self.reference is not None
        out = np.stack([match_channel(image[..., c], *self.reference[c]) for c in range(image.shape[-1])], axis=-1)
        return _to_dtype(out, image.dtype)

    @staticmethod
    def _clahe(image, kernel_size, clip_limit):
        from skimage.exposure import equalize_adapthist

        if image.ndim == 3 and image.shape[-1] == 3:  # 2D RGB: scikit-image equalises the brightness (HSV value)
            out = equalize_adapthist(image, kernel_size=kernel_size, clip_limit=clip_limit)
        else:  # every channel on its own, as a 2D image or a 3D volume
            out = np.stack([equalize_adapthist(image[..., c], kernel_size=kernel_size, clip_limit=clip_limit)
                            for c in range(image.shape[-1])], axis=-1)
        return _unit_to_dtype(out, image.dtype)

    @staticmethod
    def _canny(image, low_threshold, high_threshold):
        from skimage.color import rgb2gray
        from skimage.feature import canny

        grey = rgb2gray(image) if image.shape[-1] == 3 else image[..., 0]
        edges = canny(grey, low_threshold=low_threshold, high_threshold=high_threshold)
        return np.repeat(edges.astype(np.uint8)[..., None] * 255, image.shape[-1], axis=-1)

    # ------------------------------------------------------------------ record, restore, describe
    def state_dict(self) -> dict:
        """Plain values and tensors only, for a checkpoint loaded with weights_only."""
        reference = None
        if self.reference is not None:
            reference = [(torch.from_numpy(np.ascontiguousarray(v)), torch.from_numpy(c)) for v, c in self.reference]
        return {"ndim": self.ndim, "operations": [(n, dict(p)) for n, p in self.operations],
                "splits": dict(self.splits), "reference": reference}

    @classmethod
    def from_state_dict(cls, state: dict | None) -> Preprocessing | None:
        if not state:
            return None
        reference = None
        if state.get("reference") is not None:
            reference = [(v.numpy(), c.numpy()) for v, c in state["reference"]]
        operations = [(n, {k: tuple(v) if isinstance(v, list) else v for k, v in p.items()})
                      for n, p in state["operations"]]
        return cls(state["ndim"], operations, dict(state["splits"]), reference)

    def describe(self) -> str:
        def params(p: dict) -> str:
            return ", ".join(f"{k}={v}" for k, v in p.items())

        where = ", ".join(s.lower() for s in SPLITS if self.splits[s]) or "no"
        ops = "; ".join(f"{n} ({params(p)})" for n, p in self.operations)
        return f"Preprocessing of the {where} images: {ops}"


def load_reference(path: str, ndim: str, channels: int, force_rgb: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """The pooled histogram of every image under `path` (flat or in sub-folders)."""
    from biapy_cls.data.discover import discover_unlabelled
    from biapy_cls.data.io import read_image

    samples = discover_unlabelled(path, "DATA.PREPROCESS.MATCH_HISTOGRAM.REFERENCE_PATH", ndim)
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(lambda p: read_image(p, ndim, channels, force_rgb), samples.paths))
    dtypes = sorted({str(im.dtype) for im in images})
    log.info(f"Histogram matching reference: {len(images)} image(s) under '{path}' ({', '.join(dtypes)}).")
    return reference_histogram(images)


def test_only_preprocessing(cfg: CN, recorded_state: dict | None, channels: int,
                            force_rgb: bool) -> Preprocessing | None:
    """What a test-only run applies to its test images.

    The checkpoint's preprocessing when it was applied to test images at training time (the model expects it,
    and its MATCH_HISTOGRAM reference travels with it); otherwise the YAML's, when DATA.PREPROCESS.TEST is on
    (e.g. histogram matching of a new microscope's images to the training images)."""
    recorded = Preprocessing.from_state_dict(recorded_state)
    if recorded is not None and recorded.applies_to("TEST"):
        configured = Preprocessing.from_cfg(cfg, channels, force_rgb) if cfg.DATA.PREPROCESS.TEST else None
        if configured is not None and configured.operations != recorded.operations:
            log.warning("DATA.PREPROCESS in the YAML differs from the preprocessing the checkpoint was trained and "
                        "tested with; the checkpoint's is used.")
        return recorded
    if cfg.DATA.PREPROCESS.TEST:
        return Preprocessing.from_cfg(cfg, channels, force_rgb)
    if recorded is not None and recorded.applies_to("TRAIN"):
        log.warning("The checkpoint's model was trained on preprocessed images but DATA.PREPROCESS.TEST is False, "
                    f"so the test images are not preprocessed. ({recorded.describe()})")
    return None
