"""Label mixing (data/mixing.py): BiaPy's CUTMIX, MixUp and CutMix give soft targets that sum to 1 and
match what was pasted or blended, in 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.data.mixing import Mixer, MixSettings

N_CLASSES = 8


def constant_batch(ndim: str, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i is filled with the value i and has class i: every pixel says where it came from."""
    shape = (n, 2, 4, 20, 30) if ndim == "3D" else (n, 2, 20, 30)
    x = torch.arange(n, dtype=torch.float32).view(n, *[1] * (len(shape) - 1)).expand(shape).clone()
    return x, torch.arange(n)


def mixer(**aug) -> Mixer:
    cfg = get_cfg_defaults()
    cfg.AUGMENTOR.ENABLE = True
    for key, value in aug.items():
        cfg.AUGMENTOR[key] = value
    return Mixer(MixSettings.from_cfg(cfg), N_CLASSES)


def source_shares(x: torch.Tensor, n: int) -> torch.Tensor:
    """(n, n): the share of image i's pixels whose value is j."""
    flat = x.flatten(1)
    return torch.stack([(flat == j).float().mean(1) for j in range(n)], 1)


@pytest.mark.parametrize("ndim", ["2D", "3D"])
def test_biapy_cutmix_weights_are_the_pasted_area(ndim):
    x, labels = constant_batch(ndim)
    torch.manual_seed(0)
    out, targets = mixer(CUTMIX=True, CUTMIX_PROB=1.0, CMIX_SIZE=(0.3, 0.5))(x, labels)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    assert torch.allclose(targets, source_shares(out, 8), atol=1e-6)
    kept = targets[torch.arange(8), labels]
    # a box of 0.3-0.5 of y and x (every z-slice): 9-25 % of the image from one other image
    assert ((1 - kept) >= 0.3 * 0.3 * 0.9).all() and ((1 - kept) <= 0.5 * 0.5 * 1.1).all()
    assert ((targets > 0).sum(1) == 2).all()  # never pasted from itself
    if ndim == "3D":  # the same box in every z-slice
        assert (out[:, :, :1] == out).all()


def test_mixup_blends_images_and_labels_alike():
    x, labels = constant_batch("2D")
    torch.manual_seed(1)
    out, targets = mixer(MIXUP=0.4)(x, labels)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    lam = targets[0, 0].item()
    assert 0 < lam < 1 and torch.allclose(targets[0, 7], torch.tensor(1 - lam))  # mixed with the reversed batch
    expected = (targets * torch.arange(8.0)).sum(1)  # a pixel's value is the label-weighted mean of the sources
    assert torch.allclose(out.flatten(1).mean(1), expected, atol=1e-5)
    lams = []
    for seed in range(200):
        torch.manual_seed(seed)
        lams.append(mixer(MIXUP=0.4)(x, labels)[1][0, 0].item())
    # Beta(0.4, 0.4): mean 1/2, variance 1 / (4 (2 alpha + 1)) = 0.139
    assert torch.tensor(lams).mean().item() == pytest.approx(0.5, abs=0.07)
    assert torch.tensor(lams).var().item() == pytest.approx(0.139, abs=0.03)


@pytest.mark.parametrize("ndim", ["2D", "3D"])
def test_cutmix_alpha_weights_are_the_pasted_box(ndim):
    x, labels = constant_batch(ndim)
    for seed in range(10):
        torch.manual_seed(seed)
        out, targets = mixer(CUTMIX_ALPHA=1.0)(x, labels)
        assert torch.allclose(targets.sum(1), torch.ones(8))
        assert torch.allclose(targets, source_shares(out, 8), atol=1e-6)


def test_switch_probability_and_batch_probability():
    x, labels = constant_batch("2D")
    both = mixer(MIXUP=1.0, CUTMIX_ALPHA=1.0, MIXUP_SWITCH_PROB=0.25)
    cut = 0
    for seed in range(200):
        torch.manual_seed(seed)
        out, _ = both(x, labels)
        cut += bool(torch.isin(out, torch.arange(8.0)).all())  # CutMix copies values; MixUp blends them
    assert cut / 200 == pytest.approx(0.25, abs=0.08)
    never = mixer(MIXUP=1.0, MIXUP_PROB=0.0)
    assert not never and torch.equal(never(x, labels)[0], x)
    assert not mixer(MIXUP=1.0, ENABLE=False)


def test_soft_targets_train_through_the_loss_with_label_smoothing():
    from biapy_cls.engine.losses import ClassificationLoss

    logits = torch.randn(6, N_CLASSES, requires_grad=True)
    x, labels = constant_batch("2D", 6)
    torch.manual_seed(0)
    _, targets = mixer(MIXUP=0.4, CUTMIX=True, CUTMIX_PROB=1.0)(x, labels)
    loss = ClassificationLoss(label_smoothing=0.1)(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0
