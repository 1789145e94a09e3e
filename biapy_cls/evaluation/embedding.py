"""Penultimate-layer features: what the classifier's last layer sees, projected to 2D.

The features are read by a forward pre-hook on the final classification layer, found by
`classifier_layer` for any model (ours, timm's, torchvision's, MONAI's) without editing it. The test
and validation features are projected together (the same axes, so a shift between the sets shows), one
panel per set. PCA is always drawn; a non-linear map is added for sets small enough to embed in seconds:
UMAP when umap-learn is installed (the `umap` extra), else t-SNE (evaluation/tsne.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger("biapy_cls")

MAX_TSNE = 2000  # images up to which t-SNE is run (t-SNE takes a few seconds for 2000)
MAX_UMAP = 20000  # UMAP grows about linearly: ~10 s for 20000 images on one core


@dataclass(frozen=True)
class FeatureSet:
    """One set's features and what colours its points: `labels` None for unlabelled images."""

    name: str  # "test", "validation"
    features: np.ndarray  # (n, n_features)
    predicted: np.ndarray
    labels: np.ndarray | None = None


def classifier_layer(model: nn.Module, n_classes: int) -> nn.Module | None:
    """The layer that turns features into class logits.

    timm models (and wrappers exposing one as `timm_module`) name it via `get_classifier()`; otherwise
    it is the last registered Linear with one output per class (our models' `head`, torchvision's
    `fc`/`classifier[-1]`/`heads.head`, MONAI's `_fc`). None when there is none.
    """
    for candidate in (model, getattr(model, "timm_module", None)):
        getter = getattr(candidate, "get_classifier", None)
        if callable(getter):
            layer = getter()
            if isinstance(layer, nn.Module) and any(True for _ in layer.parameters()):
                return layer
    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == n_classes]
    return linears[-1] if linears else None


@torch.no_grad()
def extract_features(model: nn.Module, layer: nn.Module, batches) -> np.ndarray:
    """(n_images, n_features) inputs of `layer`, over `batches` (prepared input tensors) in order."""
    return features_and_predictions(model, layer, batches)[0]


@torch.no_grad()
def features_and_predictions(model: nn.Module, layer: nn.Module, batches) -> tuple[np.ndarray, np.ndarray]:
    """The inputs of `layer` (n_images, n_features) and the predicted class of each image, in one pass."""
    captured: list[torch.Tensor] = []
    predicted: list[torch.Tensor] = []

    def keep(_module, args):
        captured.append(args[0].detach().flatten(1).float().cpu())

    handle = layer.register_forward_pre_hook(keep)
    try:
        model.eval()
        for x in batches:
            predicted.append(model(x).argmax(1).cpu())
    finally:
        handle.remove()
    if not captured:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return torch.cat(captured).numpy(), torch.cat(predicted).numpy()


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) coordinates on the first two principal axes, and the share of variance each explains."""
    centred = features.astype(np.float64) - features.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    if coords.shape[1] < 2:  # a single feature: nothing for the second axis
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    variance = s ** 2
    share = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    return coords, np.pad(share, (0, 2 - len(share)))


def nonlinear_2d(features: np.ndarray, seed: int = 0) -> tuple[str, np.ndarray | None]:
    """(what was drawn or why not, (n, 2) coordinates or None). UMAP when umap-learn is installed, else
    t-SNE; None for sets too small to be worth it or too large to embed in seconds."""
    n = len(features)
    if n < 10:
        return f"no UMAP or t-SNE for {n} images (fewer than 10)", None
    try:
        from umap import UMAP  # optional: pip install "biapy-cls[umap]"
    except ImportError:  # not installed, or only the folder an uninstall can leave behind
        UMAP = None  # noqa: N806
    if UMAP is not None and n <= MAX_UMAP:
        reducer = UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1)
        return "UMAP", np.asarray(reducer.fit_transform(features))
    if n > MAX_TSNE:
        return (f"no UMAP or t-SNE for {n} images (t-SNE up to {MAX_TSNE}"
                + (f", UMAP up to {MAX_UMAP})" if UMAP is not None else "; install umap-learn for UMAP)")), None
    from biapy_cls.evaluation.tsne import tsne_2d

    perplexity = float(min(30.0, (n - 1) / 3))
    # 350 iterations (250 of them early exaggeration) instead of 1000: on 502 of scikit-learn's digits the
    # trustworthiness (10 neighbours) was 0.9931 against 0.9932 at 500 (scikit-learn's t-SNE); ours, exact,
    # gave 0.9925 in 0.42 s of CPU against scikit-learn's 0.54 s plus 1.5 s to import sklearn.manifold.
    name = "t-SNE" if UMAP is not None else "t-SNE (umap-learn not installed)"
    return name, tsne_2d(features, perplexity, 350)


def plot_embedding(sets: list[FeatureSet], class_names: list[str], path: Path, title: str, seed: int = 0) -> str:
    """The embedding chart: the sets projected together, one column per set, one row per method (PCA, then
    UMAP or t-SNE). Points coloured by true class with errors ringed when labels exist, else by predicted
    class. Returns what the chart shows, for the report."""
    from matplotlib.figure import Figure

    sizes = [len(s.features) for s in sets]
    joint = np.concatenate([s.features for s in sets])
    coords, share = pca_2d(joint)
    rows = [(f"PCA ({share[0]:.0%} + {share[1]:.0%} of the variance)", coords)]
    nonlinear, mapped = nonlinear_2d(joint, seed)
    if mapped is not None:
        rows.append((nonlinear, mapped))
    cmap = _class_colours(len(class_names))
    fig = Figure(figsize=(5.0 * len(sets) + 1.6, 4.6 * len(rows) + 0.4), dpi=100, layout="tight")
    axes = np.asarray(fig.subplots(len(rows), len(sets), squeeze=False))
    bounds = np.cumsum([0, *sizes])
    for r, (method, xy) in enumerate(rows):
        low, high = xy.min(0), xy.max(0)
        pad = 0.05 * np.maximum(high - low, 1e-9)
        for c, feature_set in enumerate(sets):
            ax, part = axes[r, c], xy[bounds[c]:bounds[c + 1]]
            _scatter(ax, part, feature_set, class_names, cmap)
            ax.set_xlim(low[0] - pad[0], high[0] + pad[0]), ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
            ax.set_title(f"{feature_set.name} ({len(part)}): {method}", fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
    handles, names = {}, []
    for ax in axes.flat:  # one legend for all panels: every class and "misclassified" once
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    names = [n for n in class_names if n in handles] + [n for n in handles if n not in class_names]
    axes[0, -1].legend([handles[n] for n in names], names, fontsize=7, loc="upper left",
                       bbox_to_anchor=(1.0, 1.0), markerscale=1.5)
    if mapped is None:
        fig.text(0.01, 0.005, nonlinear, fontsize=7, color="#555555")
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    colours = ["true class, misclassified images ringed in black" if s.labels is not None
               else "predicted class (no labels)" for s in sets]
    colour = colours[0] if len(set(colours)) == 1 else "; ".join(f"{s.name}: {c}" for s, c in zip(sets, colours))
    methods = "PCA and " + nonlinear if mapped is not None else f"PCA ({nonlinear})"
    together = f" of {' and '.join(s.name for s in sets)} projected together" if len(sets) > 1 else ""
    return f"{methods}{together}, {joint.shape[1]} features; colour: {colour}"


def _scatter(ax, xy: np.ndarray, feature_set: FeatureSet, class_names: list[str], cmap: list) -> None:
    colour_by = feature_set.labels if feature_set.labels is not None else feature_set.predicted
    for k, cname in enumerate(class_names):
        mask = colour_by == k
        if mask.any():
            ax.scatter(xy[mask, 0], xy[mask, 1], s=12, color=cmap[k], label=cname, alpha=0.8, linewidths=0)
    if feature_set.labels is not None:
        wrong = feature_set.predicted != feature_set.labels
        if wrong.any():
            # a black ring around the point keeps its true-class colour visible
            ax.scatter(xy[wrong, 0], xy[wrong, 1], s=45, facecolors="none", edgecolors="black", linewidths=1.0,
                       label="misclassified")


def _class_colours(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"]
    return [cmap(k if n <= 20 else k / max(n - 1, 1)) for k in range(n)]
