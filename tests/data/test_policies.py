"""AUGMENTOR.RANDAUGMENT / TRIVIALAUGMENT (data/policies.py): any channel count and intensity range, per-image
draws, torchvision's operations."""

from __future__ import annotations

import pytest
import torch

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.data.augment import Augmenter
from biapy_cls.data.policies import OPS, apply_op


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
    y = Augmenter(policy_cfg(kind))(x)
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
    small = (Augmenter(policy_cfg("randaugment", M=2, N=1))(x) - x).abs().mean()
    torch.manual_seed(0)
    large = (Augmenter(policy_cfg("randaugment", M=25, N=1))(x) - x).abs().mean()
    assert large > 1.5 * small


def test_described_in_the_log_and_refused_in_3d_by_the_policy():
    assert "RANDAUGMENT (N=2, M=9" in Augmenter(policy_cfg("randaugment")).describe()
    assert "TRIVIALAUGMENT" in Augmenter(policy_cfg("trivialaugment")).describe()
    cfg = policy_cfg("trivialaugment")
    cfg.PROBLEM.NDIM = "3D"
    assert not Augmenter(cfg)
