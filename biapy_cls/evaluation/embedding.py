"""Penultimate-layer features: what the classifier's last layer sees, projected to 2D.

The features are read by a forward pre-hook on the final classification layer, found by
`classifier_layer` for any model (ours, timm's, torchvision's, MONAI's) without editing it. PCA is
always drawn; t-SNE (scikit-learn) is added for sets small enough to embed in a few seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger("biapy_cls")

MAX_NONLINEAR = 2000  # images up to which t-SNE is run (t-SNE takes a few seconds for 2000)


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
    captured: list[torch.Tensor] = []
    def keep(_module, args):
        captured.append(args[0].detach().flatten(1).float().cpu())

    handle = layer.register_forward_pre_hook(keep)
    try:
        model.eval()
        for x in batches:
            model(x)
    finally:
        handle.remove()
    return torch.cat(captured).numpy() if captured else np.zeros((0, 0), dtype=np.float32)


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


def nonlinear_2d(features: np.ndarray, seed: int = 0) -> tuple[str, np.ndarray] | None:
    """t-SNE (scikit-learn, already a dependency); None for sets too small or too large to be worth it.
    UMAP is not used: umap-learn would add numba and llvmlite to the dependencies for a second opinion."""
    n = len(features)
    if n < 10 or n > MAX_NONLINEAR:
        return None
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (n - 1) / 3))
    # 500 iterations instead of 1000: the clusters of a few hundred points are settled, in half the time.
    iterations = "max_iter" if "max_iter" in TSNE().get_params() else "n_iter"  # renamed in scikit-learn 1.5
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, **{iterations: 500})
    return "t-SNE", tsne.fit_transform(features)


def plot_embedding(features: np.ndarray, class_names: list[str], path: Path, title: str, predicted: np.ndarray,
                   labels: np.ndarray | None = None, seed: int = 0) -> str:
    """The embedding chart; returns what it shows (for the report). Coloured by true class with errors
    marked when labels exist, else by predicted class."""
    from matplotlib.figure import Figure

    coords, share = pca_2d(features)
    panels = [(f"PCA ({share[0]:.0%} + {share[1]:.0%} of the variance)", coords)]
    extra = nonlinear_2d(features, seed)
    if extra is not None:
        panels.append((extra[0], extra[1]))
    colour_by = labels if labels is not None else predicted
    fig = Figure(figsize=(5.4 * len(panels) + 1.6, 5.0), dpi=100, layout="tight")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    cmap = _class_colours(len(class_names))
    for ax, (name, xy) in zip(axes, panels):
        for k, cname in enumerate(class_names):
            mask = colour_by == k
            if mask.any():
                ax.scatter(xy[mask, 0], xy[mask, 1], s=12, color=cmap[k], label=cname, alpha=0.8, linewidths=0)
        if labels is not None:
            wrong = predicted != labels
            if wrong.any():
                # a black ring around the point keeps its true-class colour visible
                ax.scatter(xy[wrong, 0], xy[wrong, 1], s=45, facecolors="none", edgecolors="black", linewidths=1.0,
                           label="misclassified")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([]), ax.set_yticks([])
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=1.5)
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    what = "true class, misclassified images ringed in black" if labels is not None else "predicted class (no labels)"
    return f"{' and '.join(p[0].split(' (')[0] for p in panels)} of {features.shape[1]} features; colour: {what}"


def _class_colours(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"]
    return [cmap(k if n <= 20 else k / max(n - 1, 1)) for k in range(n)]
