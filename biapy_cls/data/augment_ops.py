"""The eleven per-image AUGMENTOR transformations BiaPy's pair generator has beyond augment.py's, batched.

Each function takes a unit-scaled float batch (n, C, H, W) or (n, C, D, H, W), the AUGMENTOR node and the
number of spatial dimensions, and returns a new batch of the same shape; random parameters are drawn per
image. BiaPy 3.7.1 (data/generators/augmentors.py and pair_base_data_generator.py) is the reference for
the keys and their meaning; where its code differs from its documented meaning, or needs a channel count
or shape we cannot assume, the difference is said below. CUTMIX mixes two images and so their labels: it
lives in mixing.py.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from biapy_cls.data.augment_filters import affine_grid, select, small_tensor

# Up to this image side, operations written as products with (side x side) matrices are cheaper than their
# alternatives, which are bound by per-call overhead at small sizes; beyond it the products' work per pixel
# (2 x side multiply-adds) makes them the dearer (512 per pixel at 256x256).
MATMUL_MAX_SIDE = 64


def _uniform(n: int, bounds, device) -> torch.Tensor:
    low, high = float(bounds[0]), float(bounds[1])
    return torch.rand(n, device=device) * (high - low) + low


def _randint(n: int, low: int, high: int, device) -> torch.Tensor:
    """Integers in [low, high), at least `low`."""
    return torch.randint(int(low), max(int(high), int(low) + 1), (n,), device=device)


def _planes(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1, x.shape[-2], x.shape[-1])


def replace_images(x: torch.Tensor, images: list[int], fn) -> torch.Tensor:
    """`x` with the images at the positions `images` (a Python list) replaced, in place, by `fn` of them
    (fn(subset, images)). index_select / index_put_: ~3x and ~1.5x cheaper than x[idx] and x[idx] = y on the
    CPU (and index_put_ ~20% cheaper than index_copy_)."""
    if images:
        index = small_tensor(images, torch.int64, x.device)
        x.index_put_((index,), fn(x.index_select(0, index), images))
    return x


def _box_masks(n: int, spatial: tuple[int, ...], frac: torch.Tensor, device) -> torch.Tensor:
    """(n, *spatial) boolean boxes, `frac` (n,) of every axis long (rounded, at least 1), at random positions."""
    inside = torch.ones((n, *[1] * len(spatial)), dtype=torch.bool, device=device)
    for axis, extent in enumerate(_box_extents(frac, spatial)):
        inside = inside & extent.reshape(n, *[1] * axis, spatial[axis], *[1] * (len(spatial) - axis - 1))
    return inside


def grayscale(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    """Every channel replaced by the mean of the channels (BiaPy: RGB only; here any count, 1 is a no-op)."""
    return x.mean(1, keepdim=True).expand_as(x).clone()


def channel_shuffle(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    """A random order of the channels, never the original one (BiaPy's permutation may be the identity,
    which would make CHANNEL_SHUFFLE_PROB overstate how often images change)."""
    n, c = x.shape[:2]
    if c == 1:
        return x.clone()
    perm = torch.rand(n, c, device=x.device).argsort(1)
    ident = torch.arange(c, device=x.device)
    while (same := (perm == ident).all(1)).any():  # redraw identities: few rounds (probability 1/c!)
        perm[same] = torch.rand(int(same.sum()), c, device=x.device).argsort(1)
    index = perm.view(n, c, *[1] * (x.ndim - 2)).expand_as(x)
    return x.gather(1, index)


def cutblur(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    """A box (CBLUR_SIZE of y and x; every z-slice alike) replaced by a low-resolution copy: area-downsampled
    by an integer factor from CBLUR_DOWN_RANGE, then nearest-upsampled. With CBLUR_INSIDE False, half of the
    images get the inverse: the whole image low-resolution except the box. The low-resolution blocks are
    aligned on the image grid (BiaPy aligns them on the box's corner)."""
    n, (h, w) = x.shape[0], x.shape[-2:]
    planes = _planes(x)
    ratio = torch.randint(int(aug.CBLUR_DOWN_RANGE[0]), int(aug.CBLUR_DOWN_RANGE[1]) + 1, (n,), device=x.device)
    low = _low_resolution(planes, ratio, int(aug.CBLUR_DOWN_RANGE[1]))
    box = _box_masks(n, (h, w), _uniform(n, aug.CBLUR_SIZE, x.device), x.device)[:, None]
    if not aug.CBLUR_INSIDE:
        box = box ^ (torch.rand(n, device=x.device) < 0.5).view(n, 1, 1, 1)
    return select(box, low, planes).reshape(x.shape)


def _low_resolution(planes: torch.Tensor, ratio: torch.Tensor, top: int) -> torch.Tensor:
    """Each image's planes area-downsampled to (H // r, W // r) for its own r (at most `top`), then
    nearest-upsampled back: F.interpolate(mode='area') then F.interpolate(mode='nearest'), for every ratio
    at once. Each output pixel is the mean of the adaptive-pooling window of its low-resolution cell; the
    mean is separable, so it is two products with per-image averaging matrices (one per axis, from a bank
    built once per size). Above MATMUL_MAX_SIDE, where the products cost more than they save, the two
    interpolations run once per ratio (at most 7)."""
    n, _, h, w = planes.shape
    if max(h, w) > MATMUL_MAX_SIDE:
        low = torch.empty_like(planes)
        for r in ratio.unique().tolist():
            sel = (ratio == r).nonzero().squeeze(1)
            small = F.interpolate(planes[sel], size=(max(1, h // r), max(1, w // r)), mode="area")
            low[sel] = F.interpolate(small, size=(h, w), mode="nearest")
        return low
    rows = _averaging_bank(h, top, planes.dtype, planes.device)[ratio - 1]
    cols = _averaging_bank(w, top, planes.dtype, planes.device)[ratio - 1]
    return rows[:, None] @ planes @ cols[:, None].transpose(-1, -2)


@functools.lru_cache(maxsize=32)
def _averaging_bank(size: int, top: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(top, size, size): for the ratio r = 1 ... top, row i averages the window of pixel i's cell."""
    ratio = torch.arange(1, top + 1, device=device)
    small = (size // ratio).clamp_min(1).view(top, 1)  # cells along this axis, per ratio
    # nearest: cell = floor(i * small / size) in float32, as PyTorch's kernel; then the adaptive window
    cell = (torch.arange(size, device=device, dtype=torch.float32) * (small.float() / size)).floor().long()
    cell = torch.minimum(cell, small - 1)
    start, end = cell * size // small, ((cell + 1) * size + small - 1) // small
    k = torch.arange(size, device=device).view(1, 1, size)
    inside = (k >= start[..., None]) & (k < end[..., None])
    return inside.to(dtype) / (end - start)[..., None].to(dtype)


def cutnoise(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    """CNOISE_NB_ITERATIONS (both ends included) boxes, each CNOISE_SIZE of every axis, get Gaussian noise of
    standard deviation CNOISE_SCALE x the image's maximum, the same for every channel."""
    n, spatial, dev = x.shape[0], x.shape[2:], x.device
    boxes = int(aug.CNOISE_NB_ITERATIONS[1])
    count = torch.randint(int(aug.CNOISE_NB_ITERATIONS[0]), boxes + 1, (n,), device=dev)
    top = x.flatten(1).amax(1)
    # Independent noises of overlapping boxes add up to one Gaussian of the summed variance: one draw.
    # All boxes of all images are drawn at once (per-call overhead dominates at small sizes).
    frac = _uniform(n * boxes, aug.CNOISE_SIZE, dev).view(n, boxes)
    extents = _box_extents(frac, tuple(spatial))
    amp = _uniform(n * boxes, aug.CNOISE_SCALE, dev).view(n, boxes) * top[:, None]
    active = torch.arange(boxes, device=dev) < count[:, None]
    variance = _sum_of_boxes(amp**2 * active, [e.to(x.dtype) for e in extents])
    return x + (variance.sqrt() * torch.randn(n, *spatial, device=dev, dtype=x.dtype))[:, None]


def _box_extents(frac: torch.Tensor, sizes: tuple[int, ...], rounding=torch.round) -> list[torch.Tensor]:
    """For each axis of `sizes` pixels, (*frac.shape, size) booleans: a run `frac` of it long (rounded, at
    least 1) at a random position, for every box. Every axis in one pass (the starts drawn axis after axis,
    in one call): a dozen small calls instead of as many per axis."""
    k, dev = len(sizes), frac.device
    size = small_tensor([float(s) for s in sizes], frac.dtype, dev).view(k, *[1] * frac.ndim)
    length = torch.minimum(rounding(frac * size).clamp_min(1), size)
    start = (torch.rand((k, *frac.shape), device=dev) * (size - length + 1)).floor()
    pos = _positions(max(sizes), dev)
    inside = (pos >= start[..., None]) & (pos < (start + length)[..., None])
    return [inside[axis, ..., :extent] for axis, extent in enumerate(sizes)]


@functools.lru_cache(maxsize=16)
def _positions(size: int, device: torch.device) -> torch.Tensor:
    return torch.arange(size, device=device)


def _sum_of_boxes(weight: torch.Tensor, extents: list[torch.Tensor]) -> torch.Tensor:
    """(n, *sizes): at each pixel, the sum of weight[i, b] over the boxes b of image i that contain it, box b
    being the product of its extents along each axis (extents[axis]: (n, boxes, size) of 0/1). The outer
    product of all axes but the last, then one batched product sums over the boxes: no (n, boxes, *sizes)
    tensor, which costs a call per axis and a sum."""
    lead = weight[..., None] * extents[0]
    for extent in extents[1:-1]:
        lead = (lead[..., None] * extent[:, :, None, :]).flatten(2)
    n, sizes = weight.shape[0], [e.shape[-1] for e in extents]
    return (lead.transpose(1, 2) @ extents[-1]).view(n, *sizes)


def _max_angle(height: int, displacement: int) -> float:
    """BiaPy's (PyTorch Connectomics') largest mis-alignment rotation, in radians: the one that moves the
    border of a centred (height - displacement) square by about `displacement` / 2 pixels."""
    ratio = (displacement / 2.0) / max((height - displacement) / 2.0 * 1.42, 1e-6)
    return math.asin(min(ratio, 1.0)) * 2.0


def _warp_planes(planes: torch.Tensor, angle: list[float], dx: list[float], dy: list[float],
                 centre_y: list[float]) -> torch.Tensor:
    """Rotate every y-x plane of each image by `angle` (radians) about (W/2, centre_y) and shift it by
    (dx, dy) pixels, zeros outside: one affine grid and one grid_sample for the batch. The matrices, a few
    numbers per image, are written out in Python: output pixel (X, Y) samples the input at
    R(-angle) (X - W/2 - dx, Y - centre_y - dy) + (W/2, centre_y), in affine_grid's [-1, 1] units."""
    n, _, h, w = planes.shape
    theta = []
    for a, sx, sy, cy in zip(angle, dx, dy, centre_y):
        c, s = math.cos(a), math.sin(a)
        k = h / 2 - cy - sy
        theta.append([[c, s * h / w, 2 / w * (-c * sx + s * k)], [-s * w / h, c, 2 / h * (s * sx + c * k + cy) - 1]])
    flat = [v for matrix in theta for row in matrix for v in row]
    grid = affine_grid(small_tensor(flat, planes.dtype, planes.device).view(n, 2, 3), list(planes.shape))
    return F.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def misalignment(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    """Mis-aligned sections, as in serial-section microscopy. With probability MS_ROTATE_RATIO a rotation
    (at most the angle that moves the border by about MS_DISPLACEMENT / 2 pixels), otherwise a translation
    of up to MS_DISPLACEMENT pixels; zeros fill what is uncovered.
    2D: the rows below a random row move (a translation shifts them along x, as in BiaPy).
    3D: one random z-slice ('slip') or every slice from a random one on, half of the times each; a
    translation moves them by a random (dy, dx). BiaPy's 2D code swaps translation and rotation against
    the key's name; here MS_ROTATE_RATIO is the rotation's share in both."""
    n, dev = x.shape[0], x.device
    h, w = x.shape[-2:]
    disp = int(aug.MS_DISPLACEMENT)
    # the few numbers per image as Python lists (a tensor call per number costs more at small sizes)
    rotate = [r < float(aug.MS_ROTATE_RATIO) for r in torch.rand(n, device=dev).tolist()]
    angle = [(2 * r - 1) * _max_angle(h, disp) if turn else 0.0
             for r, turn in zip(torch.rand(n, device=dev).tolist(), rotate)]
    shift = [0.0 if turn else float(s) for s, turn in zip(_randint(n, 0, disp, dev).tolist(), rotate)]
    planes = _planes(x)
    if ndim == 2:
        row = _randint(n, 1, h - 1, dev).tolist()
        lower = _positions(h, dev).view(1, 1, h, 1) >= small_tensor(row, torch.int64, dev).view(n, 1, 1, 1)
        # only the lower part moves: it is cut out first, so nothing of the upper part slides in
        moved = _warp_planes(planes * lower, angle, [-s for s in shift], [0.0] * n, [r + (h - r) / 2 for r in row])
        return select(lower, moved, planes)
    depth = x.shape[2]
    sign = (torch.randint(0, 2, (2, n), device=dev) * 2 - 1).tolist()
    dy = [0.0 if turn else float(d * sy) for d, sy, turn in zip(_randint(n, 0, disp, dev).tolist(), sign[0], rotate)]
    dx = [s * sx for s, sx in zip(shift, sign[1])]
    moved = _warp_planes(planes, angle, dx, dy, [h / 2] * n).reshape(x.shape)
    z = _randint(n, 1, depth - 1, dev) if depth >= 3 else torch.zeros(n, dtype=torch.long, device=dev)
    slip = torch.rand(n, device=dev) < 0.5
    pos = torch.arange(depth, device=dev).view(1, depth)
    affected = torch.where(slip[:, None], pos == z[:, None], pos >= z[:, None]).view(n, 1, depth, 1, 1)
    return select(affected, moved, x)


def poisson_noise(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    """skimage's random_noise(mode='poisson'), which BiaPy calls: each value becomes Poisson(x * L) / L with
    L the number of distinct values of the image rounded up to a power of two (a photon count that
    matches its bit depth). Negative values count as 0 photons."""
    flat = x.flatten(1)
    # numpy's sort of short rows is ~4x faster than torch's on the CPU
    if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64):
        ordered = torch.from_numpy(np.sort(flat.numpy(force=True), 1))
    else:
        ordered = flat.sort(1).values
    distinct = ((ordered[:, 1:] != ordered[:, :-1]).sum(1) + 1).to(x.device)
    levels = (2.0 ** torch.ceil(torch.log2(distinct.to(torch.float64)))).to(x.dtype).view(-1, *[1] * (x.ndim - 1))
    return torch.poisson(x.clamp_min(0) * levels) / levels


def _impulse(x: torch.Tensor, amount: float, salt_share: float) -> torch.Tensor:
    """A fraction `amount` of the values (every channel of every pixel independently, as skimage) set to
    1.0 (salt, the dtype's maximum) for a share `salt_share` of them, else to 0 (pepper; -1 for images
    with negative values, as skimage). One uniform draw decides both: below amount x salt_share is salt,
    from there up to amount pepper (given a hit, the draw is uniform below `amount`)."""
    draw = torch.rand_like(x)
    if salt_share >= 1:  # SALT
        return x.masked_fill(draw < amount, 1.0)
    negative = (x.flatten(1).amin(1) < 0).view(-1, *[1] * (x.ndim - 1))
    low = torch.where(negative, -1.0, 0.0).to(x.dtype)
    out = select(draw < amount, low, x)
    return out.masked_fill(draw < amount * salt_share, 1.0) if salt_share > 0 else out


def salt(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    return _impulse(x, float(aug.SALT_AMOUNT), 1.0)


def pepper(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    return _impulse(x, float(aug.PEPPER_AMOUNT), 0.0)


def salt_and_pepper(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    return _impulse(x, float(aug.SALT_AND_PEPPER_AMOUNT), float(aug.SALT_AND_PEPPER_PROP))


def missing_sections(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    """A straight line from one border to the opposite one (top-bottom or left-right, half of the times
    each), thickened by MISSP_ITERATIONS dilations, filled with the plane's mean. Each channel (2D) or
    each z-slice of each channel (3D) gets one with probability MISSP_CHANNEL_PB, with at least two
    untouched planes after a touched one (BiaPy's rule). The dilation by a cross k times is the set of
    pixels within L1 distance k of the line: |n . (p - p0)| <= k * max(|n_x|, |n_y|) for the unit normal n.
    The few numbers per plane are worked out in Python (a tensor call each would cost more than the
    pixels at small sizes); the pixels take one pass."""
    n, dev = x.shape[0], x.device
    planes = _planes(x)
    p, h, w = planes.shape[1:]
    iterations = _randint(n, aug.MISSP_ITERATIONS[0], aug.MISSP_ITERATIONS[1], dev).tolist()
    draws = (torch.rand(n, p, device=dev) < float(aug.MISSP_CHANNEL_PB)).tolist()
    vertical = (torch.rand(n, p, device=dev) < 0.5).tolist()
    # endpoints on opposite borders: vertical (row 0, col a) -> (row h-1, col b); horizontal (row c, col 0)
    # -> (row d, col w-1)
    cols = torch.randint(1, max(w - 1, 2), (2, n, p), device=dev).tolist() if w > 2 else [[[0] * p] * n] * 2
    rows = torch.randint(1, max(h - 1, 2), (2, n, p), device=dev).tolist() if h > 2 else [[[0] * p] * n] * 2
    lines = []  # per plane: ny, nx, offset (the line is ny * y + nx * x + offset = 0), half-width (-1: none)
    for i in range(n):
        cooldown = 0
        for j in range(p):  # sequential because of the gap rule
            hit = draws[i][j] and cooldown == 0
            cooldown = 2 if hit else max(cooldown - 1, 0)
            if vertical[i][j]:
                y0, x0, y1, x1 = 0.0, cols[0][i][j], h - 1.0, cols[1][i][j]
            else:
                y0, x0, y1, x1 = rows[0][i][j], 0.0, rows[1][i][j], w - 1.0
            ny, nx = x1 - x0, -(y1 - y0)
            norm = max(math.hypot(ny, nx), 1e-6)
            ny, nx = ny / norm, nx / norm
            # + half a pixel: the rasterised line itself
            width = iterations[i] * max(abs(ny), abs(nx)) + 0.5 * (abs(ny) + abs(nx)) if hit else -1.0
            lines.append([ny, nx, -(ny * y0 + nx * x0), width])
    line = small_tensor([v for row in lines for v in row], torch.float32, dev).view(n, p, 4, 1, 1)
    yy = torch.arange(h, device=dev, dtype=torch.float32).view(h, 1)
    xx = torch.arange(w, device=dev, dtype=torch.float32).view(1, w)
    on_line = (line[:, :, 0] * yy + line[:, :, 1] * xx + line[:, :, 2]).abs() <= line[:, :, 3]
    return select(on_line, planes.mean((-2, -1), keepdim=True), planes).reshape(x.shape)


def gridmask(x: torch.Tensor, aug, ndim: int) -> torch.Tensor:
    """GridMask (Chen et al. 2020), as BiaPy: a grid of period d (from GRID_D_RANGE[0] x height to
    GRID_D_RANGE[1] x width pixels) whose bands of width ceil(d x GRID_RATIO) are kept and whose squares in
    between, a share (1 - GRID_RATIO)^2 of the image, are set to 0; rotated by up to GRID_ROTATE x 360
    degrees; GRID_INVERT zeroes the bands instead. 3D: a random block of consecutive z-slices."""
    n, dev = x.shape[0], x.device
    h, w = x.shape[-2:]
    # the few numbers per image in Python, then one tensor of them (a call per number costs more at small sizes)
    period = [max(v, 2.0) for v in _randint(n, int(h * float(aug.GRID_D_RANGE[0])), int(w * float(aug.GRID_D_RANGE[1])),
                                            dev).tolist()]
    offsets = torch.rand(2, n, device=dev).tolist()  # (y, x) offsets of the grid, a fraction of the period
    degrees = torch.randint(0, max(1, round(float(aug.GRID_ROTATE) * 360)), (n,), device=dev).tolist()
    table = [[math.cos(math.radians(a)) for a in degrees], [math.sin(math.radians(a)) for a in degrees],
             [math.floor(r * d) for r, d in zip(offsets[0], period)],
             [math.floor(r * d) for r, d in zip(offsets[1], period)],
             period, [math.ceil(d * float(aug.GRID_RATIO)) for d in period]]
    cos, sin, start_y, start_x, d, band = small_tensor([v for row in table for v in row], torch.float32,
                                                       dev).view(6, n, 1, 1).unbind(0)
    side = math.ceil(math.sqrt(h * h + w * w))  # BiaPy draws the grid on this square, then rotates it
    # the grid keeps the bands (u - start_y) mod d < band or (v - start_x) mod d < band of the rotated positions
    yy, xx = _centred_positions(h, w, dev)
    u, v = cos * yy - sin * xx + side / 2, sin * yy + cos * xx + side / 2
    in_band = (torch.remainder(u.floor() - start_y, d) < band) | (torch.remainder(v.floor() - start_x, d) < band)
    keep = ~in_band if aug.GRID_INVERT else in_band
    if ndim == 2:
        return x * keep[:, None].to(x.dtype)
    depth = x.shape[2]
    block = torch.randint(1, depth + 1, (n,), device=dev)
    first = (torch.rand(n, device=dev) * (depth - block + 1)).floor().long()
    z = torch.arange(depth, device=dev).view(1, depth)
    in_block = ((z >= first[:, None]) & (z < (first + block)[:, None])).view(n, 1, depth, 1, 1)
    return select(in_block & ~keep[:, None, None], torch.zeros_like(x), x)


@functools.lru_cache(maxsize=16)
def _centred_positions(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, 1) rows and (1, w) columns of pixel indices minus half the size."""
    return (torch.arange(h, device=device, dtype=torch.float32).view(h, 1) - h / 2,
            torch.arange(w, device=device, dtype=torch.float32).view(1, w) - w / 2)


FUNCTIONS = {"GRAYSCALE": grayscale, "CHANNEL_SHUFFLE": channel_shuffle, "CUTBLUR": cutblur, "CUTNOISE": cutnoise,
             "MISALIGNMENT": misalignment, "POISSON_NOISE": poisson_noise, "SALT": salt, "PEPPER": pepper,
             "SALT_AND_PEPPER": salt_and_pepper, "MISSING_SECTIONS": missing_sections, "GRIDMASK": gridmask}
