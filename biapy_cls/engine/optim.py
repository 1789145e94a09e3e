"""Optimizers and learning-rate schedules from TRAIN.*."""

from __future__ import annotations

import torch
from yacs.config import CfgNode as CN


def build_optimizer(cfg: CN, model: torch.nn.Module) -> torch.optim.Optimizer:
    """TRAIN.OPTIMIZER with TRAIN.LR and TRAIN.W_DECAY; no weight decay on biases and norm layers."""
    train = cfg.TRAIN
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": train.W_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    betas = tuple(float(b) for b in train.OPT_BETAS)
    if train.OPTIMIZER == "SGD":
        return torch.optim.SGD(groups, lr=train.LR, momentum=0.9)
    if train.OPTIMIZER == "ADAM":
        # Adam's weight decay is L2 added to the gradient, as in BiaPy.
        return torch.optim.Adam(groups, lr=train.LR, betas=betas)
    return torch.optim.AdamW(groups, lr=train.LR, betas=betas)


class LRSchedule:
    """The learning-rate schedule: stepped after every batch and after every epoch. Constant for now."""

    def __init__(self, cfg: CN, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
        self.optimizer = optimizer

    def step_batch(self) -> None:
        pass

    def step_epoch(self, monitored: float) -> None:
        pass

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
