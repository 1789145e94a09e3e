"""The loss on soft targets (engine/losses.py): one-hot targets give exactly the class-index loss, with
class weights and label smoothing; smoothing applies to the mixed target."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biapy_cls.engine.losses import ClassificationLoss


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_one_hot_targets_give_the_index_loss(smoothing, weighted):
    torch.manual_seed(0)
    logits, labels = torch.randn(12, 5), torch.randint(0, 5, (12,))
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.7]) if weighted else None
    loss = ClassificationLoss(weight, smoothing)
    hard, soft = loss(logits, labels), loss(logits, F.one_hot(labels, 5).float())
    assert soft.item() == pytest.approx(hard.item(), rel=1e-6)
    reference = F.cross_entropy(logits, labels, weight=weight, label_smoothing=smoothing)
    assert hard.item() == pytest.approx(reference.item(), rel=1e-6)


def test_mixed_targets_are_smoothed_after_mixing():
    torch.manual_seed(1)
    logits = torch.randn(4, 3)
    t = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.2, 0.2, 0.6]])
    eps = 0.2
    expected = -(((1 - eps) * t + eps / 3) * F.log_softmax(logits, 1)).sum(1).mean()
    assert ClassificationLoss(label_smoothing=eps)(logits, t).item() == pytest.approx(expected.item(), rel=1e-6)
    # without smoothing a mixed target's loss is the mix of the two class losses
    a, b = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    mix = 0.7 * F.one_hot(a, 3).float() + 0.3 * F.one_hot(b, 3).float()
    plain = ClassificationLoss()
    assert plain(logits, mix).item() == pytest.approx(0.7 * plain(logits, a).item() + 0.3 * plain(logits, b).item(),
                                                      rel=1e-6)
