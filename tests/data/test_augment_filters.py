"""The per-image filters shared by the augmentations (biapy_cls/data/augment_filters.py)."""

from __future__ import annotations

import itertools

import torch

from biapy_cls.data.augment_filters import (
    MEDIAN_NETWORKS,
    _blur_matrices,
    _gaussian_kernels,
    _median_1d,
    _separable,
    affine_grid,
    select,
    small_tensor,
)


def test_median_networks_select_the_median_of_every_ordering():
    for size, network in MEDIAN_NETWORKS.items():
        for order in itertools.permutations(range(size)):
            values = list(order)
            for a, b in network:
                values[a], values[b] = min(values[a], values[b]), max(values[a], values[b])
            assert values[size // 2] == size // 2, (size, order)
    x = torch.rand(4, 2, 9, 11)
    sizes = [3, 5, 7, 9]  # 9 uses the general sorting network; smaller windows inside it
    got = _median_1d(x, sizes, -1)
    for i, k in enumerate(sizes):
        padded = torch.nn.functional.pad(x[i : i + 1], [k // 2, k // 2, 0, 0], mode="replicate")
        assert torch.equal(got[i : i + 1], padded.unfold(-1, k, 1).median(-1).values)


def test_blur_matrices_filter_like_the_unfolded_separable_filter():
    """The blur matrices (rows folding the taps beyond an edge onto the edge pixel) and the unfolded
    filter with replicated edges are the same filtering, for kernels longer than the signal too."""
    torch.manual_seed(0)
    for size, taps in ((32, 13), (7, 13), (20, 5)):
        x = torch.rand(3, 2, size, 9)
        kernels = _gaussian_kernels(torch.rand(3) * 2 + 0.5, taps)
        by_matrix = _blur_matrices(kernels, size)[:, None] @ x
        assert torch.allclose(by_matrix, _separable(x, kernels, (0,)), atol=1e-6), (size, taps)


def test_affine_grid_is_torchs_bit_for_bit():
    """Seeded runs with RANDOM_ROT depend on every bit of the sampling grid: the cheaper grid must be
    F.affine_grid's exactly, in 2D and 3D, square or not, for small, ordinary and large matrices."""
    torch.manual_seed(0)
    for size in ([32, 1, 32, 32], [5, 3, 17, 40], [1, 1, 8, 8], [6, 1, 16, 32, 32], [4, 2, 5, 9, 7]):
        d = len(size) - 2
        for scale in (1e-3, 1.0, 100.0):
            theta = torch.randn(size[0], d, d + 1) * scale
            expected = torch.nn.functional.affine_grid(theta, size, align_corners=False)
            got = affine_grid(theta, size)
            assert got.shape == expected.shape and torch.equal(got, expected), (size, scale)


def test_select_is_torch_where_for_finite_values():
    """Per-image masks, per-pixel masks and broadcast operands, values of any sign and size."""
    torch.manual_seed(0)
    a, b = torch.randn(6, 2, 9, 7) * 1e3, torch.randn(6, 2, 9, 7) * 1e-3
    for mask in (torch.rand(6, 1, 1, 1) < 0.5, torch.rand(6, 2, 9, 7) < 0.5, torch.rand(6, 1, 9, 7) < 0.5):
        assert torch.equal(select(mask, a, b), torch.where(mask, a, b))
        assert torch.equal(select(mask, a.mean((-2, -1), keepdim=True), b),
                           torch.where(mask, a.mean((-2, -1), keepdim=True), b))


def test_small_tensor_is_torch_tensor_of_the_list():
    """Indices, bools and floats (rounded to float32 as torch.tensor rounds them, infinities kept), and a
    tensor of its own (changing it leaves the list's next tensor alone)."""
    cpu = torch.device("cpu")
    floats = [0.1, -2.5e-8, 1 / 3, float("inf"), -float("inf"), 1e-46, 3.4e38, 1e300]
    for values, dtype in (([3, 0, 31, 2**40], torch.int64), ([True, False, True], torch.bool),
                          (floats, torch.float32), (floats, torch.float64), ([], torch.int64),
                          ([1.5, 2.0], torch.float16)):
        got, expected = small_tensor(values, dtype, cpu), torch.tensor(values, dtype=dtype)
        assert got.dtype == dtype and torch.equal(got, expected), (values, dtype)
    first = small_tensor([1, 2], torch.int64, cpu)
    first += 5
    assert small_tensor([1, 2], torch.int64, cpu).tolist() == [1, 2]
