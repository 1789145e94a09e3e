"""One entry point builds every architecture by name (timm's `create_model` style).

    model = build_model(ModelSpec(architecture="simple_cnn", ndim="2D", in_channels=1, n_classes=10,
                                  spatial=(32, 32)), cfg.MODEL)

Each architecture module registers a builder with `@register("name")`. Builders return a
`torch.nn.Module` mapping (N, C, *spatial) float tensors to (N, n_classes) logits: no softmax inside.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

from biapy_cls.errors import ConfigError

_BUILDERS: dict[str, Callable] = {}
# Architectures and the module that defines each; modules are imported only when their model is built
# so that importing one backbone library (timm, MONAI) never slows down another.
_MODULES = {
    "simple_cnn": "biapy_cls.models.simple_cnn",
    "vit": "biapy_cls.models.vit",
    **{f"efficientnet_b{i}": "biapy_cls.models.efficientnet" for i in range(8)},
}


# The current model layout of each architecture whose layers changed (or changed meaning) since the
# first release; a checkpoint records the layout its model was built with (ModelSpec.layout), and an
# architecture's builder rebuilds an older layout as it was, or refuses it with an explanation.
LAYOUTS = {"vit": 2}
CURRENT = -1


@dataclass(frozen=True)
class ModelSpec:
    """What a model must fit: stored in checkpoints so that a model can be rebuilt without the data.
    `layout` -1 means the architecture's current layout (LAYOUTS); checkpoints without one are layout 1."""

    architecture: str
    ndim: str
    in_channels: int
    n_classes: int
    spatial: tuple[int, ...]
    layout: int = CURRENT

    def __post_init__(self) -> None:
        if self.layout == CURRENT:
            object.__setattr__(self, "layout", LAYOUTS.get(normalize_architecture(self.architecture), 1))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        return cls(d["architecture"], d["ndim"], int(d["in_channels"]), int(d["n_classes"]), tuple(d["spatial"]),
                   int(d.get("layout", 1)))


def register(name: str) -> Callable:
    def wrap(fn: Callable) -> Callable:
        _BUILDERS[name] = fn
        return fn

    return wrap


def available_architectures() -> list[str]:
    return sorted(_MODULES)


def normalize_architecture(name: str) -> str:
    """BiaPy spells architectures in any case (ViT, EfficientNetB0, simple_cnn)."""
    key = name.strip().lower().replace("-", "_")
    if key.startswith("efficientnetb"):  # BiaPy's spelling: EfficientNetB0
        key = "efficientnet_b" + key[len("efficientnetb"):]
    return key


def build_model(spec: ModelSpec, model_cfg=None):
    """Build `spec.architecture`; `model_cfg` is the MODEL config node (architecture-specific keys)."""
    name = normalize_architecture(spec.architecture)
    if name not in _MODULES:
        raise ConfigError(
            f"MODEL.ARCHITECTURE '{spec.architecture}' is not known. Valid: {', '.join(available_architectures())}."
        )
    importlib.import_module(_MODULES[name])
    return _BUILDERS[name](spec, model_cfg)
