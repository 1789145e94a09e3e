"""Fine-tuning controls for pretrained backbones: a lower learning rate for the backbone than for the new
head (TRAIN.BACKBONE_LR_SCALE) and training the head alone for the first epochs (TRAIN.FREEZE_BACKBONE_EPOCHS).

The head is the classification layer a model source replaced or created for DATA.N_CLASSES (`head_names`
on library models), timm's classifier, or the `head` of this package's models; the backbone is the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import nn

from biapy_cls.errors import ConfigError

log = logging.getLogger("biapy_cls")


@dataclass(frozen=True)
class FineTuning:
    """TRAIN.BACKBONE_LR_SCALE and TRAIN.FREEZE_BACKBONE_EPOCHS, resolved once."""

    backbone_lr_scale: float = 1.0
    freeze_backbone_epochs: int = 0

    @classmethod
    def from_cfg(cls, cfg) -> FineTuning:
        return cls(float(cfg.TRAIN.BACKBONE_LR_SCALE), int(cfg.TRAIN.FREEZE_BACKBONE_EPOCHS))

    @property
    def active(self) -> bool:
        return self.backbone_lr_scale != 1.0 or self.freeze_backbone_epochs > 0

    def describe(self) -> str:
        parts = []
        if self.freeze_backbone_epochs:
            parts.append(f"only the head trains for the first {self.freeze_backbone_epochs} epoch(s), then everything")
        if self.backbone_lr_scale == 0:
            parts.append("the backbone stays fixed (TRAIN.BACKBONE_LR_SCALE 0)")
        elif self.backbone_lr_scale != 1.0:
            parts.append(f"backbone learning rate x{self.backbone_lr_scale:g} of the head's")
        return "; ".join(parts)


def _timm_heads(model: nn.Module) -> tuple[str, ...]:
    head = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    return (head,) if isinstance(head, str) else tuple(head)


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Names of the modules that form the classification head of `model` (unwrapped)."""
    if getattr(model, "head_names", None):
        return tuple(model.head_names)
    inner = getattr(model, "timm_module", None)
    if inner is not None and _timm_heads(inner):
        return tuple(f"timm_module.{h}" for h in _timm_heads(inner))
    if type(model).__module__.startswith("timm.") and _timm_heads(model):
        return _timm_heads(model)
    if isinstance(getattr(model, "head", None), nn.Module):
        return ("head",)
    raise ConfigError(f"TRAIN.BACKBONE_LR_SCALE and TRAIN.FREEZE_BACKBONE_EPOCHS need to know the model's "
                      f"classification head, which {type(model).__name__} does not name. Leave them at 1.0 and 0.")


def is_head(name: str, prefixes: tuple[str, ...]) -> bool:
    name = name.removeprefix("module.")  # DistributedDataParallel's prefix
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    inner = getattr(model, "module", model)
    prefixes = head_prefixes(inner)
    return [p for name, p in inner.named_parameters() if not is_head(name, prefixes)]


class BackboneFreezer:
    """Turns the backbone's gradients off for the first epochs and back on after, leaving alone the
    parameters that MODEL.FREEZE_LAYERS_MATCHING (or BACKBONE_LR_SCALE 0) froze for good."""

    def __init__(self, model: nn.Module, epochs: int):
        self.epochs = epochs
        self.params = [p for p in backbone_parameters(model) if p.requires_grad]
        self.frozen: bool | None = None

    def __call__(self, epoch: int) -> None:
        """At the start of `epoch` (0-based; also right after resuming)."""
        freeze = epoch < self.epochs
        if freeze == self.frozen:
            return
        for p in self.params:
            p.requires_grad_(not freeze)
        if self.frozen is not None or not freeze:
            log.info(f"Epoch {epoch + 1}: " + ("backbone frozen, only the head trains." if freeze else
                                                "the backbone trains too from now on (TRAIN.FREEZE_BACKBONE_EPOCHS)."))
        self.frozen = freeze
