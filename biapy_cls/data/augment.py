"""Data augmentation (AUGMENTOR.*) on whole batches with torch ops, in 2D (N,C,H,W) and 3D (N,C,D,H,W).

Each switched-on transformation is applied to a random subset of the batch (its `*_PROB`, or
AUGMENTOR.DA_PROB when that is -1), with random parameters drawn per image. Values are in unit scale
(1.0 = the dtype's full range) and are not clipped afterwards. Order:
1. exact moves: ROT90, VFLIP, HFLIP, ZFLIP;
2. one resampling for RANDOM_ROT, ZOOM, SHEAR and SHIFT (composed into one affine matrix per image)
   plus ELASTIC (added to the same sampling grid when E_MODE fills borders like AFFINE_MODE);
3. blurs: G_BLUR, MEDIAN_BLUR, MOTION_BLUR;
4. channels and regions (augment_ops.py): GRAYSCALE, CHANNEL_SHUFFLE, CUTBLUR, CUTNOISE, MISALIGNMENT;
5. intensity: GAMMA_CONTRAST, BRIGHTNESS, CONTRAST, DROPOUT, CUTOUT, GAUSSIAN_NOISE;
6. (augment_ops.py) POISSON_NOISE, SALT, PEPPER, SALT_AND_PEPPER, MISSING_SECTIONS, GRIDMASK;
7. AUGMENTOR.RANDAUGMENT or TRIVIALAUGMENT (policies.py, 2D).
CUTMIX, MIXUP and CUTMIX_ALPHA mix images and labels: mixing.py, after normalisation.
In 3D, rotations, shear, shift, elastic, median and motion blur act in the y-x plane (every z-slice
alike), as in BiaPy; G_BLUR blurs along z too; ZOOM scales z only with ZOOM_IN_Z; ZFLIP reverses z.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
import torch.nn.functional as F
from yacs.config import CfgNode as CN

from biapy_cls.config.settings import AUGMENT_OPS, AugmentSettings
from biapy_cls.data.augment_filters import (
    _blur_matrices,
    _gaussian_kernels,
    _median_1d,
    _separable,
    affine_grid,
    small_tensor,
)
from biapy_cls.data.augment_ops import FUNCTIONS, MATMUL_MAX_SIDE, _box_extents, _sum_of_boxes, replace_images
from biapy_cls.data.policies import Policy

OPS = AUGMENT_OPS  # the switches, in the order they are applied (named once, in config/settings.py)
AFFINE_OPS = ("RANDOM_ROT", "ZOOM", "SHEAR", "SHIFT")
# AFFINE_MODE / E_MODE (skimage, scipy and imgaug names) -> how grid_sample fills the border.
FILL_MODES = {"constant": "zeros", "reflect": "reflection", "symmetric": "reflection", "mirror": "reflection",
              "edge": "border", "nearest": "border", "wrap": "wrap"}


def _uniform(n: int, bounds, device) -> torch.Tensor:
    low, high = float(bounds[0]), float(bounds[1])
    return torch.rand(n, device=device) * (high - low) + low


def _randint(n: int, bounds, device) -> torch.Tensor:
    """Integers in [low, high], both included."""
    return torch.randint(int(bounds[0]), int(bounds[1]) + 1, (n,), device=device)


def _per_image(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def _view(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image values shaped to broadcast against `x`."""
    return v.view(-1, *[1] * (x.ndim - 1)).to(x.dtype)


def _planes(x: torch.Tensor) -> torch.Tensor:
    """(n, C, [D,] H, W) -> (n, C*D, H, W): every y-x plane of an image as a channel."""
    return x.reshape(x.shape[0], -1, x.shape[-2], x.shape[-1])


class Augmenter:
    """The switched-on AUGMENTOR transformations; call it on a unit-scaled float batch."""

    def __init__(self, settings: AugmentSettings):
        self.aug = aug = settings.params
        self.ndim = settings.ndim
        self.ops: list[tuple[str, float]] = list(settings.ops)
        self.affine_fill = FILL_MODES[aug.AFFINE_MODE]
        self.elastic_fill = FILL_MODES[aug.E_MODE]
        self._motion_bank: torch.Tensor | None = None
        self._elastic_cache: dict = {}  # (H, W, device) -> smoothing transfer function, pixel scale
        self.policy = Policy(**asdict(settings.policy))

    @classmethod
    def from_cfg(cls, cfg: CN) -> Augmenter:
        return cls(AugmentSettings.from_cfg(cfg))

    def __bool__(self) -> bool:
        return bool(self.ops) or bool(self.policy)

    def describe(self) -> str:
        parts = [f"{name} (p={p:g})" for name, p in self.ops] + ([self.policy.describe()] if self.policy else [])
        return ", ".join(parts) or "none"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Inference mode spares autograd's bookkeeping on each of the ~1,000 small tensor operations of an
        # all-on batch (~10% of the time at 32x32); the result is copied out of it because the model must be
        # able to save it for backward.
        with torch.inference_mode():
            x = self._augment(x)
        return x.clone()

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        n, device = x.shape[0], x.device
        x = x.clone()  # changed in place below, image subset by image subset
        draws = torch.rand(len(self.ops), n, device=device)
        # which images each transformation gets: one comparison, one transfer to Python lists (an operation
        # per transformation would be ~60 more small calls per batch)
        chosen = draws < small_tensor([p for _, p in self.ops], draws.dtype, device).view(-1, 1)
        names = [name for name, _ in self.ops]
        masks = dict(zip(names, chosen.unbind(0)))
        images = dict(zip(names, chosen.tolist()))
        warped = False
        for name in OPS:
            if name not in masks:
                continue
            if name in AFFINE_OPS or name == "ELASTIC":
                if not warped:
                    x = self._warp(x, masks)
                    warped = True
                continue
            if name in FUNCTIONS:
                fn = lambda sub, _, f=FUNCTIONS[name]: f(sub, self.aug, self.ndim)  # noqa: E731
            else:
                fn = lambda sub, _, f=getattr(self, f"_{name.lower()}"): f(sub)  # noqa: E731
            x = replace_images(x, [i for i, hit in enumerate(images[name]) if hit], fn)
        return self.policy(x) if self.policy else x

    # -- 1. exact moves ------------------------------------------------------------------------------
    def _vflip(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(-2)

    def _hflip(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(-1)

    def _zflip(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(-3) if self.ndim == 3 else x

    def _rot90(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate by 90, 180 or 270 degrees in the y-x plane (only 180 when y and x differ in size)."""
        square = x.shape[-1] == x.shape[-2]
        k = _randint(x.shape[0], (1, 3), x.device) if square else torch.full((x.shape[0],), 2, device=x.device)
        out = x.clone()
        turns_of = k.tolist()
        for turns in set(turns_of):
            out = replace_images(out, [i for i, t in enumerate(turns_of) if t == turns],
                                 lambda sub, _, t=turns: torch.rot90(sub, t, dims=(-2, -1)))
        return out

    # -- 2. resampling -------------------------------------------------------------------------------
    def _theta(self, masks: dict, x: torch.Tensor) -> torch.Tensor:
        """(n, d, d+1) affine_grid matrices, written out: they map output to input positions in [-1, 1]
        units and invert the forward transform shift . rotation . shear . zoom, which acts in pixel
        units on the axes (x, y[, z])."""
        aug, n, dev = self.aug, x.shape[0], x.device
        ones, zeros = torch.ones(n, device=dev), torch.zeros(n, device=dev)
        s = torch.where(masks["ZOOM"], _uniform(n, aug.ZOOM_RANGE, dev), ones) if "ZOOM" in masks else ones
        t = torch.tan(torch.deg2rad(_uniform(n, aug.SHEAR_RANGE, dev)) * masks["SHEAR"]) if "SHEAR" in masks else zeros
        angle = (
            torch.deg2rad(_uniform(n, aug.RANDOM_ROT_RANGE, dev)) * masks["RANDOM_ROT"]
            if "RANDOM_ROT" in masks
            else zeros
        )
        c, si = torch.cos(angle), torch.sin(angle)
        shift = []
        for size in (x.shape[-1], x.shape[-2]):  # a fraction of the width/height, in a random direction
            if "SHIFT" in masks:
                sign = torch.randint(0, 2, (n,), device=dev) * 2 - 1
                shift.append(_uniform(n, aug.SHIFT_RANGE, dev) * sign * size * masks["SHIFT"])
            else:
                shift.append(zeros)
        # inverse of R @ [[1, t], [0, 1]] @ diag(s, s), then of the shift
        i00, i01, i10, i11 = (c + t * si) / s, (si - t * c) / s, -si / s, c / s
        o0, o1 = -(i00 * shift[0] + i01 * shift[1]), -(i10 * shift[0] + i11 * shift[1])
        hx, hy = x.shape[-1] / 2, x.shape[-2] / 2  # pixels -> [-1, 1] units
        if self.ndim == 2:
            rows = [[i00, i01 * hy / hx, o0 / hx], [i10 * hx / hy, i11, o1 / hy]]
        else:
            sz = s if aug.ZOOM_IN_Z else ones
            rows = [[i00, i01 * hy / hx, zeros, o0 / hx], [i10 * hx / hy, i11, zeros, o1 / hy],
                    [zeros, zeros, 1 / sz, zeros]]
        return torch.stack([torch.stack(row, -1) for row in rows], 1)

    def _elastic_field(self, x: torch.Tensor) -> torch.Tensor:
        """(n, H, W, 2) in-plane displacements in grid units: uniform noise in [-1, 1] smoothed by a
        Gaussian of E_SIGMA pixels, times E_ALPHA pixels (as imgaug and BiaPy). The smoothing wraps around
        the borders (harmless for noise): a circular convolution, which is separable, so for small images
        it is two products with (H, H) and (W, W) circulant matrices, built once by FFT (two FFTs per batch
        cost ~5x more at 32x32); larger images are smoothed by FFT."""
        aug = self.aug
        n, (h, w) = x.shape[0], x.shape[-2:]
        key = (h, w, x.device)
        if key not in self._elastic_cache:
            if max(h, w) <= MATMUL_MAX_SIDE:
                smooth_y, smooth_x_t = self._circulant(h, x.device), self._circulant(w, x.device).T.contiguous()

                def smooth(noise: torch.Tensor) -> torch.Tensor:
                    return smooth_y @ noise @ smooth_x_t
            else:  # by FFT: the products grow with the side cubed
                fy = torch.fft.fftfreq(h, device=x.device)[:, None]
                fx = torch.fft.rfftfreq(w, device=x.device)[None, :]
                transfer = torch.exp(-2 * (math.pi * float(aug.E_SIGMA)) ** 2 * (fy**2 + fx**2))  # Gaussian's FT

                def smooth(noise: torch.Tensor) -> torch.Tensor:
                    return torch.fft.irfft2(torch.fft.rfft2(noise) * transfer, s=(h, w))
            scale = torch.tensor([2.0 / w, 2.0 / h], device=x.device)  # pixels -> [-1, 1] grid units
            self._elastic_cache[key] = (smooth, scale)
        smooth, scale = self._elastic_cache[key]
        field = smooth(torch.rand(n, 2, h, w, device=x.device) * 2 - 1)
        alpha = _uniform(n, aug.E_ALPHA, x.device).view(n, 1, 1, 1)
        return (field * alpha).permute(0, 2, 3, 1) * scale

    def _circulant(self, size: int, device) -> torch.Tensor:
        """(size, size) matrix of the circular Gaussian smoothing of E_SIGMA pixels along one axis."""
        f = torch.fft.fftfreq(size, device=device, dtype=torch.float64)
        transfer = torch.exp(-2 * (math.pi * float(self.aug.E_SIGMA)) ** 2 * f**2)  # the Gaussian's FT
        eye = torch.eye(size, device=device, dtype=torch.float64)
        return torch.fft.ifft(torch.fft.fft(eye, dim=0) * transfer[:, None], dim=0).real.float()

    def _sample(self, x: torch.Tensor, theta: torch.Tensor, field: torch.Tensor | None, fill: str) -> torch.Tensor:
        # F.affine_grid's grid bit for bit, not just an equivalent product: a grid that differs in the last bit
        # changes every seeded run with RANDOM_ROT (the ViT's seed-0 floor run went from 0.978 to 0.969).
        grid = affine_grid(theta.to(x.dtype), list(x.shape))
        if field is not None:  # in-plane displacement, the same for every z-slice in 3D
            grid = grid + (field if self.ndim == 2 else F.pad(field, (0, 1))[:, None]).to(x.dtype)
        if fill == "wrap":
            grid = torch.remainder(grid + 1, 2) - 1
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border" if fill == "wrap" else fill,
                             align_corners=False)

    def _warp(self, x: torch.Tensor, masks: dict) -> torch.Tensor:
        n, d = x.shape[0], self.ndim
        affine = torch.zeros(n, dtype=torch.bool, device=x.device)
        for name in AFFINE_OPS:
            affine |= masks.get(name, affine)
        elastic = masks.get("ELASTIC", torch.zeros_like(affine))
        both = self.affine_fill == self.elastic_fill  # then one resampling does both
        groups = [(affine | elastic, True, elastic)] if both else [(affine, True, None), (elastic, False, elastic)]
        for mask, use_affine, with_field in groups:
            idx = mask.nonzero().squeeze(1)
            if not idx.numel():
                continue
            sub = x.index_select(0, idx)
            m = len(idx)
            if use_affine:
                theta = self._theta({k: masks[k][idx] for k in AFFINE_OPS if k in masks}, sub)
            else:
                theta = torch.eye(d + 1, device=x.device)[:d].expand(m, d, d + 1)
            field = None
            if with_field is not None and with_field[idx].any():
                field = self._elastic_field(sub) * with_field[idx].view(-1, 1, 1, 1).to(sub.dtype)
            fill = self.affine_fill if use_affine else self.elastic_fill
            x.index_put_((idx,), self._sample(sub, theta, field, fill))
        return x

    # -- 3. blurs ------------------------------------------------------------------------------------
    def _g_blur(self, x: torch.Tensor) -> torch.Tensor:
        """Gaussian blur of sigma G_SIGMA per image along every spatial axis, edges replicated. Up to
        MATMUL_MAX_SIDE the y-x blur is two products with per-image blur matrices (~4x cheaper at 32x32
        than unfolding); z, and larger images, are filtered by _separable."""
        sigma = _uniform(x.shape[0], self.aug.G_SIGMA, x.device)
        size = min(2 * math.ceil(3 * float(max(self.aug.G_SIGMA))) + 1, 2 * max(x.shape[2:]) + 1)
        kernels = _gaussian_kernels(sigma, size)
        h, w = x.shape[-2:]
        if max(h, w) > MATMUL_MAX_SIDE:
            return _separable(x, kernels, tuple(range(self.ndim)))
        rows, cols = _blur_matrices(kernels, h).to(x.dtype), _blur_matrices(kernels, w).to(x.dtype)
        blurred = (rows[:, None] @ _planes(x) @ cols[:, None].transpose(-1, -2)).reshape(x.shape)
        return _separable(blurred, kernels, (0,)) if self.ndim == 3 else blurred

    def _median_blur(self, x: torch.Tensor) -> torch.Tensor:
        """Separable k x k median of every y-x plane (the median along x, then along y), k odd from
        MB_KERNEL per image: close to the square-window median at a fraction of its cost."""
        low, high = self.aug.MB_KERNEL
        odd = [k for k in range(int(low), int(high) + 1) if k % 2] or [int(low) // 2 * 2 + 1]
        sizes = [odd[i] for i in torch.randint(0, len(odd), (x.shape[0],), device=x.device).tolist()]
        planes = _planes(x)
        for axis in (-1, -2):
            planes = _median_1d(planes, sizes, axis)
        return planes.reshape(x.shape)

    def _motion_kernels(self, device) -> torch.Tensor:
        """(lengths, angles, K, K) line kernels for every length in MOTB_K_RANGE and every 5 degrees."""
        if self._motion_bank is None or self._motion_bank.device != device:
            low, high = (int(v) for v in self.aug.MOTB_K_RANGE)
            size = high // 2 * 2 + 1
            length = torch.arange(low, high + 1, device=device, dtype=torch.float32)[:, None, None, None]
            angle = torch.deg2rad(torch.arange(0, 360, 5, device=device, dtype=torch.float32))[None, :, None, None]
            r = torch.arange(size, device=device, dtype=torch.float32) - size // 2
            u, v = r[:, None], r[None, :]  # rows (y), columns (x)
            along, across = v * torch.cos(angle) + u * torch.sin(angle), u * torch.cos(angle) - v * torch.sin(angle)
            kernel = (1 - across.abs()).clamp_min(0) * (along.abs() <= (length - 1) / 2 + 0.5)
            self._motion_bank = kernel / kernel.sum((-2, -1), keepdim=True)
        return self._motion_bank

    def _motion_blur(self, x: torch.Tensor) -> torch.Tensor:
        """A line kernel of length k (MOTB_K_RANGE) at a random angle, applied to every y-x plane."""
        n = x.shape[0]
        bank = self._motion_kernels(x.device)
        kernel = bank[torch.randint(0, bank.shape[0], (n,), device=x.device),
                      torch.randint(0, bank.shape[1], (n,), device=x.device)]
        size = kernel.shape[-1]
        planes = _planes(x)
        p = planes.shape[1]
        weight = kernel.to(x.dtype).repeat_interleave(p, 0)[:, None]
        padded = F.pad(planes.reshape(1, n * p, *planes.shape[-2:]), [size // 2] * 4, mode="replicate")
        # The planes are padded up to a multiple of 8 groups: the subset of images changes size every batch,
        # and oneDNN builds a new convolution for every new shape (twice the cost of the convolution itself).
        groups = -(-n * p // 8) * 8
        weight = F.pad(weight, [0, 0, 0, 0, 0, 0, 0, groups - n * p])
        padded = F.pad(padded, [0, 0, 0, 0, 0, groups - n * p])
        return F.conv2d(padded, weight, groups=groups)[:, :n * p].reshape(x.shape)

    # -- 4. intensity --------------------------------------------------------------------------------
    def _gamma_contrast(self, x: torch.Tensor) -> torch.Tensor:
        """x ** gamma on each image's own [min, max] range (so any intensity scale works)."""
        dims = _per_image(x)
        low, high = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
        span = (high - low).clamp_min(1e-8)
        gamma = _view(_uniform(x.shape[0], self.aug.GC_GAMMA, x.device), x)
        return low + span * ((x - low) / span).clamp(0, 1) ** gamma

    def _slice_values(self, x: torch.Tensor, bounds, mode: str) -> torch.Tensor:
        """One random value per image, or per z-slice when mode is '2D' on 3D data."""
        if self.ndim == 3 and mode == "2D":
            return _uniform(x.shape[0] * x.shape[2], bounds, x.device).view(x.shape[0], 1, x.shape[2], 1, 1)
        return _view(_uniform(x.shape[0], bounds, x.device), x)

    def _brightness(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._slice_values(x, self.aug.BRIGHTNESS_FACTOR, self.aug.BRIGHTNESS_MODE)

    def _contrast(self, x: torch.Tensor) -> torch.Tensor:
        """Stretch around the mean by (1 + factor), per image or per z-slice."""
        per_slice = self.ndim == 3 and self.aug.CONTRAST_MODE == "2D"
        dims = (1, 3, 4) if per_slice else _per_image(x)
        mean = x.mean(dim=dims, keepdim=True)
        return mean + (x - mean) * (1 + self._slice_values(x, self.aug.CONTRAST_FACTOR, self.aug.CONTRAST_MODE))

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        """Set a fraction p (from DROP_RANGE) of the pixels to 0, all channels alike."""
        p = _view(_uniform(x.shape[0], self.aug.DROP_RANGE, x.device), x)
        keep = torch.rand(x.shape[0], 1, *x.shape[2:], device=x.device) >= p
        return x * keep

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        """Fill COUT_NB_ITERATIONS boxes, each COUT_SIZE of every axis, with COUT_CVAL."""
        aug, n, dev = self.aug, x.shape[0], x.device
        boxes = int(max(aug.COUT_NB_ITERATIONS))
        active = torch.arange(boxes, device=dev)[None] < _randint(n, aug.COUT_NB_ITERATIONS, dev)[:, None]
        frac = _uniform(n * boxes, aug.COUT_SIZE, dev).view(n, boxes)
        extents = [e.to(x.dtype) for e in _box_extents(frac, tuple(x.shape[2:]), torch.floor)]
        fill = _sum_of_boxes(active.to(x.dtype), extents) > 0  # covered by at least one active box
        return x.masked_fill(fill[:, None], float(aug.COUT_CVAL))

    def _gaussian_noise(self, x: torch.Tensor) -> torch.Tensor:
        """Add N(mean, var) noise; with USE_INPUT_IMG_MEAN_AND_VAR the image's own mean and variance."""
        aug = self.aug
        if aug.GAUSSIAN_NOISE_USE_INPUT_IMG_MEAN_AND_VAR:
            dims = _per_image(x)
            mean, var = x.mean(dim=dims, keepdim=True), x.var(dim=dims, keepdim=True, unbiased=False)
        else:
            mean, var = float(aug.GAUSSIAN_NOISE_MEAN), float(aug.GAUSSIAN_NOISE_VAR)
        std = var.sqrt() if isinstance(var, torch.Tensor) else math.sqrt(var)
        return x + mean + std * torch.randn_like(x)
