"""Batched prediction: class probabilities for every image of a loader, in dataset order."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from biapy_cls.engine.runtime import Runtime, gather_rows


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, prepare, runtime: Runtime, desc: str = "Predicting") -> np.ndarray:
    """(n_images, n_classes) softmax probabilities, row i for dataset index i.

    With several processes each predicts its shard of the loader and every process gets all rows.
    """
    model.eval()
    value_range = loader.dataset.value_range
    indices, probs = [], []
    for images, _, idx in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not runtime.is_main or None):
        images = images.to(runtime.device, non_blocking=runtime.cuda)
        logits = model(prepare(images, value_range, False))
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
        indices.append(idx)
    _, rows = gather_rows(torch.cat(indices), torch.cat(probs), runtime)
    return rows.numpy()
