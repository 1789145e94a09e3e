"""Batched prediction: class probabilities for every image of a loader, in dataset order.

Test-time augmentation (TEST.AUGMENTATION) predicts every image in several views at once: in 2D the 8
flips and 90-degree rotations of the y-x plane (4 views when y and x differ in size: rotating by 90
degrees would change the shape); in 3D the 8 combinations of flipping z, y and x, each also rotated by
90 degrees in the y-x plane when it is square (16 views). Each view of a batch goes through the model as
one forward pass of the batch's size, so that TTA costs views x plain inference: stacking all views into
one pass 8x larger cost 10.7x on the CPU (activations outgrow the caches; bench/, docs/benchmarks.md).
Their softmax probabilities are combined by TEST.AUGMENTATION_MODE: mean, max or min (max and min are
rescaled to sum to 1).
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from biapy_cls.engine.runtime import Runtime, gather_rows

View = tuple[int, tuple[int, ...]]  # (quarter turns in the y-x plane, axes flipped before turning)


def tta_views(shape: tuple[int, ...]) -> list[View]:
    """The views of a (N, C, *spatial) batch; the first is the identity."""
    spatial = len(shape) - 2
    square = shape[-1] == shape[-2]
    if spatial == 2:
        if square:
            return [(k, flips) for flips in ((), (-1,)) for k in range(4)]
        return [(0, ()), (0, (-1,)), (0, (-2,)), (0, (-2, -1))]
    flips = [tuple(a for a, on in zip((-3, -2, -1), bits) if on) for bits in itertools.product((0, 1), repeat=3)]
    return [(k, f) for k in ((0, 1) if square else (0,)) for f in flips]


def apply_view(x: torch.Tensor, view: View) -> torch.Tensor:
    turns, flips = view
    if flips:
        x = x.flip(flips)
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x


def combine(probs: torch.Tensor, mode: str) -> torch.Tensor:
    """(views, N, classes) -> (N, classes)."""
    if mode == "mean":
        return probs.mean(0)
    out = probs.amax(0) if mode == "max" else probs.amin(0)
    return out / out.sum(1, keepdim=True).clamp_min(1e-12)


def predict_batch(model: nn.Module, x: torch.Tensor, tta: bool = False, mode: str = "mean") -> torch.Tensor:
    """Softmax probabilities (N, classes) of a prepared batch, optionally with test-time augmentation."""
    if not tta:
        return torch.softmax(model(x).float(), dim=1)
    views = tta_views(tuple(x.shape))
    probs = torch.stack([torch.softmax(model(apply_view(x, v)).float(), dim=1) for v in views])
    return combine(probs, mode)


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, prepare, runtime: Runtime, desc: str = "Predicting",
            tta: bool = False, tta_mode: str = "mean", amp_dtype: torch.dtype | None = None) -> np.ndarray:
    """(n_images, n_classes) softmax probabilities, row i for dataset index i.

    With several processes each predicts its shard of the loader and every process gets all rows.
    `amp_dtype`: mixed precision on CUDA (bf16 or fp16 autocast), as in training; None = full precision.
    """
    model.eval()
    value_range = loader.dataset.value_range
    autocast = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype and runtime.cuda else contextlib.nullcontext()
    indices, probs = [], []
    for images, _, idx in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not runtime.is_main or None):
        images = images.to(runtime.device, non_blocking=runtime.cuda)
        with autocast:
            probs.append(predict_batch(model, prepare(images, value_range, False), tta, tta_mode).cpu())
        indices.append(idx)
    _, rows = gather_rows(torch.cat(indices), torch.cat(probs), runtime)
    return rows.numpy()
