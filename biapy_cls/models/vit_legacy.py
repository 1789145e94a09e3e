"""The ViT built on timm's VisionTransformer, kept for two uses:

- MODEL.PRETRAINED_WEIGHTS: timm weights fit timm's plain patch embedding, class token and blocks,
  so a 2D ViT that starts from such a file is `PaddedViT2D(stem=False)`.
- checkpoints of layout 1 (biapy-cls before issue 14): one 3x3 convolution before an 8x8 token
  projection, a class token in the sequence, mean of the patch tokens for the head. Such checkpoints
  are rebuilt with exactly that model, so that they still load and mean what they meant.
New models use biapy_cls.models.vit.ViT (layout 2).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from biapy_cls.models import ModelSpec

STEM_CHANNELS = 32
# LayerScale and normalised queries/keys, as layout 1 used them.
STABLE = {"init_values": 0.1, "qk_norm": True}


def conv_stem(ndim: str, in_channels: int, dim: int, tokens: tuple[int, ...]) -> nn.Sequential:
    """Layout 1: 3x3 convolution + BN + ReLU, then the token projection (kernel = stride = token size)."""
    conv, norm = (nn.Conv3d, nn.BatchNorm3d) if ndim == "3D" else (nn.Conv2d, nn.BatchNorm2d)
    return nn.Sequential(conv(in_channels, STEM_CHANNELS, 3, padding=1, bias=False), norm(STEM_CHANNELS),
                         nn.ReLU(inplace=True), conv(STEM_CHANNELS, dim, kernel_size=tokens, stride=tokens))


def padded(spatial: tuple[int, ...], tokens: tuple[int, ...]) -> tuple[int, ...]:
    """`spatial` rounded up to a multiple of the token size along every axis."""
    return tuple(-(-s // t) * t for s, t in zip(spatial, tokens))


def pad_to(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
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

        self.size = padded(spec.spatial, sizes["tokens"])
        self.vit = VisionTransformer(
            img_size=self.size, patch_size=sizes["tokens"], in_chans=spec.in_channels, num_classes=spec.n_classes,
            embed_dim=sizes["dim"], depth=sizes["depth"], num_heads=sizes["heads"], mlp_ratio=sizes["mlp_ratio"],
            norm_layer=partial(nn.LayerNorm, eps=sizes["eps"]), drop_rate=sizes["dropout"],
            global_pool="avg", **(STABLE if stem else {}),
        )
        if stem:  # timm's PatchEmbed applies `proj` and flattens: the stem slots in there
            self.vit.patch_embed.proj = conv_stem("2D", spec.in_channels, sizes["dim"], sizes["tokens"])

    @property
    def timm_module(self) -> nn.Module:
        """The timm model, into which MODEL.PRETRAINED_WEIGHTS are loaded."""
        return self.vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(pad_to(x, self.size))


class ViT3D(nn.Module):
    """Layout 1 in 3D: Conv3d stem + token projection, class token, timm blocks, mean of the patch tokens."""

    def __init__(self, spec: ModelSpec, sizes: dict):
        super().__init__()
        from timm.layers import trunc_normal_
        from timm.models.vision_transformer import Block

        tokens, dim = sizes["tokens"], sizes["dim"]
        self.size = padded(spec.spatial, tokens)
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
        self.apply(_init_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pad_to(x, self.size)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.blocks(x)
        x = self.fc_norm(x[:, 1:].mean(1))
        return self.head(self.head_drop(x))


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_layout1(spec: ModelSpec, sizes: dict) -> nn.Module:
    """The ViT of a layout-1 checkpoint."""
    return ViT3D(spec, sizes) if spec.ndim == "3D" else PaddedViT2D(spec, sizes, stem=True)
