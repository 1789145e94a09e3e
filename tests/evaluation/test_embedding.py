"""The feature embedding: test and validation features projected together, the method named in the chart."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from biapy_cls.evaluation import embedding
from biapy_cls.evaluation.embedding import FeatureSet, features_and_predictions, nonlinear_2d, plot_embedding
from biapy_cls.models import ModelSpec, build_model


def clusters(n: int, rng: np.random.Generator, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(3), n // 3)
    return rng.normal(size=(len(labels), 6)) + 4 * np.eye(3, 6)[labels] + shift, labels


def test_features_and_predictions_come_from_one_pass_in_image_order():
    torch.manual_seed(0)
    model = build_model(ModelSpec("simple_cnn", "2D", 1, 3, (16, 16))).eval()
    x = torch.randn(10, 1, 16, 16)
    features, predicted = features_and_predictions(model, model.head, x.split(4))
    with torch.no_grad():
        assert np.array_equal(predicted, model(x).argmax(1).numpy())
        expected = model.head(torch.from_numpy(features)).argmax(1).numpy()
    assert features.shape == (10, model.head.in_features) and np.array_equal(expected, predicted)


def test_without_umap_learn_the_chart_says_t_sne_and_why(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap raises ImportError, as when not installed
    rng = np.random.default_rng(0)
    test_x, test_y = clusters(30, rng)
    val_x, val_y = clusters(15, rng)
    note = plot_embedding([FeatureSet("test", test_x, test_y, test_y), FeatureSet("validation", val_x, val_y, val_y)],
                          ["a", "b", "c"], tmp_path / "e.png", "Embedding")
    assert note.startswith("PCA and t-SNE (umap-learn not installed) of test and validation projected together")
    assert note.endswith("6 features; colour: true class, misclassified images ringed in black")
    assert (tmp_path / "e.png").stat().st_size > 10_000


def test_umap_is_used_when_installed(monkeypatch):
    """A stand-in `umap` module records the call: the real one is an optional extra (pip install biapy-cls[umap])."""
    calls = []

    class UMAP:
        def __init__(self, **kwargs):
            calls.append(kwargs)

        def fit_transform(self, x):
            return x[:, :2] * 2

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=UMAP))
    features = np.random.default_rng(0).normal(size=(50, 4))
    name, xy = nonlinear_2d(features, seed=3)
    assert name == "UMAP" and np.array_equal(xy, features[:, :2] * 2)
    assert calls[0]["random_state"] == 3 and calls[0]["n_components"] == 2


def test_large_sets_get_pca_only_and_the_chart_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)
    monkeypatch.setattr(embedding, "MAX_TSNE", 20)
    x, y = clusters(30, np.random.default_rng(1))
    name, xy = nonlinear_2d(x)
    assert xy is None and name == "no UMAP or t-SNE for 30 images (t-SNE up to 20; install umap-learn for UMAP)"
    note = plot_embedding([FeatureSet("test", x, y, None)], ["a", "b", "c"], tmp_path / "e.png", "E")
    assert note.startswith("PCA (no UMAP or t-SNE for 30") and note.endswith("colour: predicted class (no labels)")


@pytest.mark.slow  # numba compiles UMAP's functions on first use: ~15 s
def test_real_umap_when_installed():
    if getattr(pytest.importorskip("umap"), "UMAP", None) is None:
        pytest.skip("umap-learn is not installed (only a folder an uninstall left behind)")
    x, _ = clusters(60, np.random.default_rng(2))
    name, xy = nonlinear_2d(x)
    assert name == "UMAP" and xy.shape == (60, 2) and np.isfinite(xy).all()
