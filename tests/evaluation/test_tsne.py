"""Our exact t-SNE against scikit-learn's on real digits: the maps must be as faithful."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.manifold import TSNE, trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from biapy_cls.evaluation.tsne import conditional_probabilities, joint_probabilities, tsne_2d


def test_each_row_reaches_the_perplexity_and_p_is_a_symmetric_distribution():
    x = np.random.default_rng(0).normal(size=(60, 5)) * np.array([1, 2, 5, 10, 0.1])
    rows = conditional_probabilities(x, 10.0)
    entropy = -(rows * np.log(np.where(rows > 0, rows, 1))).sum(1)
    assert np.allclose(np.exp(entropy), 10.0, rtol=1e-3) and np.allclose(rows.sum(1), 1.0)
    assert np.all(np.diag(rows) == 0)
    p = joint_probabilities(x, 10.0)
    assert np.allclose(p, p.T) and np.isclose(p.sum(), 1.0) and np.all(np.diag(p) == 0)


def test_the_map_is_as_faithful_as_scikit_learns_and_deterministic():
    x, y = load_digits(return_X_y=True)
    x, y = x[:400], y[:400]
    ours = tsne_2d(x, 30.0, 350)
    reference = TSNE(2, perplexity=30.0, init="pca", random_state=0, max_iter=350).fit_transform(x)
    trust_ours, trust_ref = trustworthiness(x, ours, n_neighbors=10), trustworthiness(x, reference, n_neighbors=10)
    assert trust_ours > 0.98 and trust_ours > trust_ref - 0.005
    knn = KNeighborsClassifier(5)
    assert cross_val_score(knn, ours, y, cv=5).mean() > cross_val_score(knn, reference, y, cv=5).mean() - 0.02
    assert np.array_equal(ours, tsne_2d(x, 30.0, 350))
