"""AUGMENTOR.RANDAUGMENT and AUGMENTOR.TRIVIALAUGMENT (2D): torchvision's automatic augmentation policies,
batched, on images of any channel count and bit depth.

RandAugment (Cubuk et al. 2020) applies RANDAUGMENT.N operations drawn at random to every image, each at
magnitude RANDAUGMENT.M of 30 (a random sign for the signed ones); TrivialAugment (Mueller & Hutter 2021)
one operation at a random magnitude. The operations and magnitude ranges are torchvision's
(`transforms.v2.RandAugment`, `TrivialAugmentWide`), drawn here per image instead of once per batch; each
operation is written out with a magnitude per image (torchvision's functions take one per call) and
computed for all the images that drew it at once.

Any bit depth: each image is mapped to [0, 1] by its own minimum and maximum before, and back after, so
that the operations (which clip to [0, 1], as torchvision's) lose nothing. Any channel count: where
torchvision needs 1 or 3 channels, 'Color' (saturation) blends with the mean of the channels and
'Contrast' with each channel's own mean.
Not for images where orientation, intensity or colour is the label: the policies rotate, shear and
recolour.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from biapy_cls.config.settings import PolicySettings
from biapy_cls.data.augment_filters import select, small_tensor
from biapy_cls.data.augment_ops import replace_images

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


def _gray(x: torch.Tensor) -> torch.Tensor:
    """torchvision's luminance for 3 channels, the mean of the channels otherwise (one channel: itself)."""
    if x.shape[1] == 3:
        return (0.2989 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    return x.mean(1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's _blend with one factor per image ((n, 1, 1, 1), x's dtype): factor x + (1 - factor) other,
    clipped to [0, 1]."""
    return (factor * x + (1 - factor) * other).clamp(0, 1)


GEOMETRY = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def _geometry(x: torch.Tensor, ops: list[str], values: list[float]) -> torch.Tensor:
    """ShearX/Y (shear factor, about the image's top-left corner, the outer edge of its first pixel, as PIL
    and torchvision's center=[0, 0]: hence the half pixel), TranslateX/Y (whole pixels) and Rotate
    (degrees, about the centre), image i doing ops[i] (any other name: unchanged) with magnitude values[i]:
    one nearest-neighbour resampling for all of them, zeros outside (torchvision's default fill). Each
    moved image gets its own matrix from source to output pixel positions, written out in Python (a few
    numbers per image: cheaper than tensor operations at this size), then one product with the pixel grid."""
    n, _, h, w = x.shape
    moved = [i for i, op in enumerate(ops) if op in GEOMETRY]
    if not moved:
        return x
    cx, cy = (w - 1) / 2, (h - 1) / 2
    rows = []  # source (x, y) = [[a, b, c], [d, e, f]] @ (x, y, 1) of the output pixel, in pixel indices
    for i in moved:
        op, v = ops[i], float(values[i])
        if op == "ShearX":
            rows.append([[1.0, v, 0.5 * v], [0.0, 1.0, 0.0]])
        elif op == "ShearY":
            rows.append([[1.0, 0.0, 0.0], [v, 1.0, 0.5 * v]])
        elif op == "TranslateX":
            rows.append([[1.0, 0.0, -float(math.trunc(v))], [0.0, 1.0, 0.0]])
        elif op == "TranslateY":
            rows.append([[1.0, 0.0, 0.0], [0.0, 1.0, -float(math.trunc(v))]])
        else:  # Rotate: counter-clockwise by v degrees about the centre, as torchvision
            c, s = math.cos(math.radians(v)), math.sin(math.radians(v))
            rows.append([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy]])
    # pixel index p -> grid_sample's [-1, 1] units (align_corners=False): (2 p + 1) / size - 1
    sx, ox, sy, oy = 2.0 / w, 1.0 / w - 1, 2.0 / h, 1.0 / h - 1
    matrices = [[[sx * a, sx * b, sx * c + ox], [sy * d, sy * e, sy * f + oy]] for (a, b, c), (d, e, f) in rows]
    flat = [v for matrix in matrices for row in matrix for v in row]
    grid = _affine_pixels(small_tensor(flat, x.dtype, x.device).view(-1, 2, 3), h, w)
    return replace_images(x.clone(), moved, lambda sub, _: F.grid_sample(sub, grid, mode="nearest",
                                                                         padding_mode="zeros", align_corners=False))


@functools.lru_cache(maxsize=16)
def _pixel_positions(h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(3, h * w): (x, y, 1) of every pixel index, built once per size."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype, device=device), torch.arange(w, dtype=dtype, device=device),
                            indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(h * w, dtype=dtype, device=device)])


def _affine_pixels(matrices: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(k, h, w, 2): each matrix (k, 2, 3) applied to (x, y, 1) of every pixel index."""
    return (matrices @ _pixel_positions(h, w, matrices.dtype, matrices.device)).transpose(1, 2).reshape(-1, h, w, 2)


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_sharpness target: a 3x3 smoothing ([1 1 1; 1 5 1; 1 1 1] / 13) whose border
    pixels are the image's own, per channel; written as shifted sums (a convolution would be rebuilt by
    oneDNN for every new batch size)."""
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    smooth = x.clone()
    smooth[..., 1:-1, 1:-1] = (box + 4 * x[..., 1:-1, 1:-1]) / 13
    return smooth


def _contrast_target(x: torch.Tensor) -> torch.Tensor:
    """The mean grey level (1 or 3 channels, as torchvision), or each channel's own mean (any other count)."""
    if x.shape[1] in (1, 3):
        return _gray(x).mean((-3, -2, -1), keepdim=True)
    return x.mean((-2, -1), keepdim=True)


POINTWISE = ("Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast")
BLENDS = POINTWISE[:4]  # blends with another image (torchvision's _blend): factor 1 leaves an image as it is


def _pointwise(x: torch.Tensor, drawn: list[str], values: list[float]) -> torch.Tensor:
    """Image i gets drawn[i] with magnitude values[i] where that is one of POINTWISE (any other name:
    unchanged), torchvision's definitions. Each operation is computed for the whole batch and kept where it
    was drawn: one pass instead of one image subset per operation, because per-call overhead, not pixels,
    is the cost at these sizes. Where an operation is not drawn it is an exact identity (a blend with
    factor 1, a threshold above 1, or a selection), so an image never sees two of them. Values in [0, 1]."""
    present = set(drawn) & set(POINTWISE)
    if not present:
        return x
    if x.shape[-2] <= 2 or x.shape[-1] <= 2:  # too small to sharpen: torchvision returns it as it is
        drawn = ["Identity" if op == "Sharpness" else op for op in drawn]
        present.discard("Sharpness")

    # Every per-image table (which image drew what, the magnitudes) as one row of one tensor: one call
    # instead of two or three per table. Masks are 0/1 in x's dtype, as select's lerp weights.
    masked = [op for op in ("Color", "Contrast", "Sharpness", "Posterize", "AutoContrast") if op in present]
    tables = [[float(name == op) for name in drawn] for op in masked]
    blends = present & set(BLENDS)
    if blends:  # the blend factor, 1 + the signed magnitude (1: unchanged)
        tables.append([1 + v if name in blends else 1.0 for name, v in zip(drawn, values)])
    if "Posterize" in present:  # 2**bits levels (round: half to even, as torch); 256 where not drawn
        tables.append([2.0 ** round(v) if name == "Posterize" else 256.0 for name, v in zip(drawn, values)])
    if "Solarize" in present:  # a threshold of 2 inverts nothing
        tables.append([v if name == "Solarize" else 2.0 for name, v in zip(drawn, values)])
    rows = iter(small_tensor([v for row in tables for v in row], x.dtype, x.device)
                .view(len(tables), -1, 1, 1, 1).unbind(0))
    drew = {op: next(rows) for op in masked}

    if blends:
        other = torch.zeros_like(x)  # Brightness: towards black
        for op, target in (("Color", _gray), ("Contrast", _contrast_target), ("Sharpness", _smooth)):
            if op in present:
                other = torch.lerp(other, target(x), drew[op])
        x = _blend(x, other, next(rows))
    if "Posterize" in present:  # torchvision's float posterize
        levels = next(rows)
        x = torch.lerp(x, (x * levels).floor().clamp(max=levels - 1) / levels, drew["Posterize"])
    if "Solarize" in present:
        x = select(x >= next(rows), 1 - x, x)
    if "AutoContrast" in present:  # each channel stretched to [0, 1]; flat channels unchanged
        low, high = x.amin((-2, -1), keepdim=True), x.amax((-2, -1), keepdim=True)
        keep = (high <= low) | (drew["AutoContrast"] == 0)
        x = select(keep, x, (x - low) / torch.where(keep, 1, high - low))
    return x


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """torchvision's equalize (transforms.v2.functional.equalize: PIL's lookup table from a 256-bin
    histogram per channel) for floats in [0, 1], written out with one bincount for the whole batch;
    cheaper than calling it, whose dispatch costs more than the work at these sizes."""
    n, c, h, w = x.shape
    q = x.mul(255 + 1.0 - 1e-3).long().view(n * c, h * w)  # torchvision's float -> uint8 (truncation)
    hist = torch.bincount((q + _channel_offsets(n * c, x.device)).view(-1), minlength=n * c * 256).view(n * c, 256)
    cum = hist.cumsum(1)
    # PIL: step = (pixels - count of the largest value) // 255; lut[k] = (cum[k-1] + step // 2) // step, where
    # cum[k] - hist[k] is cum[k-1] (0 for k = 0, whose entry is then 0 as PIL's)
    step = (h * w - hist.gather(1, cum.argmax(1, keepdim=True))).div(255, rounding_mode="floor")
    lut = (cum - hist + step // 2).div(step.clamp(min=1), rounding_mode="floor").clamp(0, 255)
    out = torch.where(step != 0, lut.gather(1, q), q)  # a single-valued channel stays as it is
    return out.view(n, c, h, w).to(x.dtype).mul_(1.0 / 255)


@functools.lru_cache(maxsize=16)
def _channel_offsets(channels: int, device: torch.device) -> torch.Tensor:
    """(channels, 1): 256 x the channel's index, each channel's own histogram bins in one bincount."""
    return torch.arange(channels, device=device).view(-1, 1) * 256


def apply_op(x: torch.Tensor, op: str, mag: torch.Tensor | float) -> torch.Tensor:
    """One policy operation on (n, C, H, W) floats in [0, 1], with one (signed) magnitude per image;
    torchvision's definitions, written for any channel count and per-image magnitudes."""
    values = torch.as_tensor(mag, dtype=torch.float32).expand(x.shape[0]).tolist()
    if op == "Identity":
        return x
    if op in GEOMETRY:
        return _geometry(x, [op] * x.shape[0], values)
    if op in POINTWISE:
        return _pointwise(x, [op] * x.shape[0], values)
    if op == "Equalize":
        return _equalize(x)
    raise ValueError(op)


@dataclass(frozen=True)
class Policy(PolicySettings):
    """RandAugment, TrivialAugment or nothing (`kind` ''), for 2D batches: PolicySettings that run."""

    def __bool__(self) -> bool:
        return bool(self.kind)

    def describe(self) -> str:
        if self.kind == "randaugment":
            return f"RANDAUGMENT (N={self.num_ops}, M={self.magnitude}, every image)"
        return "TRIVIALAUGMENT (every image)" if self.kind else ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        names, magnitudes, signed = _tables(self.kind, x.shape[-2], x.shape[-1])
        dims = (1, 2, 3)
        low, high = x.amin(dims, keepdim=True), x.amax(dims, keepdim=True)
        span = (high - low).clamp_min(1e-12)
        y = ((x - low) / span).clamp(0, 1)
        for _ in range(self.num_ops):
            # the draws as Python lists, the magnitudes looked up in Python (float32 values times +-1: exact)
            ops = torch.randint(0, len(names), (n,)).tolist()
            bins = [self.magnitude] * n if self.magnitude >= 0 else torch.randint(0, BINS, (n,)).tolist()
            signs = torch.randint(0, 2, (n,)).tolist()
            drawn = [names[i] for i in ops]
            values = [magnitudes[i][b] * (2 * s - 1 if signed[i] else 1) for i, b, s in zip(ops, bins, signs)]
            # one resampling for all geometric operations, one pass for the pointwise ones, one for Equalize
            # (per-call cost dominates at 32x32); each image does one of them
            y = _geometry(y, drawn, values)
            for ops_here, fn in ((POINTWISE, lambda sub, sel: _pointwise(sub, [drawn[i] for i in sel],
                                                                         [values[i] for i in sel])),
                                 (("Equalize",), lambda sub, sel: _equalize(sub))):
                # only the images that drew one of them: ~2x cheaper than the whole batch
                y = replace_images(y, [i for i, name in enumerate(drawn) if name in ops_here], fn)
        return y * span + low


@functools.lru_cache(maxsize=16)
def _tables(kind: str, h: int, w: int) -> tuple[list[str], list[list[float]], list[bool]]:
    """The operation names, their magnitudes (ops x BINS, float32 values) and whether each is signed, for
    this image size."""
    space = _space(kind, h, w)
    return list(space), [values.tolist() for values, _ in space.values()], [sign for _, sign in space.values()]
