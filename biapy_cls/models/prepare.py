"""The model a run asks for, settled while the run is planned: its ModelSpec from MODEL.* and the data,
a dry run of a library model at the patch size, and its pretrained weights present in the cache. All of
it happens before the output folder is claimed, so that a bad size or missing weights write nothing."""

from __future__ import annotations

from biapy_cls.models import ModelSpec, WeightsInfo, check_input, model_name, pretrained_weights

# Below this fraction of the resolution the weights were trained at, say that the features are at another scale.
SMALL_FRACTION = 0.25


def run_model_spec(model_cfg, ndim: str, channels: int, spatial: tuple[int, ...], n_classes: int) -> ModelSpec:
    return ModelSpec(model_name(model_cfg), ndim, channels, n_classes, tuple(spatial), model_cfg.SOURCE)


def prepare_model(spec: ModelSpec, model_cfg, fetch: bool) -> WeightsInfo | None:
    """Check that a library model takes the patch; with `fetch`, make sure its pretrained weights are in the
    cache (downloading them), else a WeightsUnavailable error. Returns those weights (None: random start)."""
    if spec.source != "biapy":
        check_input(spec, model_cfg)
    return pretrained_weights(spec, model_cfg, fetch=fetch)


def size_warning(spec: ModelSpec, weights: WeightsInfo | None) -> str | None:
    """A warning when the patch is far smaller than the images the weights were trained on."""
    if weights is None or not weights.trained_size:
        return None
    trained = weights.trained_size[-2:]
    if min(spec.spatial[-2:]) >= SMALL_FRACTION * min(trained):
        return None
    channels = spec.in_channels
    want = (*spec.spatial[:-2], *trained, channels)
    return (f"The patch {tuple(spec.spatial)} is far smaller than the {'x'.join(map(str, trained))} images the "
            f"weights {weights.name} were trained on: the pretrained features are tuned to another scale and help "
            f"less. If your images are larger, set DATA.PATCH_SIZE closer to {want}; with small images, a "
            "shallower model or TRAIN.BACKBONE_LR_SCALE 1.0 (full fine-tuning) usually does better.")


def describe_model(model_cfg) -> str:
    """The model as the report names it: 'resnet18 (torchvision, pretrained)', or the biapy architecture."""
    source = model_cfg.get("SOURCE", "biapy")
    if source == "biapy":
        return model_cfg.ARCHITECTURE
    return f"{model_name(model_cfg)} ({source}" + (", pretrained)" if uses_pretrained(model_cfg) else ", random start)")


def uses_pretrained(model_cfg) -> bool:
    """True when a library source starts from its own pretrained weights (MODEL.<SOURCE>_PRETRAINED), and so
    normalises with their statistics instead of DATA.NORMALIZATION."""
    source = model_cfg.get("SOURCE", "biapy")
    switch = model_cfg.get(f"{source.upper()}_PRETRAINED")
    return source != "biapy" and not model_cfg.PRETRAINED_WEIGHTS and bool(switch)
