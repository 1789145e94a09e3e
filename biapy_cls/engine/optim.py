"""Optimizers and learning-rate schedules from TRAIN.* and TRAIN.LR_SCHEDULER.*."""

from __future__ import annotations

import logging
import math
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR, ReduceLROnPlateau
from yacs.config import CfgNode as CN

log = logging.getLogger("biapy_cls")


def build_optimizer(cfg: CN, model: torch.nn.Module) -> torch.optim.Optimizer:
    """TRAIN.OPTIMIZER with TRAIN.LR and TRAIN.W_DECAY; no weight decay on biases and norm layers; the
    backbone at TRAIN.BACKBONE_LR_SCALE x TRAIN.LR (head groups first: the logged LR is the head's)."""
    train = cfg.TRAIN
    scale = float(train.BACKBONE_LR_SCALE)
    backbone = set()
    if scale != 1.0:
        from biapy_cls.engine.finetune import backbone_parameters

        backbone = {id(p) for p in backbone_parameters(model)}
    groups = []
    for in_backbone in (False, True):
        decay, no_decay = [], []
        for param in model.parameters():
            if param.requires_grad and (id(param) in backbone) == in_backbone:
                (no_decay if param.ndim <= 1 else decay).append(param)
        lr = {"lr": train.LR * scale} if in_backbone else {}
        groups += [{"params": decay, "weight_decay": train.W_DECAY, **lr},
                   {"params": no_decay, "weight_decay": 0.0, **lr}]
    if not backbone:  # the two groups of every run without a scaled backbone (resumed optimizer states fit)
        groups = groups[:2]
    betas = tuple(float(b) for b in train.OPT_BETAS)
    if train.OPTIMIZER == "SGD":
        # Nesterov momentum, as timm's "sgd" (which BiaPy uses); plain SGD when MOMENTUM is 0.
        return torch.optim.SGD(groups, lr=train.LR, momentum=train.MOMENTUM, nesterov=train.MOMENTUM > 0)
    if train.OPTIMIZER == "ADAM":
        # Adam's weight decay is L2 added to the gradient, as in BiaPy.
        return torch.optim.Adam(groups, lr=train.LR, betas=betas)
    return torch.optim.AdamW(groups, lr=train.LR, betas=betas)


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


def auto_warmup_steps(cfg: CN, model: torch.nn.Module, steps_per_epoch: int) -> int:
    """Optimizer steps of the automatic warm-up: the model's `warmup_epochs` (the ViT's: 1) when
    TRAIN.LR_SCHEDULER.NAME is '' (a scheduler the user names always wins), else 0. Logged.

    Transformers trained from scratch at a CNN's constant learning rate diverge or stall in the first
    steps (issue 14: the ViT stayed at chance for 3 epochs at LR 1e-3); a linear ramp over the first
    epoch is the usual remedy and costs nothing."""
    epochs = float(getattr(model, "warmup_epochs", 0.0))
    if cfg.TRAIN.LR_SCHEDULER.NAME or epochs <= 0:
        return 0
    steps = max(1, round(epochs * steps_per_epoch))
    log.info(f"No TRAIN.LR_SCHEDULER set: the learning rate warms up linearly to TRAIN.LR {cfg.TRAIN.LR:g} over "
             f"the first {steps} steps ({epochs:g} epoch), as this model needs, then stays constant. "
             "Set TRAIN.LR_SCHEDULER.NAME to choose the schedule yourself.")
    return steps


def describe_constant(schedule: LRSchedule) -> str:
    """How the log names the schedule when TRAIN.LR_SCHEDULER.NAME is ''."""
    return f"{schedule.warmup_steps}-step warm-up, then constant" if schedule.warmup_steps else "constant"


def linear_warmup(step: int, warmup_steps: int) -> float:
    """Factor of TRAIN.LR at optimizer step `step` (0-based): (step + 1) / warmup_steps, then 1."""
    return min(1.0, (step + 1) / warmup_steps)


class LRSchedule:
    """TRAIN.LR_SCHEDULER: warmupcosine and onecycle change the LR after every optimizer step,
    reduceonplateau after every epoch (on the monitored quantity); '' keeps it constant, after
    `warmup_steps` of linear warm-up (auto_warmup_steps)."""

    def __init__(self, cfg: CN, optimizer: torch.optim.Optimizer, steps_per_epoch: int, mode: str = "min",
                 warmup_steps: int = 0):
        sched = cfg.TRAIN.LR_SCHEDULER
        self.name = sched.NAME
        self.optimizer = optimizer
        self.total_steps = max(1, cfg.TRAIN.EPOCHS * steps_per_epoch)
        self.steps = 0
        min_lr = max(sched.MIN_LR, 0.0)
        self.scheduler = None
        self.warmup_steps = warmup_steps if not self.name else 0
        if self.warmup_steps:
            self.scheduler = LambdaLR(optimizer, partial(linear_warmup, warmup_steps=self.warmup_steps))
        elif self.name == "warmupcosine":
            factor = partial(warmup_cosine, warmup_steps=sched.WARMUP_COSINE_DECAY_EPOCHS * steps_per_epoch,
                             total_steps=self.total_steps, floor=min_lr / cfg.TRAIN.LR)
            self.scheduler = LambdaLR(optimizer, factor)
        elif self.name == "onecycle":
            # each group peaks at its own LR (the backbone's is scaled by TRAIN.BACKBONE_LR_SCALE)
            self.scheduler = OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                        total_steps=self.total_steps)
        elif self.name == "reduceonplateau":
            self.scheduler = ReduceLROnPlateau(optimizer, mode=mode, factor=sched.REDUCEONPLATEAU_FACTOR,
                                               patience=sched.REDUCEONPLATEAU_PATIENCE, min_lr=min_lr)

    @property
    def per_step(self) -> bool:
        return self.name in ("warmupcosine", "onecycle") or self.warmup_steps > 0

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
