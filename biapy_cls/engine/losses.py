"""The training loss from LOSS.*: cross-entropy with optional class weights and label smoothing, on class
indices or on soft targets (probability vectors, from MixUp/CutMix in data/mixing.py).

BiaPy accepts LOSS.CLASS_REBALANCE in classification but never applies it; here it changes the loss.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

log = logging.getLogger("biapy_cls")


def class_weights(cfg: CN, train_labels: np.ndarray, n_classes: int) -> torch.Tensor | None:
    """LOSS.CLASS_REBALANCE: None, inverse class frequency (auto) or LOSS.CLASS_WEIGHTS (manual).

    auto gives w_c = N / (n_classes * n_c), so a balanced training set has every weight 1 and the
    average weight over the training images is 1.
    """
    mode = cfg.LOSS.CLASS_REBALANCE
    if mode == "none":
        return None
    if mode == "manual":
        # One weight per class: data.plan.check_against_data made sure before any image was read.
        return torch.tensor([float(w) for w in cfg.LOSS.CLASS_WEIGHTS], dtype=torch.float32)
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    # A class without training images gets no weight instead of a division by zero.
    weights = np.divide(counts.sum(), n_classes * counts, out=np.zeros(n_classes), where=counts > 0)
    return torch.tensor(weights, dtype=torch.float32)


class ClassificationLoss(nn.Module):
    """Cross-entropy averaged over the weights of the true classes (PyTorch's weighted mean).

    `totals` returns the weighted sum and the weight sum separately, so that epoch means over many
    batches and processes are exact.
    """

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.label_smoothing = label_smoothing

    def totals(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        if labels.is_floating_point():
            return self._soft_totals(logits, labels)
        # float32 even under autocast: the softmax of fp16/bf16 logits loses precision.
        per_image = F.cross_entropy(logits.float(), labels, weight=self.weight, reduction="none",
                                    label_smoothing=self.label_smoothing)
        # Unweighted, the count is a plain number: no extra tensor per step.
        count = self.weight[labels].sum().clamp_min(1e-12) if self.weight is not None else float(labels.numel())
        return per_image.sum(), count

    def _soft_totals(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """Soft targets t (rows summing to 1): smoothed to (1 - e) t + e / K, as PyTorch smooths a class
        index, so a one-hot t gives exactly the loss of its index. Weighted, an image counts
        sum_c w_c t_c (its class's weight when t is one-hot)."""
        logp = F.log_softmax(logits.float(), dim=1)
        k = logits.shape[1]
        smoothed = targets * (1 - self.label_smoothing) + self.label_smoothing / k
        w = self.weight if self.weight is not None else torch.ones(k, device=logits.device)
        per_image = -(smoothed * logp * w).sum(1)
        count = (targets * w).sum().clamp_min(1e-12) if self.weight is not None else float(targets.shape[0])
        return per_image.sum(), count

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total, count = self.totals(logits, labels)
        return total / count


def build_criterion(cfg: CN, train_labels: np.ndarray, n_classes: int) -> ClassificationLoss:
    weights = class_weights(cfg, train_labels, n_classes)
    if weights is not None:
        log.info("Loss class weights: " + ", ".join(f"{w:.3g}" for w in weights.tolist()))
    return ClassificationLoss(weights, cfg.LOSS.LABEL_SMOOTHING)
