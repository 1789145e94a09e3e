"""MODEL.EMA: an exponential moving average of the weights (beyond BiaPy; as timm's ModelEmaV3).

After every optimizer step, for each floating-point parameter p of the (unwrapped) model:

    ema <- d_t * ema + (1 - d_t) * p,    d_t = DECAY * min(1, t / WARMUP)   (d_t = DECAY when WARMUP is 0)

with t the number of updates made before this one, so the first update copies the weights. Buffers
(BatchNorm running statistics, counters) are copied, not averaged: they describe the data, not a point
in weight space. Under DDP every process holds the same parameters after each step (gradients are
averaged), so every process's average is the same and no communication is needed; `update` takes the
unwrapped module, so names carry no 'module.' prefix.

The training loop validates both the raw weights and the average each epoch, and checkpoints the better
one (trainer.py); the average and its step count are in every checkpoint, so --resume continues it exactly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from yacs.config import CfgNode as CN


@dataclass(frozen=True)
class EmaSettings:
    enable: bool = False
    decay: float = 0.999
    warmup: int = 100

    @classmethod
    def from_cfg(cls, cfg: CN) -> EmaSettings:
        ema = cfg.MODEL.EMA
        return cls(bool(ema.ENABLE), float(ema.DECAY), int(ema.WARMUP))


class ModelEma:
    """The averaged copy of a model; `module` is a full model in eval mode, used for validation."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: int = 0):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.warmup = decay, warmup
        self.updates = 0

    def current_decay(self) -> float:
        if self.warmup <= 0:
            return self.decay
        return self.decay * min(1.0, self.updates / self.warmup)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Average in `model`'s current weights (the unwrapped module, not a DDP wrapper)."""
        d = self.current_decay()
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            new = source[name].detach()
            if value.is_floating_point() and name in self._param_names:
                value.lerp_(new.to(value.dtype), 1.0 - d)  # value*d + new*(1-d), in place
            else:
                value.copy_(new)
        self.updates += 1

    @property
    def _param_names(self) -> set[str]:
        if not hasattr(self, "_names"):
            self._names = {name for name, _ in self.module.named_parameters()}
        return self._names

    def state_dict(self) -> dict:
        return {"model_state": self.module.state_dict(), "updates": self.updates, "decay": self.decay,
                "warmup": self.warmup}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["model_state"])
        self.updates = int(state["updates"])
