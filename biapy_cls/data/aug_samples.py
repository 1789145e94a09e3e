"""AUGMENTOR.AUG_SAMPLES: examples of augmented training images, written once when training starts.

results/RUN/aug/RUN_aug_samples.png shows each example as a row: the original next to two augmented
versions (3D: the middle z-slice of each). In 3D every example is also written as a tif volume
(original and augmented, axes ZCYX). With DRAW_GRID, grid lines are drawn on the images before they are
augmented, so that the deformations show. Label mixing (CUTMIX, MIXUP, CUTMIX_ALPHA) is shown on the
augmented versions, mixing the examples with each other (in training it mixes normalised images of a
batch). Writing samples leaves the random generators as they were, so
training is the same with or without them.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
import torch

from biapy_cls.data.augment import Augmenter
from biapy_cls.data.mixing import Mixer
from biapy_cls.data.transforms import to_unit

VERSIONS = 2  # augmented versions shown next to each original


def draw_grid(x: torch.Tensor, spacing: int) -> torch.Tensor:
    """Lines every `spacing` pixels along y and x, at each image's maximum."""
    x = x.clone()
    top = x.amax(dim=tuple(range(1, x.ndim)), keepdim=True).expand_as(x)
    lines = torch.zeros(x.shape[-2:], dtype=torch.bool)
    lines[::spacing, :] = True
    lines[:, ::spacing] = True
    return torch.where(lines, top, x)


def _display(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """(C, H, W) -> uint8 (H, W) or (H, W, 3) scaled from [low, high]."""
    img = np.clip((x - low) / max(high - low, 1e-8), 0, 1)
    img = img[:3] if img.shape[0] >= 3 else img[:1]
    img = np.moveaxis(img, 0, -1)
    img = np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img
    zoom = max(1, 128 // max(img.shape[:2]))  # small images are enlarged (nearest) to be seen
    img = img.repeat(zoom, 0).repeat(zoom, 1)
    return (img * 255).round().astype(np.uint8)


def _middle(x: torch.Tensor) -> np.ndarray:
    """(C, [D,] H, W) -> (C, H, W): the middle z-slice of a volume."""
    return (x[:, x.shape[1] // 2] if x.ndim == 4 else x).float().numpy()


def write_aug_samples(augmenter: Augmenter, dataset, out_dir: Path, run_name: str, count: int, grid: bool,
                      seed: int = 0, mixer: Mixer | None = None) -> list[Path]:
    """Augment `count` training images spread over `dataset` and write them to `out_dir`; returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    picks = np.linspace(0, len(dataset) - 1, num=min(count, len(dataset))).round().astype(int)
    originals = to_unit(torch.stack([dataset[int(i)][0] for i in picks]), dataset.value_range)
    if grid:
        originals = draw_grid(originals, max(8, max(originals.shape[-2:]) // 8))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        versions = [augmenter(originals) if augmenter else originals for _ in range(VERSIONS)]
        if mixer:
            labels = torch.zeros(len(originals), dtype=torch.long)
            versions = [mixer(v, labels)[0] for v in versions]
    rows, written = [], []
    for i in range(len(picks)):
        orig = _middle(originals[i])
        low, high = float(orig.min()), float(orig.max())  # one scale per row: intensity changes show
        tiles = [_display(orig, low, high)] + [_display(_middle(v[i]), low, high) for v in versions]
        pad = np.full((tiles[0].shape[0], 4, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([t for tile in tiles for t in (tile, pad)][:-1], axis=1))
        if originals.ndim == 5:
            for name, vol in [("original", originals[i])] + [
                (f"augmented{j + 1}", v[i]) for j, v in enumerate(versions)
            ]:
                path = out_dir / f"{run_name}_sample{i + 1:02d}_{name}.tif"
                tifffile.imwrite(path, vol.transpose(0, 1).float().numpy(), imagej=True, metadata={"axes": "ZCYX"})
                written.append(path)
    gap = np.full((4, rows[0].shape[1], 3), 255, dtype=np.uint8)
    sheet = np.concatenate([r for row in rows for r in (row, gap)][:-1], axis=0)
    png = out_dir / f"{run_name}_aug_samples.png"
    iio.imwrite(png, sheet)
    return [png, *written]
