"""Batches leave the loader in the images' stored dtype (what a GPU copy moves) and the values a model
sees after `to_unit` are the same in memory and lazily, also when uint8 and uint16 files are mixed."""

from __future__ import annotations

import numpy as np
import tifffile
import torch

from biapy_cls.data.dataset import ImageSpec, InMemoryDataset, LazyDataset, build_loader
from biapy_cls.data.discover import SampleList
from biapy_cls.data.transforms import to_unit


def write(tmp_path, images: list[np.ndarray]) -> SampleList:
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"img_{i}.tif")
        tifffile.imwrite(paths[-1], image)
    return SampleList(paths, np.zeros(len(paths), dtype=np.int64), tmp_path)


def unit_batch(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    images, _, _ = next(iter(build_loader(dataset, 8, False, 0, 0, False)))
    return images, to_unit(images, dataset.value_range)


def test_uint16_and_uint8_batches_keep_their_dtype_in_memory_and_lazily(tmp_path):
    rng = np.random.default_rng(0)
    spec = ImageSpec("2D", (6, 5), 1)
    for dtype in (np.uint8, np.uint16):
        folder = tmp_path / np.dtype(dtype).name
        folder.mkdir()
        pixels = [rng.integers(0, np.iinfo(dtype).max, (6, 5), dtype=dtype) for _ in range(4)]
        samples = write(folder, pixels)
        memory, lazy = InMemoryDataset(samples, spec, threads=1), LazyDataset(samples, spec)
        (raw_m, unit_m), (raw_l, unit_l) = unit_batch(memory), unit_batch(lazy)
        torch_dtype = {np.uint8: torch.uint8, np.uint16: torch.uint16}[dtype]
        assert raw_m.dtype == raw_l.dtype == torch_dtype  # 1 or 2 bytes a pixel, not 4
        expected = torch.from_numpy(np.stack(pixels)[:, None].astype(np.float32) / np.iinfo(dtype).max)
        assert torch.allclose(unit_m, expected) and torch.allclose(unit_l, expected)


def test_a_lazy_batch_mixing_uint8_and_uint16_gives_the_in_memory_values(tmp_path):
    rng = np.random.default_rng(1)
    small = [rng.integers(0, 255, (6, 5), dtype=np.uint8) for _ in range(2)]
    wide = [rng.integers(0, 65535, (6, 5), dtype=np.uint16) for _ in range(2)]
    samples = write(tmp_path, [small[0], wide[0], small[1], wide[1]])
    spec = ImageSpec("2D", (6, 5), 1)
    _, unit_m = unit_batch(InMemoryDataset(samples, spec, threads=1))
    raw_l, unit_l = unit_batch(LazyDataset(samples, spec))
    assert raw_l.dtype == torch.float32
    assert torch.allclose(unit_m, unit_l, atol=1e-6)
    assert torch.allclose(unit_l[1, 0], torch.from_numpy(wide[0] / 65535.0).float(), atol=1e-6)
