"""MODEL.SOURCE torchvision: any classification model of torchvision.models (2D) or torchvision's video
models (3D volumes as (C, Z, Y, X) clips), with the name's DEFAULT weights through torchvision's own
weights API, cached by torch hub in TORCH_HOME/hub/checkpoints.

The image keeps DATA.PATCH_SIZE (no hidden resize): the head is replaced for the class count, the first
convolution adapted to the channel count, and vit_* gets its position embeddings interpolated to the patch.
"""

from __future__ import annotations

import logging

from torch import nn

from biapy_cls.errors import ConfigError
from biapy_cls.models import ModelSpec, WeightsInfo, register_source
from biapy_cls.models.adapt import adapt_first_conv, channel_stats, replace_head
from biapy_cls.models.weights import fetch_url, torch_hub_file

log = logging.getLogger("biapy_cls")

SWITCH = "MODEL.TORCHVISION_PRETRAINED"
NO_AUX = ("googlenet", "inception_v3")  # their auxiliary heads would return tuples while training


def model_names() -> tuple[list[str], list[str]]:
    """(2D classification models, 3D video models) that torchvision knows."""
    import torchvision.models as tvm
    import torchvision.models.video  # noqa: F401 - registers the video models

    return tvm.list_models(module=tvm), tvm.list_models(module=tvm.video)


def default_weights(name: str):
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT


@register_source("torchvision")
class TorchvisionSource:
    def model_name(self, model_cfg) -> str:
        return model_cfg.TORCHVISION_MODEL_NAME

    def check(self, model_cfg, ndim: str) -> list[str]:
        name = model_cfg.TORCHVISION_MODEL_NAME
        if not name:
            return ["MODEL.SOURCE is torchvision but MODEL.TORCHVISION_MODEL_NAME is empty: set a model name, "
                    "e.g. resnet18 (2D) or r3d_18 (3D)."]
        if name.startswith("quantized_"):
            return [f"MODEL.TORCHVISION_MODEL_NAME '{name}': quantized models run inference in int8 and cannot be "
                    f"trained. Use '{name.removeprefix('quantized_')}'."]
        flat, video = model_names()
        if name in (video if ndim == "3D" else flat):
            return []
        if name in flat:
            return [f"MODEL.TORCHVISION_MODEL_NAME '{name}' is a 2D model, but PROBLEM.NDIM is 3D. For volumes use a "
                    f"video model: {', '.join(video)}."]
        if name in video:
            return [f"MODEL.TORCHVISION_MODEL_NAME '{name}' is a video (3D) model, but PROBLEM.NDIM is 2D. Set "
                    "PROBLEM.NDIM 3D, or use a 2D model such as resnet18."]
        return [f"MODEL.TORCHVISION_MODEL_NAME '{name}' is not a torchvision {ndim} classification model. Valid: "
                f"{', '.join(video if ndim == '3D' else flat)}."]

    def weights(self, spec: ModelSpec, model_cfg, fetch: bool = False) -> WeightsInfo | None:
        if not model_cfg.TORCHVISION_PRETRAINED or model_cfg.PRETRAINED_WEIGHTS:
            return None
        weights = default_weights(spec.architecture)
        what = f"{type(weights).__name__}.{weights.name} of torchvision {spec.architecture}"
        if fetch:
            fetch_url(weights.url, what, SWITCH)
        transform = weights.transforms()
        file = torch_hub_file(weights.url)
        return WeightsInfo(what, file, weights.url, channel_stats(transform.mean, spec.in_channels),
                           channel_stats(transform.std, spec.in_channels), tuple(transform.crop_size))

    def build(self, spec: ModelSpec, model_cfg, pretrained: bool = False) -> nn.Module:
        import torchvision.models as tvm

        name = spec.architecture
        weights = default_weights(name)
        n_outputs = len(weights.meta["categories"])  # the library's class count, that of the head to replace
        kwargs = {"aux_logits": False} if name in NO_AUX else {}
        if name.startswith("vit_"):
            _check_vit_size(name, spec.spatial)
        if pretrained:
            fetch_url(weights.url, f"{type(weights).__name__}.{weights.name} of torchvision {name}", SWITCH)
            model = tvm.get_model(name, weights=weights, **kwargs)  # loads the cached file, as torchvision does
        else:
            model = tvm.get_model(name, weights=None, **kwargs)
        if name.startswith("vit_"):
            model = _vit_at_size(model, name, spec.spatial)
        head = replace_head(model, n_outputs, spec.n_classes)
        conv = adapt_first_conv(model, spec.in_channels)
        model.head_names = (head,)  # the new layer; the rest is the backbone (TRAIN.BACKBONE_LR_SCALE)
        if pretrained:
            how = "RGB kernels summed" if spec.in_channels == 1 else "mean RGB kernel repeated, rescaled by 3/channels"
            log.info(f"torchvision {name}: weights {type(weights).__name__}.{weights.name}; head '{head}' replaced for "
                     f"{spec.n_classes} classes" + (f"; first convolution '{conv}' adapted from 3 to "
                                                   f"{spec.in_channels} channel(s) ({how})" if conv else ""))
        return model


def _check_vit_size(name: str, spatial: tuple[int, ...]) -> None:
    token = int(name.rsplit("_", 1)[1])  # vit_b_16: 16-pixel tokens
    if len(set(spatial)) != 1 or spatial[0] % token:
        raise ConfigError(f"torchvision {name} needs a square DATA.PATCH_SIZE whose side is a multiple of its "
                          f"{token}-pixel tokens, e.g. ({4 * token}, {4 * token}, c); the patch is {tuple(spatial)}.")


def _vit_at_size(model: nn.Module, name: str, spatial: tuple[int, ...]) -> nn.Module:
    """torchvision's ViTs take one square size, fixed when built: rebuild at the patch size and carry the
    weights over with the position embeddings interpolated (torchvision's own interpolate_embeddings)."""
    import torchvision.models as tvm
    from torchvision.models.vision_transformer import interpolate_embeddings

    size = spatial[0]
    if size == model.image_size:
        return model
    state = interpolate_embeddings(size, model.patch_size, model.state_dict())
    resized = tvm.get_model(name, weights=None, image_size=size)
    resized.load_state_dict(state)
    return resized

