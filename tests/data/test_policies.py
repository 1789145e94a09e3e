"""AUGMENTOR.RANDAUGMENT / TRIVIALAUGMENT (data/policies.py): any channel count and intensity range, per-image
draws, torchvision's operations."""

from __future__ import annotations

import pytest
import torch

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.data.augment import Augmenter
from biapy_cls.data.policies import GEOMETRY, OPS, POINTWISE, _equalize, _geometry, _pointwise, apply_op


def policy_cfg(kind: str, **ra):
    cfg = get_cfg_defaults()
    cfg.AUGMENTOR.ENABLE = True
    if kind == "randaugment":
        cfg.AUGMENTOR.RANDAUGMENT.ENABLE = True
        for key, value in ra.items():
            cfg.AUGMENTOR.RANDAUGMENT[key] = value
    else:
        cfg.AUGMENTOR.TRIVIALAUGMENT = True
    return cfg


@pytest.mark.parametrize("kind", ["randaugment", "trivialaugment"])
@pytest.mark.parametrize("channels", [1, 2, 3, 5])
def test_any_channel_count_and_range_is_kept(kind, channels):
    torch.manual_seed(0)
    # a 16-bit-like image far from [0, 1]: values 1000-1001 in fine steps
    x = 1000 + torch.rand(16, channels, 24, 24)
    y = Augmenter.from_cfg(policy_cfg(kind))(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    low, high = x.flatten(1).amin(1), x.flatten(1).amax(1)
    assert (y.flatten(1).amin(1) >= low - 1e-3).all() and (y.flatten(1).amax(1) <= high + 1e-3).all()
    changed = (y - x).flatten(1).abs().amax(1) > 1e-4
    assert changed.float().mean() > 0.5  # Identity and no-op draws leave a few alone
    assert len({tuple(v.flatten()[:50].tolist()) for v in y}) > 8  # drawn per image, not once per batch


def test_every_operation_runs_on_every_channel_count():
    x = torch.rand(2, 4, 16, 16)
    for channels in (1, 3, 4):
        for op in OPS:
            out = apply_op(x[:, :channels].contiguous(), op, torch.tensor([0.5, -0.3]) if op != "Posterize" else 4)
            assert out.shape == x[:, :channels].shape, op


def test_magnitude_scales_the_change():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 24, 24)
    small = (Augmenter.from_cfg(policy_cfg("randaugment", M=2, N=1))(x) - x).abs().mean()
    torch.manual_seed(0)
    large = (Augmenter.from_cfg(policy_cfg("randaugment", M=25, N=1))(x) - x).abs().mean()
    assert large > 1.5 * small


def test_described_in_the_log_and_refused_in_3d_by_the_policy():
    assert "RANDAUGMENT (N=2, M=9" in Augmenter.from_cfg(policy_cfg("randaugment")).describe()
    assert "TRIVIALAUGMENT" in Augmenter.from_cfg(policy_cfg("trivialaugment")).describe()
    cfg = policy_cfg("trivialaugment")
    cfg.PROBLEM.NDIM = "3D"
    assert not Augmenter.from_cfg(cfg)


# torchvision's RandAugment calls (transforms/v2/_auto_augment.py, _apply_image_or_video_transform), on floats.
# Magnitudes are chosen so that no source position falls exactly between two pixels (a tie that nearest-
# neighbour may break either way after rounding).
def _torchvision(x, op, m):
    import math

    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    nearest = InterpolationMode.NEAREST
    calls = {
        "ShearX": lambda: TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0, center=[0, 0],
                                    shear=[math.degrees(math.atan(m)), 0.0], interpolation=nearest),
        "ShearY": lambda: TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0, center=[0, 0],
                                    shear=[0.0, math.degrees(math.atan(m))], interpolation=nearest),
        "TranslateX": lambda: TF.affine(x, angle=0.0, translate=[int(m), 0], scale=1.0, shear=[0.0, 0.0],
                                        interpolation=nearest),
        "TranslateY": lambda: TF.affine(x, angle=0.0, translate=[0, int(m)], scale=1.0, shear=[0.0, 0.0],
                                        interpolation=nearest),
        "Rotate": lambda: TF.rotate(x, m, interpolation=nearest),
        "Brightness": lambda: TF.adjust_brightness(x, 1.0 + m),
        "Color": lambda: TF.adjust_saturation(x, 1.0 + m),
        "Contrast": lambda: TF.adjust_contrast(x, 1.0 + m),
        "Sharpness": lambda: TF.adjust_sharpness(x, 1.0 + m),
        "Posterize": lambda: TF.posterize(x, int(m)),
        "Solarize": lambda: TF.solarize(x, m),
        "AutoContrast": lambda: TF.autocontrast(x),
        "Equalize": lambda: TF.equalize(x),
    }
    return calls[op]()


@pytest.mark.parametrize("op, magnitude", [("ShearX", 0.23), ("ShearX", -0.17), ("ShearY", 0.23), ("ShearY", -0.17),
                                           ("TranslateX", 5.7), ("TranslateY", -4.2), ("Rotate", 17.0),
                                           ("Rotate", -23.0), ("Brightness", 0.3), ("Color", -0.4),
                                           ("Contrast", 0.5), ("Sharpness", 0.6), ("Posterize", 4.0),
                                           ("Solarize", 0.6), ("AutoContrast", 0.0), ("Equalize", 0.0)])
def test_each_operation_is_torchvisions(op, magnitude):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 24, 20)
    ours = apply_op(x, op, torch.tensor([magnitude]))
    assert torch.allclose(ours, _torchvision(x, op, magnitude), atol=1e-6), op


def test_batched_resampling_changes_no_pixel():
    """The policy resamples the images of every geometric operation in one call; each image must come out
    as if its operation ran on it alone (and the other images untouched)."""
    torch.manual_seed(0)
    x = torch.rand(7, 2, 24, 20)
    ops = ["ShearX", "Rotate", "Brightness", "TranslateY", "ShearY", "TranslateX", "Rotate"]
    mags = torch.tensor([0.23, 17.0, 0.3, -4.2, -0.17, 5.7, -23.0])
    batched = _geometry(x, ops, mags.tolist())
    for i, op in enumerate(ops):
        alone = apply_op(x[i:i + 1], op, mags[i:i + 1]) if op in GEOMETRY else x[i:i + 1]
        assert torch.equal(batched[i:i + 1], alone), op


def test_batched_pointwise_operations_change_no_pixel():
    """The policy computes the pointwise operations of a batch in one pass, each image keeping its own; each
    must come out as if its operation ran on it alone, and an image that drew none of them untouched."""
    torch.manual_seed(0)
    x = torch.rand(9, 3, 24, 20)
    ops = ["Brightness", "Color", "Rotate", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast",
           "Identity"]
    mags = torch.tensor([0.3, -0.4, 17.0, 0.5, 0.6, 4.0, 0.6, 0.0, 0.0])
    batched = _pointwise(x, ops, mags.tolist())
    for i, op in enumerate(ops):
        alone = apply_op(x[i:i + 1], op, mags[i:i + 1]) if op in POINTWISE else x[i:i + 1]
        assert torch.equal(batched[i:i + 1], alone), op


def test_equalize_is_torchvisions_on_flat_and_two_valued_channels():
    """PIL's lookup table leaves a channel with one value as it is (its step is 0) and spreads two values
    apart; our batched histogram must agree with torchvision on those edge cases and on 8-bit images."""
    from torchvision.transforms.v2 import functional as TF

    torch.manual_seed(0)
    x = torch.randint(0, 256, (4, 2, 16, 12)).float() / 255
    x[0, 0] = 0.5  # flat
    x[1, 1] = (torch.rand(16, 12) < 0.3).float() * 0.4  # two values
    x[2] = 1.0
    assert torch.equal(_equalize(x), TF.equalize(x))
