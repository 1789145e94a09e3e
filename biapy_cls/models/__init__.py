"""One entry point builds every model: `build_model(spec, model_cfg)`, whatever library it comes from.

    model = build_model(ModelSpec(architecture="simple_cnn", ndim="2D", in_channels=1, n_classes=10,
                                  spatial=(32, 32)), cfg.MODEL)

Models come from *sources* (MODEL.SOURCE): `biapy` (this package's architectures, MODEL.ARCHITECTURE),
`torchvision` and `timm` (pretrained libraries, models/torchvision_source.py and models/timm_source.py).
A source is a small class registered with `@register_source("name")` in a module listed in `_SOURCE_MODULES`;
adding one is that module plus one line here. Builders return a `torch.nn.Module` mapping
(N, C, *spatial) float tensors to (N, n_classes) logits: no softmax inside.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from torch import nn

from biapy_cls.errors import ConfigError, UserError

# The registry of this package's architectures, the one place a model is added: name -> "module:builder",
# where builder(spec: ModelSpec, model_cfg) -> nn.Module. Modules are imported only when their model is
# built, so that importing one backbone library (timm, MONAI) never slows down another.
ARCHITECTURES = {
    "simple_cnn": "biapy_cls.models.simple_cnn:build_simple_cnn",
    "vit": "biapy_cls.models.vit:build_vit",
    **{f"efficientnet_b{i}": "biapy_cls.models.efficientnet:build_efficientnet" for i in range(8)},
}
# MODEL.SOURCE -> the module that registers it (imported on first use).
_SOURCE_MODULES = {
    "biapy": __name__,
    "torchvision": "biapy_cls.models.torchvision_source",
    "timm": "biapy_cls.models.timm_source",
}
_SOURCES: dict[str, type] = {}


# The current model layout of each architecture whose layers changed (or changed meaning) since the
# first release; a checkpoint records the layout its model was built with (ModelSpec.layout), and an
# architecture's builder rebuilds an older layout as it was, or refuses it with an explanation.
LAYOUTS = {"vit": 2, **{f"efficientnet_b{i}": 3 for i in range(8)}}
CURRENT = -1


@dataclass(frozen=True)
class ModelSpec:
    """What a model must fit and how to rebuild it: stored in checkpoints so that a model can be rebuilt
    without the data or the pretrained weights. `architecture` is the model's name within its `source`.
    `layout` -1 means the architecture's current layout (LAYOUTS); checkpoints without one are layout 1."""

    architecture: str
    ndim: str
    in_channels: int
    n_classes: int
    spatial: tuple[int, ...]
    source: str = "biapy"
    layout: int = CURRENT

    def __post_init__(self) -> None:
        if self.layout == CURRENT:
            layout = LAYOUTS.get(normalize_architecture(self.architecture), 1) if self.source == "biapy" else 1
            object.__setattr__(self, "layout", layout)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        return cls(d["architecture"], d["ndim"], int(d["in_channels"]), int(d["n_classes"]), tuple(d["spatial"]),
                   d.get("source", "biapy"), int(d.get("layout", 1)))  # older checkpoints: biapy's, layout 1

    @property
    def label(self) -> str:
        return self.architecture if self.source == "biapy" else f"{self.source} {self.architecture}"


@dataclass(frozen=True)
class WeightsInfo:
    """Pretrained weights of a library model: where they come from, where they are cached, and the input
    they expect. `mean`/`std` are per input channel of the adapted model, on images scaled to [0, 1]."""

    name: str  # what the weights are called in their library, e.g. ResNet18_Weights.IMAGENET1K_V1
    file: Path  # the cached file, present or not
    url: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    trained_size: tuple[int, ...]  # the spatial size the weights were trained at

    @property
    def present(self) -> bool:
        return self.file.is_file()


def dropout_rate(model_cfg, default: float) -> float:
    """MODEL.DROPOUT_VALUES[0] (the rate before the classification head), or the architecture's own default
    when the list is empty or there is no MODEL node."""
    if model_cfg is not None and len(model_cfg.DROPOUT_VALUES):
        return float(model_cfg.DROPOUT_VALUES[0])
    return default


def register_source(name: str) -> Callable:
    def wrap(cls: type) -> type:
        _SOURCES[name] = cls
        return cls

    return wrap


def available_sources() -> list[str]:
    return sorted(_SOURCE_MODULES)


def get_source(name: str):
    """The source registered as MODEL.SOURCE `name` (an instance)."""
    if name not in _SOURCE_MODULES:
        raise ConfigError(f"MODEL.SOURCE '{name}' is not known. Valid: {', '.join(available_sources())}.")
    importlib.import_module(_SOURCE_MODULES[name])
    return _SOURCES[name]()


def available_architectures() -> list[str]:
    return sorted(ARCHITECTURES)


def architecture_module(name: str) -> str:
    """The module that defines architecture `name` (normalised), e.g. biapy_cls.models.simple_cnn."""
    return ARCHITECTURES[name].split(":")[0]


def architecture_builder(name: str) -> Callable:
    """builder(spec, model_cfg) of architecture `name` (normalised), its module imported now."""
    module, function = ARCHITECTURES[name].split(":")
    return getattr(importlib.import_module(module), function)


def normalize_architecture(name: str) -> str:
    """BiaPy spells architectures in any case (ViT, EfficientNetB0, simple_cnn)."""
    key = name.strip().lower().replace("-", "_")
    if key.startswith("efficientnetb"):  # BiaPy's spelling: EfficientNetB0
        key = "efficientnet_b" + key[len("efficientnetb"):]
    return key


def model_name(model_cfg) -> str:
    """The model's name within MODEL.SOURCE (MODEL.ARCHITECTURE, TORCHVISION_MODEL_NAME, ...)."""
    return get_source(model_cfg.SOURCE).model_name(model_cfg)


def build_model(spec: ModelSpec, model_cfg=None, pretrained: bool = False) -> nn.Module:
    """Build `spec`; `model_cfg` is the MODEL config node (architecture-specific keys). With `pretrained`,
    a library model starts from its pretrained weights (fetched into the cache first if needed, see
    `pretrained_weights`); without, from random values, as a model rebuilt from a checkpoint does."""
    return get_source(spec.source).build(spec, model_cfg, pretrained)


def pretrained_weights(spec: ModelSpec, model_cfg, fetch: bool = False) -> WeightsInfo | None:
    """The pretrained weights `spec` starts from (None: random start); with `fetch`, downloaded into the
    cache if absent, or a WeightsUnavailable error that says how to place the file by hand."""
    return get_source(spec.source).weights(spec, model_cfg, fetch)


def check_input(spec: ModelSpec, model_cfg) -> None:
    """Build `spec` with random weights and run one blank image through it, so that a library model that
    cannot take DATA.PATCH_SIZE (or the channel count) fails now, before anything is written, not mid-run."""
    import torch

    try:
        model = build_model(spec, model_cfg).eval()
        with torch.no_grad():
            out = model(torch.zeros(1, spec.in_channels, *spec.spatial))
        if tuple(out.shape) != (1, spec.n_classes):
            raise ValueError(f"its output has shape {tuple(out.shape)} instead of (1, {spec.n_classes})")
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - every library fails in its own way on a size it cannot take
        raise ConfigError(
            f"{spec.label} cannot classify {spec.ndim} images of size {tuple(spec.spatial)} with {spec.in_channels} "
            f"channel(s) ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}). Set "
            "DATA.PATCH_SIZE to a size this model accepts (most ImageNet models need at least 32x32; models with "
            "a fixed input such as maxvit_t need their training size, e.g. 224x224), or choose another model."
        ) from None


@register_source("biapy")
class BiapySource:
    """This package's own architectures (MODEL.ARCHITECTURE); pretrained only from MODEL.PRETRAINED_WEIGHTS."""

    def model_name(self, model_cfg) -> str:
        return model_cfg.ARCHITECTURE

    def check(self, model_cfg, ndim: str) -> list[str]:
        if normalize_architecture(model_cfg.ARCHITECTURE) not in ARCHITECTURES:
            return [f"MODEL.ARCHITECTURE '{model_cfg.ARCHITECTURE}' is not known. Valid: "
                    f"{', '.join(available_architectures())}."]
        return []

    def weights(self, spec: ModelSpec, model_cfg, fetch: bool = False) -> WeightsInfo | None:
        return None

    def build(self, spec: ModelSpec, model_cfg, pretrained: bool = False) -> nn.Module:
        name = normalize_architecture(spec.architecture)
        if name not in ARCHITECTURES:
            raise ConfigError(
                f"MODEL.ARCHITECTURE '{spec.architecture}' is not known. Valid: {', '.join(available_architectures())}."
            )
        return architecture_builder(name)(spec, model_cfg)
