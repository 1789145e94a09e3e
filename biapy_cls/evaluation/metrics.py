"""Classification metrics.

Metrics come from a confusion matrix, which sums exactly across processes; ROC AUC from ranks. numpy
only: importing scikit-learn.metrics (it pulls in scipy.stats) cost a test-only run ~1.6 s of CPU, as
much as importing torch (bench/, docs/benchmarks.md); tests compare every value with scikit-learn's.
Every function accepts classes absent from the data.
"""

from __future__ import annotations

import numpy as np
import torch

from biapy_cls.config.settings import DEFAULT_TEST_METRICS, TEST_METRICS


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n_classes, n_classes) counts; rows are the true class, columns the predicted class."""
    index = labels.long() * n_classes + preds.long()
    return torch.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def summarize_confusion(cm: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro F1 over the classes present in the true labels."""
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "f1": float(f1[present].mean()) if present.any() else 0.0,
    }


def tied_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (scipy.stats.rankdata's 'average')."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(values)])
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = (first + 1 + (counts - 1) / 2)[group]
    return ranks


def _roc_auc(y_true: np.ndarray, probs: np.ndarray, n_classes: int) -> dict:
    """One-vs-rest ROC AUC per class (classes with both positives and negatives): the Mann-Whitney
    statistic, equal to the area under the ROC curve with ties counted half."""
    per_class = {}
    for k in range(n_classes):
        positives = y_true == k
        n_pos, n_neg = int(positives.sum()), int((~positives).sum())
        if n_pos and n_neg:
            ranks = tied_ranks(probs[:, k])
            per_class[k] = float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return per_class


def _precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support of a confusion matrix (0 where undefined)."""
    cm = cm.astype(np.float64)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict:
    """Everything test_metrics.json holds: overall scores, per-class report, confusion matrix."""
    from biapy_cls.evaluation.curves import average_precision

    n_classes = len(class_names)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(torch.as_tensor(y_pred), torch.as_tensor(y_true), n_classes).numpy()
    p, r, f, s = _precision_recall_f1(cm)
    present = s > 0
    metrics: dict = {
        "n_images": int(len(y_true)),
        "accuracy": float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0,
        "balanced_accuracy": float(r[present].mean()) if present.any() else 0.0,
    }
    # Averages over the classes that occur in the test set: a class absent from it has no recall.
    weights = {"macro": None, "weighted": s[present]}
    for average in ("macro", "weighted"):
        for name, values in (("precision", p), ("recall", r), ("f1", f)):
            mean = np.average(values[present], weights=weights[average]) if present.any() else 0.0
            metrics[f"{name}_{average}"] = float(mean)
    auc = _roc_auc(y_true, probs, n_classes)
    metrics["roc_auc_macro"] = float(np.mean(list(auc.values()))) if auc else None
    ap = average_precision(y_true, probs, n_classes)
    metrics["average_precision_macro"] = float(np.mean(list(ap.values()))) if ap else None
    metrics["per_class"] = {
        name: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(s[k]),
               "roc_auc": auc.get(k), "average_precision": ap.get(k)}
        for k, name in enumerate(class_names)
    }
    metrics["confusion_matrix"] = {"rows_true_cols_predicted": class_names, "matrix": cm.tolist()}
    return metrics


def format_report(metrics: dict, class_names: list[str]) -> str:
    """The printed summary: per-class report under class names, then averages and the confusion matrix."""
    width = max(12, *(len(n) for n in class_names)) + 2
    lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name in class_names:
        row = metrics["per_class"][name]
        lines.append(f"{name:<{width}}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10d}")
    lines.append("")
    for average in ("macro", "weighted"):
        lines.append(
            f"{average + ' avg':<{width}}{metrics[f'precision_{average}']:>10.4f}{metrics[f'recall_{average}']:>10.4f}"
            f"{metrics[f'f1_{average}']:>10.4f}{metrics['n_images']:>10d}"
        )
    lines.append(f"{'accuracy':<{width}}{metrics['accuracy']:>30.4f}")
    lines.append(f"{'balanced acc.':<{width}}{metrics['balanced_accuracy']:>30.4f}")
    if metrics.get("roc_auc_macro") is not None:
        lines.append(f"{'ROC AUC':<{width}}{metrics['roc_auc_macro']:>30.4f}")
    lines.append("")
    lines.append("Confusion matrix (rows: true class, columns: predicted class)")
    cm = metrics["confusion_matrix"]["matrix"]
    cell = max(6, *(len(str(v)) + 1 for row in cm for v in row))
    short = [n[:cell - 1] for n in class_names]
    lines.append(" " * width + "".join(f"{n:>{cell}}" for n in short))
    for name, row in zip(class_names, cm):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)


def summary_line(metrics: dict, names: list[str] | tuple[str, ...]) -> str:
    """The final line of a test run: the TEST.METRICS metrics (macro averages; all by default)."""
    names = list(names) or list(DEFAULT_TEST_METRICS)
    values = [f"{name.replace('_', ' ')}: {metrics[TEST_METRICS[name]]:.4f}" for name in names
              if metrics.get(TEST_METRICS[name]) is not None]
    return "Test " + "  ".join(values)
