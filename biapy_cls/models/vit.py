"""Vision Transformer for 2D images (timm's VisionTransformer) and 3D volumes (a Conv3d patch embedding
followed by timm's transformer blocks).

Size keys (MODEL.VIT_TOKEN_SIZE, VIT_EMBED_DIM, VIT_NUM_LAYERS, VIT_NUM_HEADS) default to -1, "auto":
a key the user sets is used as given; an unset one is chosen for the patch size. BiaPy's fixed default
(ViT-Base/16: 85M parameters, 16-pixel tokens) gives a 2x2 token grid on 32x32 images and learns
almost nothing there; small images need small tokens and a narrow, shallow model. MODEL.VIT_MODEL
other than 'custom' starts from that named model's sizes (still overridden by keys the user sets).
Inputs whose size is not a multiple of the token size are zero-padded up to one, so any patch size,
square or not, works.

The patch embedding starts with one 3x3(x3) convolution (32 channels, batch norm, ReLU) before the
strided token projection: early convolutions make ViTs train faster and more stably on small data
(Xiao et al. 2021, "Early convolutions help transformers see better"), for a few percent of the cost.
With MODEL.PRETRAINED_WEIGHTS the plain timm patch embedding is kept, so that the weights fit it.
"""

from __future__ import annotations

import logging
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from biapy_cls.models import ModelSpec, register

log = logging.getLogger("biapy_cls")

# MODEL.VIT_MODEL -> (token size, embedding width, layers, heads), the sizes of timm's models of that name.
PRESETS = {
    "vit_base_patch16": (16, 768, 12, 12),
    "vit_large_patch16": (16, 1024, 24, 16),
    "vit_huge_patch14": (14, 1280, 32, 16),
}
AUTO = -1
KEY_SUFFIX = {"token": "TOKEN_SIZE", "dim": "EMBED_DIM", "depth": "NUM_LAYERS", "heads": "NUM_HEADS"}  # MODEL.VIT_*
STEM_CHANNELS = 32
# LayerScale (residual branches start at 0.1x) and normalised queries/keys keep a small ViT trainable at
# the learning rates a CNN uses (AdamW 1e-3 to 3e-3) without warm-up; without them it stayed at chance.
STABLE = {"init_values": 0.1, "qk_norm": True}


def conv_stem(ndim: str, in_channels: int, dim: int, tokens: tuple[int, ...]) -> nn.Sequential:
    """3x3 convolution + BN + ReLU, then the token projection (kernel = stride = token size)."""
    conv, norm = (nn.Conv3d, nn.BatchNorm3d) if ndim == "3D" else (nn.Conv2d, nn.BatchNorm2d)
    return nn.Sequential(conv(in_channels, STEM_CHANNELS, 3, padding=1, bias=False), norm(STEM_CHANNELS),
                         nn.ReLU(inplace=True), conv(STEM_CHANNELS, dim, kernel_size=tokens, stride=tokens))


def _use_stem(model_cfg) -> bool:
    return not (model_cfg is not None and getattr(model_cfg, "PRETRAINED_WEIGHTS", ""))


def _auto_token(size: int, min_grid: int) -> int:
    """Largest token side from (16, 8, 4, 2) leaving at least `min_grid` tokens along an axis of `size`."""
    for token in (16, 8, 4, 2):
        if size // token >= min_grid:
            return token
    return 1


def _auto_width(n_tokens: int, min_side: int) -> tuple[int, int, int]:
    """(width, layers, heads) for a grid of `n_tokens`: narrow and shallow for small images, where the
    few thousand images of a typical small dataset cannot train a wide model and the CPU cannot afford it."""
    if min_side <= 64:
        return 128, 4, 4
    if min_side <= 160:
        return 256, 6, 4
    return 384, 8, 6


def _heads_for(dim: int, wanted: int) -> int:
    """The largest head count <= `wanted` that divides `dim`."""
    return next(h for h in range(max(1, min(wanted, dim)), 0, -1) if dim % h == 0)


def vit_sizes(spec: ModelSpec, model_cfg) -> dict:
    """The ViT's sizes: preset, then auto choices for unset keys, then the keys the user set."""
    spatial = spec.spatial
    preset = PRESETS.get(str(getattr(model_cfg, "VIT_MODEL", "custom")).lower())
    user = {
        "token": int(getattr(model_cfg, "VIT_TOKEN_SIZE", AUTO)),
        "dim": int(getattr(model_cfg, "VIT_EMBED_DIM", AUTO)),
        "depth": int(getattr(model_cfg, "VIT_NUM_LAYERS", AUTO)),
        "heads": int(getattr(model_cfg, "VIT_NUM_HEADS", AUTO)),
    }
    if preset is not None:
        token, dim, depth, heads = preset
        tokens = tuple(token for _ in spatial)
    else:
        # Few, larger tokens: on 32x32 digits an 8x8-token grid (token 4) trained 2.4x slower than a 4x4
        # grid (token 8) and had not left chance level after 2 epochs; the 4x4 grid reached 0.95 in 10.
        min_grid = 4  # a 4x4 (2D) or 4x4x4 (3D) token grid: 32x32 images get 8x8 tokens
        tokens = tuple(_auto_token(s, min_grid) for s in spatial)
        n_tokens = 1
        for s, t in zip(spatial, tokens):
            n_tokens *= -(-s // t)
        dim, depth, heads = _auto_width(n_tokens, min(spatial))
    if user["token"] != AUTO:
        tokens = tuple(user["token"] for _ in spatial)
    dim = user["dim"] if user["dim"] != AUTO else dim
    depth = user["depth"] if user["depth"] != AUTO else depth
    heads = user["heads"] if user["heads"] != AUTO else _heads_for(dim, heads)
    mlp_ratio = float(getattr(model_cfg, "VIT_MLP_RATIO", 4.0))
    eps = float(getattr(model_cfg, "VIT_NORM_EPS", 1e-6))
    dropout = float(model_cfg.DROPOUT_VALUES[0]) if model_cfg is not None and len(model_cfg.DROPOUT_VALUES) else 0.0
    chosen = {"tokens": tokens, "dim": dim, "depth": depth, "heads": heads, "mlp_ratio": mlp_ratio, "eps": eps,
              "dropout": dropout}
    auto = [k for k, v in user.items() if v == AUTO]
    if auto and preset is None:
        log.info(
            f"ViT sizes for a {'x'.join(map(str, spatial))} patch: token {'x'.join(map(str, tokens))}, "
            f"width {dim}, {depth} layers, {heads} heads (chosen for the patch size: "
            f"{', '.join('VIT_' + KEY_SUFFIX[k] for k in auto)} not set)."
        )
    return chosen


def _padded(spatial: tuple[int, ...], tokens: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(-(-s // t) * t for s, t in zip(spatial, tokens))


def _pad_to(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad the spatial axes of `x` at their end up to `size` (no-op when already that size)."""
    extra = [w - h for h, w in zip(x.shape[2:], size)]
    if not any(extra):
        return x
    pads: list[int] = []
    for e in reversed(extra):
        pads += [0, e]
    return F.pad(x, pads)


class PaddedViT2D(nn.Module):
    """timm's VisionTransformer behind zero-padding to a multiple of the token size."""

    def __init__(self, spec: ModelSpec, sizes: dict, stem: bool = True):
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.size = _padded(spec.spatial, sizes["tokens"])
        self.vit = VisionTransformer(
            img_size=self.size, patch_size=sizes["tokens"], in_chans=spec.in_channels, num_classes=spec.n_classes,
            embed_dim=sizes["dim"], depth=sizes["depth"], num_heads=sizes["heads"], mlp_ratio=sizes["mlp_ratio"],
            norm_layer=partial(nn.LayerNorm, eps=sizes["eps"]), drop_rate=sizes["dropout"],
            # Averaging the patch tokens learns faster on small datasets than reading the class token.
            global_pool="avg",
            **(STABLE if stem else {}),
        )
        if stem:  # timm's PatchEmbed applies `proj` and flattens: the stem slots in there
            self.vit.patch_embed.proj = conv_stem("2D", spec.in_channels, sizes["dim"], sizes["tokens"])

    @property
    def timm_module(self) -> nn.Module:
        """The timm model, into which MODEL.PRETRAINED_WEIGHTS are loaded."""
        return self.vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(_pad_to(x, self.size))


class ViT3D(nn.Module):
    """A ViT for volumes: Conv3d patch embedding, learned position embedding, timm blocks, mean pooling."""

    def __init__(self, spec: ModelSpec, sizes: dict):
        super().__init__()
        from timm.layers import trunc_normal_
        from timm.models.vision_transformer import Block

        tokens, dim = sizes["tokens"], sizes["dim"]
        self.size = _padded(spec.spatial, tokens)
        n_tokens = 1
        for s, t in zip(self.size, tokens):
            n_tokens *= s // t
        norm = partial(nn.LayerNorm, eps=sizes["eps"])
        self.patch_embed = conv_stem("3D", spec.in_channels, dim, tokens)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, sizes["heads"], sizes["mlp_ratio"], qkv_bias=True, norm_layer=norm,
                                            **STABLE)
                                      for _ in range(sizes["depth"])])
        self.fc_norm = norm(dim)
        self.head_drop = nn.Dropout(sizes["dropout"])
        self.head = nn.Linear(dim, spec.n_classes)
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(_pad_to(x, self.size)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.blocks(x)
        x = self.fc_norm(x[:, 1:].mean(1))
        return self.head(self.head_drop(x))


@register("vit")
def build_vit(spec: ModelSpec, model_cfg=None) -> nn.Module:
    sizes = vit_sizes(spec, model_cfg)
    return ViT3D(spec, sizes) if spec.ndim == "3D" else PaddedViT2D(spec, sizes, stem=_use_stem(model_cfg))
