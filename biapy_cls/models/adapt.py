"""Fitting a library model to the data: the first convolution to the image channels, the classification
head to the class count, and the weights' normalisation to the channels. Shared by the library sources."""

from __future__ import annotations

import torch
from torch import nn

CONVS = (nn.Conv2d, nn.Conv3d)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def adapt_first_conv(model: nn.Module, channels: int) -> str | None:
    """Give the first 3-channel convolution `channels` inputs; returns its name (None when nothing changed).
    Pretrained RGB kernels become their mean repeated and rescaled by 3/channels, so that the response to
    an image whose channels are equal stays the same (1 channel: the kernels summed, as timm does)."""
    if channels == 3:
        return None
    for name, conv in model.named_modules():
        if isinstance(conv, CONVS) and conv.in_channels == 3 and conv.groups == 1:
            break
    else:
        raise ValueError("no 3-channel convolution to adapt")
    new = type(conv)(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                     conv.groups, conv.bias is not None, conv.padding_mode)
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean.repeat(1, channels, *[1] * (mean.ndim - 2)) * (3.0 / channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    _replace(model, name, new)
    return name


def replace_head(model: nn.Module, n_outputs: int, n_classes: int) -> str:
    """Replace the last layer producing `n_outputs` values (the library's class count) by a freshly
    initialised one producing `n_classes`; returns its name. Linear heads and 1x1 convolution heads
    (squeezenet, s3d) alike."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == n_outputs:
            found = name, nn.Linear(module.in_features, n_classes, bias=module.bias is not None)
        elif isinstance(module, CONVS) and module.out_channels == n_outputs:
            found = name, type(module)(module.in_channels, n_classes, module.kernel_size, module.stride,
                                       module.padding, bias=module.bias is not None)
    if found is None:
        raise ValueError(f"no classification layer with {n_outputs} outputs")
    _replace(model, *found)
    return found[0]


def channel_stats(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    """The weights' per-channel mean or std for `channels` inputs: their own for 3 channels, otherwise their
    average for every channel (the adapted first convolution treats all channels alike)."""
    values = tuple(float(v) for v in values)
    if channels == len(values):
        return values
    return (sum(values) / len(values),) * channels
