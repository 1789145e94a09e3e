"""Normalisation and augmentation, applied to whole batches with torch ops on the training device.

A batch goes through three steps, the same at train, validation and test except step 2:
1. `to_unit`: stored values divided by the dataset's value range (255, 65535 or 1 for floats),
2. augmentation (training only), on values where 1.0 is the dtype's full range,
3. normalisation chosen by DATA.NORMALIZATION.TYPE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from yacs.config import CfgNode as CN

EPS = 1e-6


def to_unit(images: torch.Tensor, value_range: float) -> torch.Tensor:
    return images.float() / value_range


def _per_image(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


@dataclass
class Normalizer:
    """DATA.NORMALIZATION: `div`, `scale_range`, or `zero_mean_unit_variance` per image or with fixed
    MEAN_VAL/STD_VAL (given in the images' raw units)."""

    kind: str = "zero_mean_unit_variance"
    mean: float = -1.0
    std: float = -1.0

    @classmethod
    def from_cfg(cls, cfg: CN) -> Normalizer:
        norm = cfg.DATA.NORMALIZATION
        return cls(norm.TYPE, float(norm.ZERO_MEAN_UNIT_VAR.MEAN_VAL), float(norm.ZERO_MEAN_UNIT_VAR.STD_VAL))

    def state_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean, "std": self.std}

    @classmethod
    def from_state_dict(cls, state: dict) -> Normalizer:
        return cls(state["kind"], float(state["mean"]), float(state["std"]))

    def __call__(self, x: torch.Tensor, value_range: float) -> torch.Tensor:
        """`x` in unit scale (see `to_unit`); `value_range` converts back to raw units where needed."""
        if self.kind == "div":
            return x
        dims = _per_image(x)
        if self.kind == "scale_range":
            low = x.amin(dim=dims, keepdim=True)
            high = x.amax(dim=dims, keepdim=True)
            return (x - low) / (high - low).clamp_min(EPS)
        if self.mean != -1:
            return (x * value_range - self.mean) / self.std
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True, unbiased=False)
        return (x - mean) / std.clamp_min(EPS)


def _random_mask(n: int, prob: float, device: torch.device) -> torch.Tensor:
    return torch.rand(n, device=device) < prob


def _flip(x: torch.Tensor, mask: torch.Tensor, axis: int) -> torch.Tensor:
    return torch.where(mask.view(-1, *[1] * (x.ndim - 1)), x.flip(axis), x)


def rotate_yx(x: torch.Tensor, angles_deg: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Rotate every image (every z-slice alike in 3D) in the y-x plane by its own angle."""
    n = x.shape[0]
    shape = x.shape
    flat = x.reshape(n, -1, shape[-2], shape[-1])  # 3D: fold z into channels, rotate slices together
    theta = torch.deg2rad(angles_deg.to(x.dtype))
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    matrix = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(matrix, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return out.reshape(shape)


class Augmenter:
    """The switched-on AUGMENTOR transformations, each applied to a random subset of the batch."""

    def __init__(self, cfg: CN):
        aug = cfg.AUGMENTOR
        self.ndim = cfg.PROBLEM.NDIM

        def prob(name: str) -> float:
            p = aug[f"{name}_PROB"]
            return float(aug.DA_PROB if p == -1 else p)

        self.ops: list[tuple[str, float]] = [
            (name, prob(name)) for name in ("VFLIP", "HFLIP", "RANDOM_ROT") if aug.ENABLE and aug[name]
        ]
        self.rot_range = tuple(float(v) for v in aug.RANDOM_ROT_RANGE)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def describe(self) -> str:
        return ", ".join(f"{name} (p={p:g})" for name, p in self.ops) or "none"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        for name, p in self.ops:
            mask = _random_mask(n, p, x.device)
            if name == "VFLIP":
                x = _flip(x, mask, -2)
            elif name == "HFLIP":
                x = _flip(x, mask, -1)
            elif name == "RANDOM_ROT":
                low, high = self.rot_range
                angles = torch.empty(n, device=x.device).uniform_(low, high) * mask
                if mask.any():
                    x = rotate_yx(x, angles)
        return x


def describe_normalizer(norm: Normalizer) -> str:
    if norm.kind == "zero_mean_unit_variance":
        return "zero_mean_unit_variance " + ("per image" if norm.mean == -1 else f"(mean {norm.mean:g}, std {norm.std:g})")
    return norm.kind

