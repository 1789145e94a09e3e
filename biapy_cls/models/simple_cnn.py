"""A small, fast convolutional classifier for 2D and 3D images.

Three stages of two 3x3(x3) convolutions with batch normalisation and ReLU, each followed by 2x
max-pooling along every axis still long enough to pool; then global average pooling, dropout and one
linear layer. Unlike BiaPy's simple_cnn it ends in logits (the loss applies the softmax) and works for
any input size, anisotropic volumes included.

In 3D the first stage is one stride-2 convolution instead of two full-resolution ones: a volume has
many times the voxels of an image of the same side, and full-resolution 3D convolutions made BiaPy's 3D
simple_cnn take 20 minutes for 10 epochs on 16x32x32 volumes; the stride-2 stem is about 10x cheaper.

`Design.layout = "biapy"` builds BiaPy 3.7.1's own simple_CNN layout instead (biapy/models/simple_cnn.py:
two blocks of 3x3, 3x3, 5x5 convolutions with 32 and 64 filters, dropout 0.4 after each block, a dense
head on the flattened 4x-pooled map with dropout 0.5) without its final softmax; bench/model_ablation.py
uses it to compare the two layouts (docs/models.md). Trained checkpoints are always the default layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from biapy_cls.models import ModelSpec, dropout_rate

WIDTHS = (16, 32, 64)


@dataclass(frozen=True)
class Design:
    """The layout measured in docs/models.md; bench/model_ablation.py switches it."""

    layout: str = "compact"  # "compact": the class below; "biapy": BiaPy 3.7.1's simple_CNN without the softmax


DESIGN = Design()


def _layers(ndim: str):
    if ndim == "3D":
        return nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d
    return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d


class SimpleCNN(nn.Module):
    def __init__(self, spec: ModelSpec, dropout: float = 0.2, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        conv, norm, pool, gap = _layers(spec.ndim)
        size = list(spec.spatial)
        layers: list[nn.Module] = []
        channels = spec.in_channels
        for stage, width in enumerate(widths):
            if stage == 0 and spec.ndim == "3D":
                stride = tuple(2 if s >= 4 else 1 for s in size)
                layers += [
                    conv(channels, width, 3, stride=stride, padding=1, bias=False),
                    norm(width),
                    nn.ReLU(inplace=True),
                ]
                channels, size = width, [-(-s // st) for s, st in zip(size, stride)]
                continue
            for _ in range(2):
                layers += [conv(channels, width, 3, padding=1, bias=False), norm(width), nn.ReLU(inplace=True)]
                channels = width
            kernel = tuple(2 if s >= 2 else 1 for s in size)
            if any(k > 1 for k in kernel):
                layers.append(pool(kernel))
                size = [s // k for s, k in zip(size, kernel)]
        self.features = nn.Sequential(*layers)
        self.pool = gap(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, spec.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.head(self.dropout(x))


class BiapyLayoutCNN(nn.Module):
    """BiaPy 3.7.1's simple_CNN, layer for layer (its order of activation and batch norm included), ending
    in logits: BiaPy's final Softmax fed to a cross-entropy loss that applies another one is left out."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        conv, norm, pool, _ = _layers(spec.ndim)

        def block(c_in: int, width: int, act_first: bool, dropout: float) -> nn.Sequential:
            def act_norm() -> list[nn.Module]:  # fresh modules each time: each batch norm has its own statistics
                return [nn.ReLU(), norm(width)] if act_first else [norm(width), nn.ReLU()]

            return nn.Sequential(conv(c_in, width, 3, padding="same"), *act_norm(),
                                 conv(width, width, 3, padding="same"), *act_norm(),
                                 conv(width, width, 5, padding="same"), pool(2), *act_norm(), nn.Dropout(dropout))

        # BiaPy: block 1 is conv-BN-ReLU, block 2 conv-ReLU-BN (as written in its source)
        self.block1 = block(spec.in_channels, 32, act_first=False, dropout=0.4)
        self.block2 = block(32, 64, act_first=True, dropout=0.4)
        flat = 64
        for s in spec.spatial:
            flat *= s // 4
        self.heads = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(flat, spec.n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.block2(self.block1(x)))


def build_simple_cnn(spec: ModelSpec, model_cfg=None) -> nn.Module:
    if DESIGN.layout == "biapy":  # read when built, so that bench/model_ablation.py can change it
        return BiapyLayoutCNN(spec)
    return SimpleCNN(spec, dropout=dropout_rate(model_cfg, 0.2))
