"""The training loss from LOSS.*: cross-entropy with optional class weights and label smoothing.

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
        # float32 even under autocast: the softmax of fp16/bf16 logits loses precision.
        per_image = F.cross_entropy(logits.float(), labels, weight=self.weight, reduction="none",
                                    label_smoothing=self.label_smoothing)
        # Unweighted, the count is a plain number: no extra tensor per step.
        count = self.weight[labels].sum().clamp_min(1e-12) if self.weight is not None else float(labels.numel())
        return per_image.sum(), count

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total, count = self.totals(logits, labels)
        return total / count


def build_criterion(cfg: CN, train_labels: np.ndarray, n_classes: int) -> ClassificationLoss:
    weights = class_weights(cfg, train_labels, n_classes)
    if weights is not None:
        log.info("Loss class weights: " + ", ".join(f"{w:.3g}" for w in weights.tolist()))
    return ClassificationLoss(weights, cfg.LOSS.LABEL_SMOOTHING)
