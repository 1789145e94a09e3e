"""The eleven per-image transformations of augment_ops.py do what their AUGMENTOR keys say (statistically
where they are random), in 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from biapy_cls.config.compat import UNSUPPORTED_KEYS
from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.data.augment import Augmenter


def only(name: str, ndim: str = "2D", **extra):
    cfg = get_cfg_defaults()
    cfg.PROBLEM.NDIM = ndim
    cfg.AUGMENTOR.ENABLE = True
    cfg.AUGMENTOR[name] = True
    cfg.AUGMENTOR[f"{name}_PROB"] = 1.0
    for key, value in extra.items():
        cfg.AUGMENTOR[key] = value
    return cfg


def run(cfg, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return Augmenter.from_cfg(cfg)(x)


def test_no_augmentor_key_of_biapy_is_refused():
    assert not [k for k in UNSUPPORTED_KEYS if k.startswith("AUGMENTOR.")]


@pytest.mark.parametrize("ndim", ["2D", "3D"])
def test_salt_pepper_and_both_replace_the_stated_proportions(ndim):
    x = torch.full((8, 2, 4, 32, 32) if ndim == "3D" else (8, 2, 64, 64), 0.5)
    salted = run(only("SALT", ndim, SALT_AMOUNT=0.1), x)
    assert set(salted.unique().tolist()) == {0.5, 1.0}
    assert (salted == 1.0).float().mean().item() == pytest.approx(0.1, abs=0.01)
    peppered = run(only("PEPPER", ndim, PEPPER_AMOUNT=0.2), x)
    assert set(peppered.unique().tolist()) == {0.0, 0.5}
    assert (peppered == 0.0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    both = run(only("SALT_AND_PEPPER", ndim, SALT_AND_PEPPER_AMOUNT=0.3, SALT_AND_PEPPER_PROP=0.25), x)
    assert (both != 0.5).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert ((both == 1.0).sum() / (both != 0.5).sum()).item() == pytest.approx(0.25, abs=0.02)
    signed = run(only("PEPPER", ndim, PEPPER_AMOUNT=0.2), x - 0.6)  # negative values: pepper is -1 (skimage)
    assert sorted(signed.unique().tolist()) == pytest.approx([-1.0, -0.1])


def test_poisson_noise_has_the_photon_count_variance_of_the_bit_depth():
    levels = torch.arange(256.0) / 255  # 256 distinct values: L = 256 photons at full scale
    x = levels.repeat(64, 1, 1, 1).view(64, 1, 16, 16)
    y = run(only("POISSON_NOISE"), x)
    # Poisson(x L) / L: mean x, variance x / L, pixel by pixel (averaged over 64 images)
    assert torch.allclose(y.mean(0), x[0], atol=0.045)  # 5 standard errors at full scale
    bright = x[0] > 0.5
    var = y.var(0)[bright] / (x[0][bright] / 256)
    assert var.mean().item() == pytest.approx(1.0, abs=0.1)
    # 16-bit-like data (many distinct values) gets far less noise
    fine = torch.rand(8, 1, 64, 64) * 0.5 + 0.25  # 4096 distinct values: L = 4096
    expected = (fine.mean() / 4096).sqrt().item()
    assert (run(only("POISSON_NOISE"), fine) - fine).std().item() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("invert", [False, True])
def test_gridmask_zeroes_the_stated_share(invert):
    x = torch.ones(64, 1, 64, 64)
    y = run(only("GRIDMASK", GRID_RATIO=0.6, GRID_INVERT=invert), x)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    zeroed = (y == 0).float().mean().item()
    squares = (1 - 0.6) ** 2  # the grid's squares between bands of width ceil(0.6 d)
    assert zeroed == pytest.approx(1 - squares if invert else squares, abs=0.04)
    volume = run(only("GRIDMASK", "3D"), torch.ones(16, 1, 8, 32, 32))
    per_slice = (volume == 0).flatten(3).any(3)  # (n, 1, D): which z-slices were masked
    assert per_slice.any() and not per_slice.all()  # a block of z-slices, not always all


def test_grayscale_and_channel_shuffle():
    x = torch.rand(16, 3, 8, 8)
    gray = run(only("GRAYSCALE"), x)
    assert torch.allclose(gray, x.mean(1, keepdim=True).expand_as(x))
    shuffled = run(only("CHANNEL_SHUFFLE"), x)
    for orig, out in zip(x, shuffled):
        order = [next(j for j in range(3) if torch.equal(out[i], orig[j])) for i in range(3)]
        assert sorted(order) == [0, 1, 2] and order != [0, 1, 2]


@pytest.mark.parametrize("ndim", ["2D", "3D"])
def test_cutblur_changes_one_blocky_box_per_image(ndim):
    x = torch.rand((6, 1, 3, 40, 40) if ndim == "3D" else (6, 1, 40, 40))
    y = run(only("CUTBLUR", ndim, CBLUR_DOWN_RANGE=(4, 4), CBLUR_SIZE=(0.5, 0.5)), x)
    for orig, out in zip(x, y):
        changed = (out != orig).flatten(0, -3).any(0)
        rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
        assert 16 <= len(rows) <= 20 and 16 <= len(cols) <= 20  # the box: half of 40, rounded
        box = out.flatten(0, -3)[0, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.unique().numel() <= box.numel() / 8  # blocks of 4x4 (clipped at the box edge)


def test_cutnoise_adds_noise_inside_boxes_only():
    x = torch.full((8, 2, 40, 40), 0.5)
    y = run(only("CUTNOISE", CNOISE_NB_ITERATIONS=(1, 1), CNOISE_SIZE=(0.25, 0.25), CNOISE_SCALE=(0.2, 0.2)), x)
    for out in y:
        noisy = out[0] != 0.5
        assert torch.equal(out[0] - 0.5, out[1] - 0.5)  # the same noise in every channel
        assert noisy.sum().item() == 100  # one 10x10 box
        assert (out[0][noisy] - 0.5).std().item() == pytest.approx(0.2 * 0.5, rel=0.35)  # scale x image max


def test_misalignment_translates_the_lower_rows_in_2d_and_slices_in_3d():
    x = torch.rand(8, 1, 24, 24)
    y = run(only("MISALIGNMENT", MS_ROTATE_RATIO=0.0, MS_DISPLACEMENT=6), x)
    for orig, out in zip(x, y):
        same = torch.isclose(out, orig, atol=1e-5).all(-1)[0]  # rows left alone
        first = int((~same).nonzero().min()) if (~same).any() else 24
        assert same[:first].all()
        if first < 24:  # else a shift of 0 pixels: the image is as it was
            assert any(torch.allclose(out[0, first:, : 24 - d], orig[0, first:, d:], atol=1e-5) for d in range(1, 6))
            assert (out[0, first:, 24 - 5:].abs() < 1e-5).any()  # zeros slide in (up to rounding)
    vol = torch.rand(8, 1, 6, 16, 16)
    moved = run(only("MISALIGNMENT", "3D", MS_ROTATE_RATIO=1.0, MS_DISPLACEMENT=4), vol)
    touched = (moved != vol).flatten(3).any(3)[:, 0]  # (n, D)
    assert not touched[:, 0].any()  # z-slice 0 never moves: the mis-aligned part starts at 1 or later
    assert touched.any(1).all()


@pytest.mark.parametrize("ndim", ["2D", "3D"])
def test_missing_sections_fill_a_line_with_the_plane_mean(ndim):
    x = torch.rand((4, 2, 3, 32, 32) if ndim == "3D" else (4, 2, 32, 32))
    y = run(only("MISSING_SECTIONS", ndim, MISSP_CHANNEL_PB=1.0, MISSP_ITERATIONS=(2, 3)), x)
    planes_x, planes_y = x.flatten(1, -3), y.flatten(1, -3)
    for px, py in zip(planes_x, planes_y):
        touched = [(px[i] != py[i]).any().item() for i in range(px.shape[0])]
        assert touched[0] and not any(touched[1:3])  # the first plane, then two untouched (BiaPy's gap)
        line = px[0] != py[0]
        assert torch.allclose(py[0][line], px[0].mean().expand(int(line.sum())))
        assert 0.05 < line.float().mean() < 0.4  # a line 2 dilations thick across a 32-pixel image


@pytest.mark.parametrize("size", [(32, 32), (24, 20), (7, 13), (3, 5), (80, 72)])  # 80x72: per-ratio path
def test_cutblur_low_resolution_is_area_then_nearest(size):
    """CUTBLUR's low-resolution copy, computed for every ratio at once on small images, is PyTorch's area
    downsampling followed by nearest upsampling, image by image."""
    import torch.nn.functional as F

    from biapy_cls.data.augment_ops import _low_resolution

    torch.manual_seed(0)
    h, w = size
    x, ratio = torch.rand(9, 3, h, w), torch.randint(2, 9, (9,))
    expected = torch.cat([F.interpolate(F.interpolate(x[i:i + 1], size=(max(1, h // int(r)), max(1, w // int(r))),
                                                      mode="area"), size=(h, w), mode="nearest")
                          for i, r in enumerate(ratio)])
    assert torch.allclose(_low_resolution(x, ratio, 8), expected, atol=1e-6)


@pytest.mark.parametrize("sizes", [(12, 10), (5, 12, 10)])
def test_cutnoise_variance_sums_the_boxes_that_cover_each_pixel(sizes):
    """CUTNOISE's variance map, computed as products of per-axis extents, must equal the sum over the boxes
    containing each pixel, boxes overlapping, 2D and 3D."""
    from biapy_cls.data.augment_ops import _box_extents, _sum_of_boxes

    torch.manual_seed(0)
    n, boxes = 4, 3
    weight = torch.rand(n, boxes)
    extents = _box_extents(torch.rand(n, boxes) * 0.8 + 0.1, sizes)
    got = _sum_of_boxes(weight, [e.float() for e in extents])
    expected = torch.zeros(n, *sizes)
    for i in range(n):
        for b in range(boxes):
            inside = extents[0][i, b].view(-1, *[1] * (len(sizes) - 1))
            for axis, e in enumerate(extents[1:], 1):
                inside = inside & e[i, b].view(*[1] * axis, -1, *[1] * (len(sizes) - 1 - axis))
            expected[i] += weight[i, b] * inside
    assert torch.allclose(got, expected, atol=1e-6)
    assert (expected > 0).any() and (expected == 0).any()  # boxes and background both present
