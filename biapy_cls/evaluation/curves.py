"""Per-class one-vs-rest ROC and precision-recall curves, with the AUCs that test_metrics.json holds.

The ROC AUC in each legend is the `roc_auc` of that class in test_metrics.json (the same
scikit-learn computation); the precision-recall legend shows the average precision (`average_precision`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def average_precision(y_true: np.ndarray, probs: np.ndarray, n_classes: int) -> dict[int, float]:
    """One-vs-rest average precision (area under the precision-recall curve) of classes present."""
    from sklearn.metrics import average_precision_score

    return {k: float(average_precision_score(y_true == k, probs[:, k]))
            for k in range(n_classes) if (y_true == k).any() and (y_true != k).any()}


def plot_roc_pr(y_true: np.ndarray, probs: np.ndarray, class_names: list[str], metrics: dict, path: Path,
                title: str) -> None:
    """One picture: ROC curves (left) and precision-recall curves (right), one line per class."""
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve, roc_curve

    from biapy_cls.evaluation.embedding import _class_colours

    colours = _class_colours(len(class_names))
    fig = Figure(figsize=(12.0, 5.0), dpi=100, layout="tight")
    roc_ax, pr_ax = fig.subplots(1, 2)
    many = len(class_names) > 12  # legends of many classes would hide the curves
    for k, name in enumerate(class_names):
        positives = y_true == k
        if not positives.any() or positives.all():
            continue
        row = metrics["per_class"][name]
        fpr, tpr, _ = roc_curve(positives, probs[:, k])
        roc_ax.plot(fpr, tpr, color=colours[k], lw=1.2, label=f"{name} ({row['roc_auc']:.3f})")
        precision, recall, _ = precision_recall_curve(positives, probs[:, k])
        pr_ax.step(recall, precision, where="post", color=colours[k], lw=1.2,
                   label=f"{name} ({row['average_precision']:.3f})")
    roc_ax.plot([0, 1], [0, 1], "--", color="#98a2b3", lw=1)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    roc_ax.set_title(f"ROC, one vs rest (macro AUC {metrics.get('roc_auc_macro') or float('nan'):.3f})", fontsize=10)
    pr_ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
    pr_ax.set_title("Precision-recall, one vs rest (average precision)", fontsize=10)
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
        if not many:
            ax.legend(fontsize=7, loc="lower right" if ax is roc_ax else "lower left")
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
