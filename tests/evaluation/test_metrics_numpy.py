"""The test report's metrics, computed with numpy, are scikit-learn's values (sklearn is no longer
imported by a test run: it cost as much start-up CPU as torch)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from biapy_cls.evaluation.metrics import classification_metrics as compute_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_metrics_equal_scikit_learn_with_ties_and_absent_classes(seed):
    rng = np.random.default_rng(seed)
    n_classes, n = 5, 60
    y_true = rng.choice([0, 1, 2, 4], n)  # class 3 never occurs in the truth
    probs = rng.integers(0, 4, (n, n_classes)).astype(np.float64) + 0.01  # coarse scores: many ties
    probs /= probs.sum(1, keepdims=True)
    ours = compute_metrics(y_true, probs, [f"c{k}" for k in range(n_classes)])
    y_pred = probs.argmax(1)
    present = sorted(set(y_true.tolist()))
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert ours["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(y_true, y_pred, labels=present, average=average,
                                                        zero_division=0)
        assert (ours[f"precision_{average}"], ours[f"recall_{average}"], ours[f"f1_{average}"]) == pytest.approx(
            (p, r, f))
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=list(range(n_classes)), average=None,
                                                    zero_division=0)
    for k in range(n_classes):
        row = ours["per_class"][f"c{k}"]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((p[k], r[k], f[k], s[k]))
        if k in present:
            assert row["roc_auc"] == pytest.approx(sk.roc_auc_score(y_true == k, probs[:, k]))
            assert row["average_precision"] == pytest.approx(sk.average_precision_score(y_true == k, probs[:, k]))
        else:
            assert row["roc_auc"] is None and row["average_precision"] is None
    assert ours["confusion_matrix"]["matrix"] == sk.confusion_matrix(y_true, y_pred, labels=range(n_classes)).tolist()


def test_curve_points_equal_scikit_learn():
    from biapy_cls.evaluation.curves import threshold_counts

    rng = np.random.default_rng(3)
    positives = rng.random(50) < 0.4
    scores = rng.integers(0, 6, 50) / 5.0  # ties
    fps, tps = threshold_counts(positives, scores)
    precision, recall, _ = sk.precision_recall_curve(positives, scores)
    assert np.allclose(np.r_[(tps / (tps + fps))[::-1], 1.0], precision)
    assert np.allclose(np.r_[(tps / positives.sum())[::-1], 0.0], recall)
    fpr, tpr, _ = sk.roc_curve(positives, scores, drop_intermediate=False)
    assert np.allclose(np.r_[0.0, fps / (~positives).sum()], fpr)
    assert np.allclose(np.r_[0.0, tps / positives.sum()], tpr)
