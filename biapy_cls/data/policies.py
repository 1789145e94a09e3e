"""AUGMENTOR.RANDAUGMENT and AUGMENTOR.TRIVIALAUGMENT (2D): torchvision's automatic augmentation policies,
batched, on images of any channel count and bit depth.

RandAugment (Cubuk et al. 2020) applies RANDAUGMENT.N operations drawn at random to every image, each at
magnitude RANDAUGMENT.M of 30 (a random sign for the signed ones); TrivialAugment (Mueller & Hutter 2021)
one operation at a random magnitude. The operations, magnitude ranges and functions are torchvision's
(`transforms.v2.RandAugment`, `TrivialAugmentWide`), drawn here per image instead of once per batch, and
applied to the images of a batch that drew the same (operation, magnitude) together.

Any bit depth: each image is mapped to [0, 1] by its own minimum and maximum before, and back after, so
that torchvision's float operations (which clip to [0, 1]) lose nothing. Any channel count: the colour
operations torchvision accepts only for 1 or 3 channels (brightness, contrast, sharpness, autocontrast)
act on each channel as its own grey image; 'Color' (saturation) blends with the mean of the channels.
Not for images where orientation, intensity or colour is the label: the policies rotate, shear and
recolour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF
from yacs.config import CfgNode as CN

BINS = 31  # torchvision's num_magnitude_bins: magnitudes 0 ... 30


def _space(kind: str, h: int, w: int) -> dict[str, tuple[torch.Tensor, bool]]:
    """op -> (magnitude of each bin, signed), torchvision's tables for RandAugment and TrivialAugmentWide."""
    wide = kind == "trivialaugment"
    lin = lambda top: torch.linspace(0.0, top, BINS)  # noqa: E731
    steps = torch.arange(BINS) / ((BINS - 1) / (6 if wide else 4))
    return {
        "Identity": (torch.zeros(BINS), False),
        "ShearX": (lin(0.99 if wide else 0.3), True),
        "ShearY": (lin(0.99 if wide else 0.3), True),
        "TranslateX": (lin(32.0 if wide else 150.0 / 331.0 * w), True),
        "TranslateY": (lin(32.0 if wide else 150.0 / 331.0 * h), True),
        "Rotate": (lin(135.0 if wide else 30.0), True),
        "Brightness": (lin(0.99 if wide else 0.9), True),
        "Color": (lin(0.99 if wide else 0.9), True),
        "Contrast": (lin(0.99 if wide else 0.9), True),
        "Sharpness": (lin(0.99 if wide else 0.9), True),
        "Posterize": (8 - steps.round(), False),
        "Solarize": (torch.linspace(1.0, 0.0, BINS), False),
        "AutoContrast": (torch.zeros(BINS), False),
        "Equalize": (torch.zeros(BINS), False),
    }


OPS = tuple(_space("randaugment", 1, 1))


def _per_channel(fn, x: torch.Tensor, *args) -> torch.Tensor:
    """Apply a 1-or-3-channel torchvision colour function to any channel count."""
    if x.shape[1] in (1, 3):
        return fn(x, *args)
    n, c, h, w = x.shape
    return fn(x.reshape(n * c, 1, h, w), *args).reshape(n, c, h, w)


def _color(x: torch.Tensor, factor: float) -> torch.Tensor:
    if x.shape[1] == 3:
        return TF.adjust_saturation(x, factor)
    gray = x.mean(1, keepdim=True)  # one channel: gray == x, nothing changes (as torchvision)
    return (factor * x + (1 - factor) * gray).clamp(0, 1)


def apply_op(x: torch.Tensor, op: str, mag: float) -> torch.Tensor:
    """One policy operation on (n, C, H, W) floats in [0, 1], torchvision's definitions."""
    nearest = InterpolationMode.NEAREST
    if op == "Identity":
        return x
    if op in ("ShearX", "ShearY"):
        shear = math.degrees(math.atan(mag))
        return TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0, interpolation=nearest, center=[0, 0],
                         shear=[shear, 0.0] if op == "ShearX" else [0.0, shear])
    if op in ("TranslateX", "TranslateY"):
        move = [int(mag), 0] if op == "TranslateX" else [0, int(mag)]
        return TF.affine(x, angle=0.0, translate=move, scale=1.0, shear=[0.0, 0.0], interpolation=nearest)
    if op == "Rotate":
        return TF.rotate(x, mag, interpolation=nearest)
    if op == "Brightness":
        return _per_channel(TF.adjust_brightness, x, 1.0 + mag)
    if op == "Color":
        return _color(x, 1.0 + mag)
    if op == "Contrast":
        return _per_channel(TF.adjust_contrast, x, 1.0 + mag)
    if op == "Sharpness":
        return _per_channel(TF.adjust_sharpness, x, 1.0 + mag)
    if op == "Posterize":
        return TF.posterize(x, int(mag))
    if op == "Solarize":
        return TF.solarize(x, mag)
    if op == "AutoContrast":
        return _per_channel(TF.autocontrast, x)
    if op == "Equalize":
        return TF.equalize(x)  # a 256-bin histogram, as torchvision (and PIL) compute it
    raise ValueError(op)


@dataclass(frozen=True)
class Policy:
    """RandAugment, TrivialAugment or nothing (`kind` ''), for 2D batches."""

    kind: str = ""
    num_ops: int = 2
    magnitude: int = 9

    @classmethod
    def from_cfg(cls, cfg: CN) -> Policy:
        aug = cfg.AUGMENTOR
        if not aug.ENABLE or cfg.PROBLEM.NDIM != "2D":  # config/check.py refuses them in 3D
            return cls()
        if aug.RANDAUGMENT.ENABLE:
            return cls("randaugment", int(aug.RANDAUGMENT.N), int(aug.RANDAUGMENT.M))
        if aug.TRIVIALAUGMENT:
            return cls("trivialaugment", 1, -1)
        return cls()

    def __bool__(self) -> bool:
        return bool(self.kind)

    def describe(self) -> str:
        if self.kind == "randaugment":
            return f"RANDAUGMENT (N={self.num_ops}, M={self.magnitude}, every image)"
        return "TRIVIALAUGMENT (every image)" if self.kind else ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, dev = x.shape[0], x.device
        space = _space(self.kind, x.shape[-2], x.shape[-1])
        names = list(space)
        dims = (1, 2, 3)
        low, high = x.amin(dims, keepdim=True), x.amax(dims, keepdim=True)
        span = (high - low).clamp_min(1e-12)
        y = ((x - low) / span).clamp(0, 1)
        for _ in range(self.num_ops):
            ops = torch.randint(0, len(names), (n,))
            bins = torch.full((n,), self.magnitude) if self.magnitude >= 0 else torch.randint(0, BINS, (n,))
            signs = torch.randint(0, 2, (n,)) * 2 - 1
            keys = ops * (2 * BINS) + bins * 2 + (signs > 0)
            for key in keys.unique().tolist():
                op, rest = divmod(key, 2 * BINS)
                b, positive = divmod(rest, 2)
                values, signed = space[names[op]]
                mag = float(values[b]) * (1 if positive or not signed else -1)
                sel = (keys == key).nonzero().squeeze(1).to(dev)
                y[sel] = apply_op(y[sel], names[op], mag)
        return y * span + low
