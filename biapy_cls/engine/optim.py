"""Optimizers and learning-rate schedules from the TRAIN.* settings (config/settings.py)."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR, ReduceLROnPlateau

from biapy_cls.config.settings import TrainSettings


def build_optimizer(train: TrainSettings, model: torch.nn.Module) -> torch.optim.Optimizer:
    """TRAIN.OPTIMIZER with TRAIN.LR and TRAIN.W_DECAY; no weight decay on biases and norm layers."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if train.optimizer == "SGD":
        # Nesterov momentum, as timm's "sgd" (which BiaPy uses); plain SGD when MOMENTUM is 0.
        return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum, nesterov=train.momentum > 0)
    if train.optimizer == "ADAM":
        # Adam's weight decay is L2 added to the gradient, as in BiaPy.
        return torch.optim.Adam(groups, lr=train.lr, betas=train.betas)
    return torch.optim.AdamW(groups, lr=train.lr, betas=train.betas)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, floor: float) -> float:
    """Factor of TRAIN.LR at optimizer step `step` (0-based) for warmupcosine.

    Warm-up: linear from LR/warmup_steps at the first step up to LR at the last warm-up step.
    Then cosine from LR down to floor*LR (= MIN_LR), reached at the last step of the last epoch.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class LRSchedule:
    """TRAIN.LR_SCHEDULER: warmupcosine and onecycle change the LR after every optimizer step,
    reduceonplateau after every epoch (on the monitored quantity, `train.monitor_mode` deciding whether
    lower is better); '' keeps it constant."""

    def __init__(self, train: TrainSettings, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
        sched = train.schedule
        self.name = sched.name
        self.per_step = sched.per_step
        self.optimizer = optimizer
        self.total_steps = max(1, train.epochs * steps_per_epoch)
        self.steps = 0
        self.scheduler = None
        if self.name == "warmupcosine":
            factor = partial(warmup_cosine, warmup_steps=sched.warmup_epochs * steps_per_epoch,
                             total_steps=self.total_steps, floor=sched.min_lr / train.lr)
            self.scheduler = LambdaLR(optimizer, factor)
        elif self.name == "onecycle":
            self.scheduler = OneCycleLR(optimizer, max_lr=train.lr, total_steps=self.total_steps)
        elif self.name == "reduceonplateau":
            self.scheduler = ReduceLROnPlateau(optimizer, mode=train.monitor_mode, factor=sched.factor,
                                               patience=sched.patience, min_lr=sched.min_lr)

    def step_batch(self) -> None:
        """After each optimizer step. OneCycleLR refuses to step past its end, hence the guard."""
        self.steps += 1
        if self.per_step and self.steps < self.total_steps:
            self.scheduler.step()

    def step_epoch(self, monitored: float) -> None:
        if self.name == "reduceonplateau":
            self.scheduler.step(monitored)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {"steps": self.steps, "scheduler": self.scheduler.state_dict() if self.scheduler else None}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state.get("steps", 0)
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
            # Building a scheduler resets the optimizer's LR; put back the one in effect when saved.
            for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
                group["lr"] = lr
