"""Vision Transformer for 2D images and 3D volumes, made to train like a CNN on small biomedical data.

Layout 2 (issue 14), measured on the digits under a BiaPy user's settings (AdamW, LR 1e-3, no scheduler,
10 epochs; the ablation table is in docs/models.md):

- Convolutional stem (Xiao et al. 2021, "Early convolutions help transformers see better"): a stack of
  stride-2 3x3(x3) convolutions with batch norm and ReLU, one per halving of the token size (8-pixel
  tokens: 3 convolutions), then a 1x1 projection to the embedding width; instead of one large
  kernel = stride patchify convolution. Strides stop along an axis once its token side is reached
  (16x32x32 volumes: 4x8x8 tokens), and a token side that is not a power of 2 ends with a
  kernel = stride convolution for the rest.
- No class token: the head reads the mean of the tokens (after a LayerNorm).
- LayerScale (residual branches start at 0.1x) and normalised queries and keys.
- A short linear warm-up when TRAIN.LR_SCHEDULER sets none (biapy_cls.engine.optim.auto_warmup_steps,
  from `warmup_epochs` below).

Size keys (MODEL.VIT_TOKEN_SIZE, VIT_EMBED_DIM, VIT_NUM_LAYERS, VIT_NUM_HEADS) default to -1, "auto":
a key the user sets is used as given; an unset one is chosen for the patch size. BiaPy's fixed default
(ViT-Base/16: 85M parameters, 16-pixel tokens) gives a 2x2 token grid on 32x32 images and learns
almost nothing there. MODEL.VIT_MODEL other than 'custom' starts from that named model's sizes (still
overridden by keys the user sets). Inputs whose size is not a multiple of the token size are
zero-padded up to one. With MODEL.PRETRAINED_WEIGHTS (2D) the model is timm's VisionTransformer
(biapy_cls.models.vit_legacy), which the weights fit; checkpoints of layout 1 are rebuilt from there too.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from biapy_cls.errors import CheckpointError
from biapy_cls.models import ModelSpec, dropout_rate
from biapy_cls.models.vit_legacy import PaddedViT2D, build_layout1, pad_to, padded

log = logging.getLogger("biapy_cls")

# MODEL.VIT_MODEL -> (token size, embedding width, layers, heads), the sizes of timm's models of that name.
PRESETS = {
    "vit_base_patch16": (16, 768, 12, 12),
    "vit_large_patch16": (16, 1024, 24, 16),
    "vit_huge_patch14": (14, 1280, 32, 16),
}
AUTO = -1
KEY_NAMES = {"token": "VIT_TOKEN_SIZE", "dim": "VIT_EMBED_DIM", "depth": "VIT_NUM_LAYERS", "heads": "VIT_NUM_HEADS"}
LAYOUT = 2  # stored in checkpoints (ModelSpec.layout); 1 = before issue 14, rebuilt by vit_legacy


@dataclass(frozen=True)
class Design:
    """The choices measured in docs/models.md; bench/model_ablation.py switches them one at a time."""

    stem: str = "conv"  # "conv": stride-2 3x3 convs; "patchify": one kernel = stride = token convolution
    pool: str = "avg"  # "avg": mean of the tokens; "cls": a class token read by the head
    stable: bool = True  # LayerScale 0.1 and qk-norm in every block
    warmup_epochs: float = 1.0  # automatic warm-up when TRAIN.LR_SCHEDULER.NAME is ''


DESIGN = Design()


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
    dropout = dropout_rate(model_cfg, 0.0)
    chosen = {"tokens": tokens, "dim": dim, "depth": depth, "heads": heads, "mlp_ratio": mlp_ratio, "eps": eps,
              "dropout": dropout}
    auto = [k for k, v in user.items() if v == AUTO]
    if auto and preset is None:
        log.info(f"ViT sizes for a {'x'.join(map(str, spatial))} patch: token {'x'.join(map(str, tokens))}, "
                 f"width {dim}, {depth} layers, {heads} heads (chosen for the patch size: "
                 f"{', '.join(KEY_NAMES[k] for k in auto)} not set).")
    return chosen


def _use_stem(model_cfg) -> bool:
    return not (model_cfg is not None and getattr(model_cfg, "PRETRAINED_WEIGHTS", ""))


def _halvings(token: int) -> int:
    """How many stride-2 steps fit in a token side (its factors of 2)."""
    n = 0
    while token % 2 == 0:
        token //= 2
        n += 1
    return n


def conv_stem(ndim: str, in_channels: int, dim: int, tokens: tuple[int, ...]) -> nn.Sequential:
    """Stride-2 3x3(x3) conv + BN + ReLU per halving of the token side (widths dim/2^k, at least 16),
    then a projection to `dim`: 1x1, or kernel = stride = the part of the token side left over."""
    conv, norm = (nn.Conv3d, nn.BatchNorm3d) if ndim == "3D" else (nn.Conv2d, nn.BatchNorm2d)
    halvings = [_halvings(t) for t in tokens]
    steps = max(halvings)
    layers: list[nn.Module] = []
    channels = in_channels
    for step in range(steps):
        width = max(16, dim >> (steps - step))
        stride = tuple(2 if step < h else 1 for h in halvings)
        layers += [conv(channels, width, 3, stride=stride, padding=1, bias=False), norm(width), nn.ReLU(inplace=True)]
        channels = width
    rest = tuple(t >> h for t, h in zip(tokens, halvings))
    layers.append(conv(channels, dim, kernel_size=rest, stride=rest))
    return nn.Sequential(*layers)


class ViT(nn.Module):
    """Token embedding (conv stem or patchify), learned position embedding, timm transformer blocks,
    then the mean of the tokens (or a class token) -> LayerNorm -> dropout -> linear head. 2D and 3D."""

    def __init__(self, spec: ModelSpec, sizes: dict, design: Design | None = None):
        super().__init__()
        design = design or DESIGN  # read when built, so that bench/model_ablation.py can change it
        from timm.layers import trunc_normal_
        from timm.models.vision_transformer import Block

        tokens, dim = sizes["tokens"], sizes["dim"]
        self.size = padded(spec.spatial, tokens)
        self.warmup_epochs = design.warmup_epochs  # read by the trainer's automatic warm-up
        n_tokens = math.prod(s // t for s, t in zip(self.size, tokens))
        norm = partial(nn.LayerNorm, eps=sizes["eps"])
        conv = nn.Conv3d if spec.ndim == "3D" else nn.Conv2d
        if design.stem == "conv":
            self.embed = conv_stem(spec.ndim, spec.in_channels, dim, tokens)
        else:
            self.embed = conv(spec.in_channels, dim, kernel_size=tokens, stride=tokens)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if design.pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, dim))
        stable = {"init_values": 0.1, "qk_norm": True} if design.stable else {}
        self.blocks = nn.Sequential(*[Block(dim, sizes["heads"], sizes["mlp_ratio"], qkv_bias=True, norm_layer=norm,
                                            **stable) for _ in range(sizes["depth"])])
        self.norm = norm(dim)
        self.head_drop = nn.Dropout(sizes["dropout"])
        self.head = nn.Linear(dim, spec.n_classes)
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        self.apply(_init_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(pad_to(x, self.size)).flatten(2).transpose(1, 2) + self.pos_embed
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(x)
        x = x[:, 0] if self.cls_token is not None else x.mean(1)
        return self.head(self.head_drop(self.norm(x)))


def _init_linear(module: nn.Module) -> None:
    """timm's ViT initialisation of linear layers (truncated normal, std 0.02, zero bias)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_vit(spec: ModelSpec, model_cfg=None) -> nn.Module:
    if spec.layout > LAYOUT:
        raise CheckpointError(f"This ViT checkpoint has model layout {spec.layout}, newer than this biapy-cls "
                              f"knows ({LAYOUT}). Update biapy-cls to use it.")
    sizes = vit_sizes(spec, model_cfg)
    if not _use_stem(model_cfg) and spec.ndim == "2D":
        return PaddedViT2D(spec, sizes, stem=False)  # the layout timm weights fit
    if spec.layout == 1:
        log.info("The checkpoint holds a ViT of layout 1 (biapy-cls before issue 14): rebuilt as it was.")
        return build_layout1(spec, sizes)
    return ViT(spec, sizes)
