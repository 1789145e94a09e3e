"""A lazy dataset wraps Pillow's read-only arrays without torch's 'not writable' warning in the user's output."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from PIL import Image

from biapy_cls.data.dataset import ImageSpec, LazyDataset
from biapy_cls.data.discover import SampleList


def test_a_lazily_read_png_gives_its_pixels_without_a_warning(tmp_path):
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    dataset = LazyDataset(SampleList([tmp_path / "a.png"], np.array([0]), tmp_path), ImageSpec("2D", (16, 16), 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's UserWarning on a non-writable array would fail here
        image, label, index = dataset[0]
    assert image.dtype == torch.uint8 and np.array_equal(image.numpy()[0], pixels) and index == 0

