"""Are the probabilities honest? Expected calibration error, Brier score, the reliability diagram and
temperature scaling (Guo et al. 2017, "On calibration of modern neural networks").

Temperature scaling divides the logits by one number T fitted on the validation set; the predicted class
never changes, only how sure the model says it is. It is applied to probabilities here: softmax(log p / T)
equals softmax(logits / T) because log p differs from the logits only by a constant per image.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("biapy_cls")

N_BINS = 15  # the usual choice in the calibration literature (Guo et al. 2017)
# Bounds of the temperature. A validation set without a single error pushes the fit towards T = 0 (every
# probability 1): on the digits T reached 0.05 and a test error became 90% sure. Models are rarely more
# than 4x under- or 10x over-confident, so a fit at a bound means the validation set cannot tell.
T_MIN, T_MAX = 0.25, 10.0
EPS = 1e-12


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin (lo, hi]: image count, mean confidence, accuracy (NaN when empty)."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin k holds confidences in (edges[k], edges[k+1]]; a confidence of exactly 0 cannot occur (>= 1/classes)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / counts
    return {"edges": edges, "counts": counts, "confidence": mean_conf, "accuracy": accuracy}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """sum over bins of (share of images in the bin) x |accuracy - mean confidence|."""
    bins = reliability_bins(probs, labels, n_bins)
    used = bins["counts"] > 0
    gaps = np.abs(bins["accuracy"][used] - bins["confidence"][used])
    return float((bins["counts"][used] * gaps).sum() / max(len(labels), 1))


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over images of the squared distance between the probability vector and the one-hot truth
    (the multi-class Brier score: 0 is perfect, 2 the worst)."""
    onehot = np.zeros_like(probs, dtype=np.float64)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], EPS, 1.0)).mean())


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 softens over-confident probabilities, T < 1 sharpens them."""
    logits = np.log(np.clip(probs.astype(np.float64), EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the NLL of `labels` (L-BFGS on log T, so T stays positive)."""
    logits = torch.log(torch.as_tensor(probs, dtype=torch.float64).clamp_min(EPS))
    target = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), target)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.clip(log_t.exp().item(), T_MIN, T_MAX))


def calibration_metrics(labels: np.ndarray, probs: np.ndarray, raw_probs: np.ndarray,
                        temperature: float | None) -> dict:
    """The test_metrics.json entries: ECE and Brier of the written probabilities, and with temperature
    scaling the same before it."""
    out: dict = {"expected_calibration_error": expected_calibration_error(probs, labels),
                 "brier_score": brier_score(probs, labels)}
    if temperature is not None:
        out["calibration"] = {
            "temperature": temperature,
            "expected_calibration_error_before": expected_calibration_error(raw_probs, labels),
            "brier_score_before": brier_score(raw_probs, labels),
            "nll_before": nll(raw_probs, labels),
            "nll_after": nll(probs, labels),
        }
    return out


def plot_reliability(probs: np.ndarray, labels: np.ndarray, path: Path, title: str,
                     raw_probs: np.ndarray | None = None) -> None:
    """Accuracy against confidence per bin (bars), the diagonal of perfect calibration, and the share of
    images per bin below; with temperature scaling the uncalibrated bins as a line too."""
    from matplotlib.figure import Figure

    bins = reliability_bins(probs, labels)
    edges, width = bins["edges"], 1.0 / N_BINS
    fig = Figure(figsize=(5.2, 5.6), dpi=100, layout="tight")
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    top.bar(edges[:-1], np.nan_to_num(bins["accuracy"]), width=width, align="edge", color="#3b82f6",
            edgecolor="#1e3a8a", label=f"accuracy (ECE {expected_calibration_error(probs, labels):.3f})")
    top.plot([0, 1], [0, 1], "--", color="#667085", label="perfect calibration")
    if raw_probs is not None:
        raw = reliability_bins(raw_probs, labels)
        used = raw["counts"] > 0
        top.plot(raw["confidence"][used], raw["accuracy"][used], "o-", color="#d92d20", markersize=3,
                 label=f"before temperature scaling (ECE {expected_calibration_error(raw_probs, labels):.3f})")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1.02)  # a bin at accuracy 1 keeps its marker whole
    fig.suptitle(title, fontsize=10)
    # above the axes: inside, the legend hid the uncalibrated line where it rises steeply from low confidence
    top.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False)
    top.grid(alpha=0.3)
    bottom.bar(edges[:-1], bins["counts"] / max(len(labels), 1), width=width, align="edge", color="#98a2b3")
    bottom.set_xlabel("confidence (highest class probability)")
    bottom.set_ylabel("share")
    bottom.set_xlim(0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def store_temperature(checkpoints: list[Path], temperature: float) -> None:
    """Add the fitted temperature to each existing checkpoint, so a test-only run applies it too."""
    from biapy_cls.engine.checkpoint import load_checkpoint, save_checkpoint

    for path in checkpoints:
        if path.exists():
            state = load_checkpoint(path)
            state.pop("format", None), state.pop("version", None)  # written again by save_checkpoint
            save_checkpoint(path, {**state, "temperature": float(temperature)})
