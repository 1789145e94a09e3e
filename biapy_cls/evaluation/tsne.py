"""Exact t-SNE (van der Maaten and Hinton 2008) for the embedding chart, in numpy.

Why not scikit-learn's: importing `sklearn.manifold` costs ~1.5 s of CPU (it pulls in scipy.stats),
which was half of what the test step's explanations added to a 10-epoch digits run. At the sizes the
chart embeds (at most evaluation.embedding.MAX_TSNE points) the exact O(n^2) gradient costs about what
scikit-learn's Barnes-Hut one does. The optimisation follows scikit-learn's defaults (perplexity search
on squared distances, PCA initialisation scaled to a standard deviation of 1e-4, early exaggeration 12
for 250 iterations with momentum 0.5, then momentum 0.8, learning rate max(n / 48, 50), per-coordinate
gains), so the maps look as users know them. Deterministic: no random initialisation.
"""

from __future__ import annotations

import numpy as np

EXAGGERATION = 12.0
EXAGGERATION_ITERATIONS = 250
EPSILON = np.finfo(np.float64).eps


def _squared_distances(x: np.ndarray) -> np.ndarray:
    sq = (x * x).sum(1)
    d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d, 0.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def conditional_probabilities(x: np.ndarray, perplexity: float) -> np.ndarray:
    """Rows p(j | i) (n, n), each a Gaussian of the squared distances whose width is found by bisection
    so that the row's perplexity is `perplexity` (all rows at once)."""
    d = _squared_distances(x.astype(np.float64))
    n = len(d)
    target = np.log(perplexity)
    beta = np.ones(n)
    low, high = np.full(n, -np.inf), np.full(n, np.inf)
    off_diagonal = ~np.eye(n, dtype=bool)
    for _ in range(100):
        p = np.exp(-d * beta[:, None]) * off_diagonal
        total = np.maximum(p.sum(1), EPSILON)
        entropy = np.log(total) + beta * (d * p).sum(1) / total
        too_flat = entropy > target  # too many neighbours: narrower Gaussian, larger beta
        low = np.where(too_flat, beta, low)
        high = np.where(too_flat, high, beta)
        beta = np.where(np.isinf(high), beta * 2.0, np.where(np.isinf(low), beta / 2.0, (low + high) / 2.0))
        if np.abs(entropy - target).max() < 1e-5:
            break
    return p / total[:, None]


def joint_probabilities(x: np.ndarray, perplexity: float) -> np.ndarray:
    """Symmetric P (n, n) summing to 1, zero on the diagonal: the conditional rows averaged with their
    transposes."""
    conditional = conditional_probabilities(x, perplexity)
    joint = conditional + conditional.T
    return np.maximum(joint / joint.sum(), EPSILON) * ~np.eye(len(joint), dtype=bool)


def tsne_2d(features: np.ndarray, perplexity: float = 30.0, iterations: int = 350) -> np.ndarray:
    """(n, 2) t-SNE coordinates of `features` (n, n_features); `iterations` includes the 250 of early
    exaggeration."""
    x = features.astype(np.float64)
    n = len(x)
    p = joint_probabilities(x, perplexity)
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    y = centred @ vt[:2].T
    if y.shape[1] < 2:
        y = np.pad(y, ((0, 0), (0, 2 - y.shape[1])))
    # float32 from here: the n x n matrices of each iteration are the cost, and 7 digits are plenty for a map
    y = (y / max(np.std(y[:, 0]), EPSILON) * 1e-4).astype(np.float32)
    p = p.astype(np.float32)
    rate = np.float32(max(n / EXAGGERATION / 4.0, 50.0))
    update, gains = np.zeros_like(y), np.ones_like(y)
    off_diagonal = (~np.eye(n, dtype=bool)).astype(np.float32)
    for step in range(iterations):
        exaggerating = step < EXAGGERATION_ITERATIONS
        attraction = p * np.float32(EXAGGERATION) if exaggerating else p
        similarity = off_diagonal / (1.0 + _squared_distances(y))  # Student-t kernel, one degree of freedom
        q = np.maximum(similarity / similarity.sum(), np.float32(EPSILON))
        weights = (attraction - q) * similarity
        gradient = 4 * (weights.sum(1)[:, None] * y - weights @ y)
        turned = update * gradient < 0.0  # the step goes against the last one: larger gain
        gains = np.maximum(np.where(turned, gains + np.float32(0.2), gains * np.float32(0.8)), np.float32(0.01))
        update = np.float32(0.5 if exaggerating else 0.8) * update - rate * gains * gradient
        y = y + update
    return y.astype(np.float64)
