"""A look at a sample of the training images before anything is decided from one of them.

DATA.PATCH_SIZE () used to take the size of the first image alone: a 1x1 first image trained the whole
run at 1x1. Here up to SAMPLE images, spread over the list, are read; the most common size is used,
differing sizes are reported, and absurd sizes refused. Channel counts that differ (grey, RGB, RGBA,
grey+alpha in one folder) are reported in one message with the setting that accepts them all.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from biapy_cls.data.io import accepts_channels, has_alpha_format, read_file, standard_dtype, to_channels_last
from biapy_cls.errors import DataError

log = logging.getLogger("biapy_cls")

SAMPLE = 32
MIN_SIDE = 4  # below this no architecture here can learn anything (and 1x1 is surely a mistake)
CHANNEL_NAMES = {1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA"}


def sample_paths(paths: list[Path], n: int = SAMPLE) -> list[Path]:
    idx = np.unique(np.linspace(0, len(paths) - 1, min(n, len(paths))).round().astype(int))
    return [paths[i] for i in idx]


def survey(paths: list[Path], ndim: str, channels_hint: int,
           float_peaks: dict[Path, float] | None = None) -> dict[Path, tuple[int, ...]]:
    """File -> its (spatial..., channels) shape, for a spread sample of `paths`; `float_peaks`, when given,
    receives the largest absolute value of each floating-point image of the sample."""
    shapes = {}
    for path in sample_paths(paths):
        arr = to_channels_last(standard_dtype(read_file(path), path), ndim, channels_hint, path)
        shapes[path] = arr.shape
        if float_peaks is not None and np.issubdtype(arr.dtype, np.floating):
            float_peaks[path] = float(np.abs(arr).max())
    return shapes


FLOAT_SCALE = 10.0  # float images beyond this are not on the 0-1 scale `div` expects of them


def warn_unscaled_floats(float_peaks: dict[Path, float], where: str) -> None:
    """DATA.NORMALIZATION.TYPE div divides integer images by their range but takes float images as they are
    (BiaPy's rule): float images of raw counts (0-65535 as float32) then reach the model unscaled and it
    learns nothing, silently."""
    large = {p: v for p, v in float_peaks.items() if v > FLOAT_SCALE}
    if large:
        path, peak = max(large.items(), key=lambda item: item[1])
        log.warning(
            f"DATA.NORMALIZATION.TYPE is div, which takes floating-point images as they are (only integer images "
            f"are divided by their range), but {len(large)} of the {len(float_peaks)} float images sampled in {where} "
            f"hold values far beyond 0-1 (up to {peak:.3g} in '{path.name}'): the model would see them unscaled. "
            "Use DATA.NORMALIZATION.TYPE zero_mean_unit_variance or scale_range, or scale the files to 0-1."
        )


def check_channels(shapes: dict[Path, tuple[int, ...]], channels: int, force_rgb: bool, where: str) -> None:
    """One message for a folder that mixes channel counts that DATA.PATCH_SIZE's count does not all accept."""
    counts = Counter(shape[-1] for shape in shapes.values())
    if len(counts) < 2 or all(accepts_channels(s[-1], channels, force_rgb, p) for p, s in shapes.items()):
        return
    mix = ", ".join(f"{n} {CHANNEL_NAMES.get(c, f'{c}-channel')}" for c, n in sorted(counts.items()))
    example = {c: next(p.name for p, s in shapes.items() if s[-1] == c) for c in counts}
    examples = ", ".join(f"'{name}' ({describe_channels(c, shapes, name)})" for c, name in sorted(example.items()))
    if any(s[-1] in (2, 4) and not has_alpha_format(p) for p, s in shapes.items()):
        fix = ("convert the images to one channel count (in TIFF and .npy files every channel is image data, so "
               "none is dropped as transparency)")
    elif max(counts) <= 4:
        fix = ("set DATA.FORCE_RGB True and the last value of DATA.PATCH_SIZE to 3: grey and grey+alpha images are "
               "then made RGB and the alpha channel of RGBA images is dropped")
    else:
        fix = "convert the images to one channel count"
    raise DataError(
        f"{where} mixes images with different channel counts (in a sample of {len(shapes)}: {mix}; e.g. {examples}). "
        f"To use them all, {fix}."
    )


def describe_channels(channels: int, shapes: dict[Path, tuple[int, ...]], name: str) -> str:
    """'RGB', or for a multi-page TIFF what it is: a 3-page TIFF read as (c, y, x) may be 3 slices of a volume."""
    path = next(p for p in shapes if p.name == name)
    pages = tiff_pages(path)
    if pages > 1:
        return (f"a {pages}-page TIFF, read as {pages} channels (c, y, x); if its pages are slices of a volume it "
                "is a 3D image, for PROBLEM.NDIM 3D")
    return str(CHANNEL_NAMES.get(channels, channels))


def tiff_pages(path: Path) -> int:
    """The number of pages of a TIFF file (0 for other files or when unreadable); reads its headers only."""
    if not path.name.lower().endswith((".tif", ".tiff")):
        return 0
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return len(tif.pages)
    except Exception:  # noqa: BLE001 - only for a message: any failure means "not known"
        return 0


def inferred_patch(shapes: dict[Path, tuple[int, ...]], where: str) -> tuple[int, ...]:
    """The most common shape of the sample, refusing absurd sizes and reporting differing ones."""
    spatial = Counter(shape[:-1] for shape in shapes.values())
    size, n = spatial.most_common(1)[0]
    first = next(iter(shapes))
    if min(size) < MIN_SIDE:
        raise DataError(
            f"DATA.PATCH_SIZE is not set, and the images of {where} are {size} pixels (e.g. '{first.name}'): too "
            f"small to classify (under {MIN_SIDE} pixels on a side). Set DATA.PATCH_SIZE to the size to train at, "
            "e.g. DATA.PATCH_SIZE (64, 64, 1), or check the images."
        )
    if len(spatial) > 1:
        others = ", ".join(f"{s} x{k}" for s, k in spatial.most_common()[1:6])
        log.warning(f"The training images differ in size (in a sample of {len(shapes)}: {size} x{n}, {others}); "
                    f"every image is resized to the most common size, {size}. Set DATA.PATCH_SIZE to choose it.")
    return size
