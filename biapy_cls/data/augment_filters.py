"""Per-image filters that the augmentations apply to whole batches: Gaussian kernels, separable filtering
by unfolding, blur matrices (the same filtering as products, cheaper at small sizes) and median selection
networks, each image of a batch with its own kernel or window size; and three cheaper equivalents of
PyTorch functions the augmentations call often: `affine_grid`, `select` (torch.where) and `small_tensor`
(torch.tensor of a short list)."""

from __future__ import annotations

import array
import functools
import math

import torch
import torch.nn.functional as F


def _gaussian_kernels(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """(n, size) normalised 1D Gaussians, one per sigma."""
    r = torch.arange(size, device=sigma.device, dtype=torch.float32) - size // 2
    k = torch.exp(-0.5 * (r[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    return k / k.sum(1, keepdim=True)


def _separable(x: torch.Tensor, kernels: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """Filter each image of `x` (n, C, *spatial) with its own 1D kernel along each of `axes` (counted in
    spatial dims; edges replicated). Unfold, multiply, sum: several times faster than a grouped conv on CPU."""
    size, spatial = kernels.shape[1], x.ndim - 2
    kernels = kernels.to(x.dtype)
    for axis in axes:
        pad = [0, 0] * spatial
        pad[2 * (spatial - 1 - axis)] = pad[2 * (spatial - 1 - axis) + 1] = size // 2
        padded = F.pad(x, pad, mode="replicate")
        x = (padded.unfold(2 + axis, size, 1) * kernels.view(-1, *[1] * (spatial + 1), size)).sum(-1)
    return x


def _blur_matrices(kernels: torch.Tensor, size: int) -> torch.Tensor:
    """(n, size, size): row i is image n's 1D kernel centred on pixel i, the taps beyond either edge added to
    the edge pixel (replicate padding); `matrix @ signal` filters a signal of `size` values."""
    n, taps = kernels.shape
    flat = _kernel_positions(size, taps, kernels.device)
    matrices = torch.zeros(n, size * size, device=kernels.device, dtype=kernels.dtype)
    return matrices.scatter_add_(1, flat.expand(n, -1), kernels.repeat(1, size)).view(n, size, size)


@functools.lru_cache(maxsize=32)
def _kernel_positions(size: int, taps: int, device: torch.device) -> torch.Tensor:
    """(1, size * taps): the flat (row, column) of each tap of each row of a blur matrix, edges clamped."""
    column = (torch.arange(size, device=device)[:, None] + torch.arange(taps, device=device) - taps // 2)
    return (torch.arange(size, device=device)[:, None] * size + column.clamp(0, size - 1)).view(1, -1)


# Median selection networks (compare-exchange pairs) for 3, 5 and 7 values (N. Devillard, "Fast median
# search"), checked on every permutation in tests; fewer comparisons than a full sort.
MEDIAN_NETWORKS = {
    3: [(0, 1), (1, 2), (0, 1)],
    5: [(0, 1), (3, 4), (0, 3), (1, 4), (1, 2), (2, 3), (1, 2)],
    7: [(0, 5), (0, 3), (1, 6), (2, 4), (0, 1), (3, 5), (2, 6), (2, 3), (3, 6), (4, 5), (1, 4), (1, 3), (3, 4)],
}


def _median_1d(x: torch.Tensor, sizes: list[int], axis: int) -> torch.Tensor:
    """Median of each image's own odd number of neighbours `sizes[i]` along `axis` (edges replicated).

    One median network of elementwise min/max over the largest window serves every size: for a smaller
    window the outer neighbours are replaced by -inf on one side and +inf on the other, which leaves the
    middle value unchanged. Much faster on CPU than sorting unfolded windows. `sizes` is a Python list:
    which neighbours need a bound is then known without a tensor operation per neighbour.
    """
    size = max(sizes)
    pad = [0, 0, 0, 0]
    pad[0 if axis == -1 else 2] = pad[1 if axis == -1 else 3] = size // 2
    padded = F.pad(x, pad, mode="replicate")
    length = x.shape[axis]
    values = [padded.narrow(axis, i, length) for i in range(size)]
    for i in range(size):
        outside = [k // 2 < abs(i - size // 2) for k in sizes]
        if any(outside):  # a min/max with a per-image bound of -inf or +inf: cheaper than masked_fill
            first = i < size // 2
            bound = small_tensor([(-math.inf if first else math.inf) if out else (math.inf if first else -math.inf)
                                  for out in outside], x.dtype, x.device).view(-1, 1, 1, 1)
            values[i] = torch.minimum(values[i], bound) if first else torch.maximum(values[i], bound)
    for a, b, low, high in _median_steps(size):
        values[a], values[b] = (torch.minimum(values[a], values[b]) if low else None,
                                torch.maximum(values[a], values[b]) if high else None)
    return values[size // 2]


@functools.cache
def _median_steps(size: int) -> list[tuple[int, int, bool, bool]]:
    """The network's compare-exchanges (a, b, whether the min at a is used, whether the max at b is), without
    the outputs that no later step and not the median reads: 20 of 26 elementwise calls for 7 values."""
    needed, steps = {size // 2}, []
    for a, b in reversed(MEDIAN_NETWORKS.get(size) or _transposition_network(size)):
        if a in needed or b in needed:
            steps.append((a, b, a in needed, b in needed))
            needed |= {a, b}
    return steps[::-1]


def _transposition_network(size: int) -> list[tuple[int, int]]:
    """Odd-even transposition sort of `size` values: a sorting network for any size."""
    return [(i, i + 1) for step in range(size) for i in range(step % 2, size - 1, 2)]


@functools.lru_cache(maxsize=16)
def _identity_grid(spatial: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(d, *spatial): F.affine_grid's sample positions for the identity, one contiguous plane per coordinate
    (x, y[, z]), once per image size (not per batch size: the subsets of a batch vary in number)."""
    d = len(spatial)
    grid = F.affine_grid(torch.eye(d, d + 1, dtype=dtype, device=device)[None], [1, 1, *spatial],
                         align_corners=False)
    return grid[0].movedim(-1, 0).contiguous()


def affine_grid(theta: torch.Tensor, size: list[int]) -> torch.Tensor:
    """F.affine_grid(theta, size, align_corners=False), bit for bit, ~3x cheaper on the CPU, where its batched
    product with an inner size of 3 or 4 costs more than the resampling itself. The same sums in the same
    order (x a + y b [+ z c] + t, each product rounded), as elementwise operations on the cached identity
    grid: seeded runs with RANDOM_ROT depend on every bit of the grid."""
    base = _identity_grid(tuple(size[2:]), theta.dtype, theta.device)
    n, d = theta.shape[0], theta.shape[1]
    # computed as (n, d, *spatial), whose inner loops run over whole rows, then viewed as (n, *spatial, d)
    column = [theta[:, :, k].reshape(n, d, *[1] * d) for k in range(d + 1)]
    grid = base[0] * column[0]
    for k in range(1, d):
        grid = grid + base[k] * column[k]
    return (grid + column[d]).movedim(1, -1)


def select(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """torch.where(mask, a, b) for finite values, as a lerp from b to a with weights 0 and 1, which returns b
    or a exactly (b + 0 (a - b), or a - (a - b) 0): ~4x cheaper than torch.where on the CPU at every size
    measured (16x32x32 to 32x3x64x64), and the augmentations choose between images often. Pixels are
    finite here: io.standard_dtype replaces non-finite ones when an image is read."""
    return torch.lerp(b, a, mask.to(a.dtype))


_TYPECODES = {torch.int64: "q", torch.float32: "f", torch.float64: "d", torch.bool: "B"}


def small_tensor(values: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """torch.tensor(values, dtype=dtype, device=device) for a flat list of Python numbers (or bools), ~3x
    cheaper on the CPU: torch.tensor infers the type of every element, an array.array only converts them
    (to float32 rounded to nearest, as torch.tensor). The augmentations build a few dozen per batch
    (image indices, per-image values), which made torch.tensor ~7% of an all-on batch at 32x32."""
    if not values or dtype not in _TYPECODES:
        return torch.tensor(values, dtype=dtype, device=device)
    tensor = torch.frombuffer(array.array(_TYPECODES[dtype], values), dtype=dtype)
    return tensor if device.type == "cpu" else tensor.to(device)
