"""The parts of a BioImage Model Zoo package that describe the data side: the preprocessing in the zoo's own
operations, the cover image and the generated documentation. bmz.py assembles them with the weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from yacs.config import CfgNode as CN

from biapy_cls import __version__
from biapy_cls.data.transforms import Normalizer, describe_normalizer


def preprocessing_ops(normalizer: Normalizer, value_range: float, ndim: str) -> list[dict]:
    """Our normalisation (transforms.py) as bioimage.io spec 0.5 preprocessing steps, applied to the raw image
    values (the test input is raw). Per-image statistics are taken over channel and space jointly, as we do;
    both statistics are scale-invariant, so they need no division by the value range first."""
    space = ["channel", "z", "y", "x"] if ndim == "3D" else ["channel", "y", "x"]
    ops: list[dict] = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    if normalizer.clip:
        clip: dict = {}
        for side, value, perc in (("min", normalizer.lower_value, normalizer.lower_perc),
                                  ("max", normalizer.upper_value, normalizer.upper_perc)):
            clip.update({side: float(value)} if value != -1 else {f"{side}_percentile": float(perc)})
        if "min_percentile" in clip or "max_percentile" in clip:
            clip["axes"] = space
        ops.append({"id": "clip", "kwargs": clip})
    if normalizer.kind == "div":
        if value_range != 1:
            ops.append({"id": "scale_linear", "kwargs": {"gain": 1.0 / value_range}})
    elif normalizer.kind == "scale_range":
        ops.append({"id": "scale_range", "kwargs": {"axes": space, "min_percentile": 0.0, "max_percentile": 100.0}})
    elif normalizer.mean != -1:  # fixed statistics, in raw units
        ops.append({"id": "fixed_zero_mean_unit_variance", "kwargs": {"mean": normalizer.mean, "std": normalizer.std}})
    else:
        ops.append({"id": "zero_mean_unit_variance", "kwargs": {"axes": space}})
    return ops


def write_cover(path: Path, images: np.ndarray, probs: np.ndarray, class_names: list[str], ndim: str) -> Path:
    """A 2:1 PNG of up to 8 test images (the middle slice of volumes) titled with their predicted class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(images), 8)
    fig, axes = plt.subplots(2, 4, figsize=(8, 4), squeeze=False)  # 2:1, the zoo's cover aspect ratio
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]  # (C, *spatial)
        img = img[:, img.shape[1] // 2] if ndim == "3D" else img
        img = img[0] if img.shape[0] != 3 else np.moveaxis(img, 0, -1)
        low, high = float(img.min()), float(img.max())
        ax.imshow((img - low) / (high - low or 1), cmap="gray" if img.ndim == 2 else None)
        k = int(probs[i].argmax())
        ax.set_title(f"{class_names[k]} ({probs[i, k]:.2f})", fontsize=9)
    fig.suptitle("Predicted class (probability)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _metrics_lines(metrics: dict | None) -> list[str]:
    if not metrics:
        return ["No labelled test set was evaluated in the run that exported this model."]
    names = [("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced accuracy"), ("f1_macro", "F1 (macro)"),
             ("precision_macro", "Precision (macro)"), ("recall_macro", "Recall (macro)"),
             ("roc_auc_macro", "ROC AUC (macro)")]
    lines = ["| Metric | Value |", "| --- | --- |"]
    lines += [f"| {label} | {metrics[key]:.4f} |" for key, label in names if metrics.get(key) is not None]
    return lines


def write_documentation(path: Path, *, name: str, description: str, cfg: CN, class_names: list[str],
                        counts: dict[str, dict[str, int]], shape: tuple[int, ...], architecture: str,
                        normalizer: Normalizer, metrics: dict | None, formats: list[str]) -> Path:
    """README of the package: what it classifies, the training data, how it was trained, its test results."""
    train = cfg.TRAIN
    axes = "(batch, channel, z, y, x)" if cfg.PROBLEM.NDIM == "3D" else "(batch, channel, y, x)"
    lines = [
        f"# {name}", "", description, "",
        "## What it does", "",
        f"Classifies each {cfg.PROBLEM.NDIM} image of shape {axes} = (1, {', '.join(map(str, shape))}) into one of "
        f"{len(class_names)} classes. The output is one probability per class (a softmax), with the class names "
        "as channel names:", "",
        *[f"{i}. `{c}`" for i, c in enumerate(class_names)], "",
        "## Training data", "",
        "| Split | " + " | ".join(f"`{c}`" for c in class_names) + " | Total |",
        "| --- | " + " | ".join("---" for _ in class_names) + " | --- |",
        *[f"| {split} | " + " | ".join(str(c.get(k, 0)) for k in class_names) + f" | {sum(c.values())} |"
          for split, c in counts.items()], "",
        "## How it was trained", "",
        f"- Trained with biapy-cls {__version__} (a BiaPy-compatible classification trainer).",
        f"- Architecture: `{architecture}`.",
        f"- Normalisation of the input: {describe_normalizer(normalizer)} (written as the package's preprocessing).",
        f"- {train.EPOCHS} epochs at most, batch size {train.BATCH_SIZE}, optimizer {train.OPTIMIZER}, "
        f"learning rate {train.LR:g}, scheduler {train.LR_SCHEDULER.NAME or 'none'}, "
        f"early stopping patience {train.PATIENCE}.",
        f"- Weights formats: {', '.join(formats)}.", "",
        "## Test results", "", *_metrics_lines(metrics), "",
        "## Use", "",
        "Run it with bioimageio.core (`bioimageio predict`), deepImageJ in Fiji, ilastik or QuPath, or with "
        "biapy-cls: `MODEL.SOURCE: bmz`, `MODEL.BMZ.SOURCE_MODEL_ID: <this zip>`.", "",
        "## Configuration", "", "```json", json.dumps({"architecture": architecture, "class_names": class_names}),
        "```",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
