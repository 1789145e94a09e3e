"""Hostile image data (issue 21): every pixel dtype means what the same pixels in a PNG mean, non-finite
pixels never reach the model, and a NaN metric never wins."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from biapy_cls.data.dataset import ImageSpec, build_dataset
from biapy_cls.data.discover import SampleList
from biapy_cls.data.transforms import Normalizer, to_unit
from biapy_cls.engine.trainer import EarlyStopping

SPEC = ImageSpec("2D", (8, 8), 1)


def _pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 17, size=(8, 8)).astype(np.uint8)  # digits: 0..16


def _normalised(paths: list[Path], kind: str, in_memory: bool) -> torch.Tensor:
    samples = SampleList(paths, np.zeros(len(paths), dtype=np.int64), paths[0].parent)
    data = build_dataset(samples, SPEC, in_memory, "test")
    images = torch.stack([data[i][0] for i in range(len(data))])
    return Normalizer(kind)(to_unit(images, data.value_range), data.value_range)


INTEGER_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, bool]
FLOAT_DTYPES = [np.float16, np.float32, np.float64]


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize("dtype", INTEGER_DTYPES + FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_dtype_normalises_like_the_same_pixels_in_png(tmp_path, dtype, in_memory):
    """int64 digits trained to chance: dividing by int64's maximum left values near 1e-17."""
    pixels = _pixels() > 8 if dtype is bool else _pixels()
    Image.fromarray(pixels.astype(np.uint8) * (255 if dtype is bool else 1)).save(tmp_path / "a.png")
    np.save(tmp_path / "a.npy", pixels.astype(dtype))
    # div: floats are taken as they are and uint16 is divided by 65535 (both documented), so only the
    # other integer dtypes must match the PNG under div too.
    kinds = ["zero_mean_unit_variance", "scale_range"] + ([] if dtype in (*FLOAT_DTYPES, np.uint16) else ["div"])
    for kind in kinds:
        png = _normalised([tmp_path / "a.png"], kind, in_memory)
        npy = _normalised([tmp_path / "a.npy"], kind, in_memory)
        assert torch.allclose(png, npy, atol=1e-3), (kind, png.flatten()[:5], npy.flatten()[:5])
        assert png.std() > 0.5 or kind != "zero_mean_unit_variance"


def test_wide_integer_values_keep_their_contrast(tmp_path):
    """Values beyond 16 bits (or negative) are taken as they are, like float images, not divided to zero."""
    arr = np.arange(64, dtype=np.int64).reshape(8, 8) * 100_000 - 1_000_000
    np.save(tmp_path / "a.npy", arr)
    out = _normalised([tmp_path / "a.npy"], "zero_mean_unit_variance", True)
    assert abs(float(out.std(unbiased=False)) - 1.0) < 1e-3


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("in_memory", [True, False])
def test_non_finite_pixels_are_replaced_and_reported_by_name(tmp_path, caplog, bad, in_memory):
    arr = _pixels().astype(np.float32)
    arr[3, 4] = bad
    np.save(tmp_path / "nan_image.npy", arr)
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        out = _normalised([tmp_path / "nan_image.npy"], "zero_mean_unit_variance", in_memory)
    assert torch.isfinite(out).all()
    assert "nan_image.npy" in caplog.text and "1 NaN or infinite pixel value(s)" in caplog.text


def test_an_image_without_any_finite_pixel_is_refused_by_name(tmp_path):
    from biapy_cls.data.io import read_image
    from biapy_cls.errors import DataError

    np.save(tmp_path / "all_nan.npy", np.full((8, 8), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="all_nan.npy' holds no finite pixel value"):
        read_image(tmp_path / "all_nan.npy", "2D", 1, False)


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_a_nan_metric_never_wins(monitor):
    stopper = EarlyStopping(monitor)
    assert not stopper.update(float("nan"), 1)
    assert stopper.update(0.5, 2) and stopper.best_epoch == 2
    assert not stopper.update(float("nan"), 3)
    assert not stopper.update(float("inf") if monitor == "val_loss" else float("nan"), 4)
    assert stopper.best_epoch == 2
