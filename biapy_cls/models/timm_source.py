"""MODEL.SOURCE timm (beyond BiaPy): any model `timm.list_models()` knows (MODEL.TIMM_MODEL_NAME, with or
without a pretrained tag such as resnet18.a1_in1k), 2D. Channels and classes go through timm's own
`in_chans` and `num_classes`; pretrained weights come from the Hugging Face cache (HF_HOME), downloaded
once, and are handed to timm as a local file, so that loading never depends on the network.
"""

from __future__ import annotations

import difflib
import logging

from torch import nn

from biapy_cls.errors import ConfigError
from biapy_cls.models import ModelSpec, WeightsInfo, register_source
from biapy_cls.models.adapt import channel_stats
from biapy_cls.models.weights import fetch_hf, fetch_url, hf_cache_dir, torch_hub_file

log = logging.getLogger("biapy_cls")

SWITCH = "MODEL.TIMM_PRETRAINED"


def pretrained_cfg(name: str) -> dict:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ConfigError(f"timm has no pretrained weights for MODEL.TIMM_MODEL_NAME '{name}'. Set {SWITCH} False to "
                          "start from random weights, or choose a name with weights "
                          "(timm.list_models(pretrained=True)).")
    return cfg.to_dict()


def _fetch(name: str, cfg: dict):
    what = f"of timm {name}"
    if cfg.get("hf_hub_id"):
        return fetch_hf(cfg["hf_hub_id"], what, SWITCH)
    return fetch_url(cfg["url"], what, SWITCH)


@register_source("timm")
class TimmSource:
    def model_name(self, model_cfg) -> str:
        return model_cfg.TIMM_MODEL_NAME

    def check(self, model_cfg, ndim: str) -> list[str]:
        import timm

        name = model_cfg.TIMM_MODEL_NAME
        if not name:
            return ["MODEL.SOURCE is timm but MODEL.TIMM_MODEL_NAME is empty: set a model name, e.g. resnet18 or "
                    "convnext_nano (any name of timm.list_models())."]
        if ndim != "2D":
            return ["MODEL.SOURCE timm builds 2D models; for volumes use MODEL.SOURCE torchvision with a video model "
                    "(e.g. r3d_18) or MODEL.SOURCE biapy."]
        if not timm.is_model(name):
            close = difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=6)
            return [f"MODEL.TIMM_MODEL_NAME '{name}' is not a timm model."
                    + (f" Similar names: {', '.join(close)}." if close else " List them with timm.list_models().")]
        return []

    def weights(self, spec: ModelSpec, model_cfg, fetch: bool = False) -> WeightsInfo | None:
        if not model_cfg.TIMM_PRETRAINED or model_cfg.PRETRAINED_WEIGHTS:
            return None
        cfg = pretrained_cfg(spec.architecture)
        file = _fetch(spec.architecture, cfg) if fetch else (
            hf_cache_dir() / f"models--{cfg['hf_hub_id'].replace('/', '--')}" if cfg.get("hf_hub_id")
            else torch_hub_file(cfg["url"]))
        return WeightsInfo(f"{cfg.get('hf_hub_id') or cfg['url']} (timm {spec.architecture})", file,
                           cfg.get("url") or f"https://huggingface.co/{cfg['hf_hub_id']}",
                           channel_stats(cfg["mean"], spec.in_channels), channel_stats(cfg["std"], spec.in_channels),
                           tuple(cfg["input_size"][1:]))

    def build(self, spec: ModelSpec, model_cfg, pretrained: bool = False) -> nn.Module:
        import timm

        name = spec.architecture
        kwargs = {"in_chans": spec.in_channels, "num_classes": spec.n_classes}
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is not None and cfg.fixed_input_size:  # ViT-like: position embeddings for the patch (resampled)
            kwargs["img_size"] = tuple(spec.spatial)
        if pretrained:
            file = _fetch(name, pretrained_cfg(name))
            # timm loads the local file itself: first-conv channels adapted, head left out for num_classes.
            model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(file)}, **kwargs)
            log.info(f"timm {name}: pretrained weights '{file}'; in_chans {spec.in_channels}, "
                     f"num_classes {spec.n_classes} (head new)")
        else:
            model = timm.create_model(name, pretrained=False, **kwargs)
        head = model.pretrained_cfg.get("classifier") or ()
        model.head_names = (head,) if isinstance(head, str) else tuple(head)
        return model
