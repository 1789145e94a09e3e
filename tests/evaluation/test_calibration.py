"""Calibration: ECE and Brier against hand computations, temperature scaling on over-confident models."""

from __future__ import annotations

import numpy as np
import pytest

from biapy_cls.evaluation.calibration import (
    apply_temperature,
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
)


def two_class(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [c, 1 - c] (class 0 predicted) and labels that make the prediction right or wrong."""
    probs = np.stack([confidence, 1 - confidence], axis=1)
    return probs, np.where(correct, 0, 1)


def test_perfectly_calibrated_probabilities_have_an_ece_near_zero():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 50_000)
    probs, labels = two_class(confidence, rng.uniform(size=confidence.size) < confidence)
    assert expected_calibration_error(probs, labels) < 0.01


def test_over_confident_probabilities_match_a_hand_computation():
    # 4 images at 95% of which 1 is right (gap 0.70), 2 images at 55% both right (gap 0.45)
    probs, labels = two_class(np.array([0.95] * 4 + [0.55] * 2), np.array([1, 0, 0, 0, 1, 1], dtype=bool))
    assert expected_calibration_error(probs, labels) == pytest.approx((4 * 0.70 + 2 * 0.45) / 6)
    # Brier: right at 95% 2 x 0.05^2; wrong at 95% 2 x 0.95^2; right at 55% 2 x 0.45^2
    assert brier_score(probs, labels) == pytest.approx((0.005 + 3 * 1.805 + 2 * 0.405) / 6)
    bins = reliability_bins(probs, labels)
    assert bins["counts"].sum() == 6 and bins["counts"][14] == 4 and bins["counts"][8] == 2


def test_temperature_scaling_lowers_the_validation_nll_of_an_over_confident_model():
    rng = np.random.default_rng(1)
    n, k = 4000, 5
    logits = 1.5 * rng.normal(size=(n, k))
    true = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    # labels drawn from softmax(logits): a model giving these logits is calibrated ...
    labels = (rng.uniform(size=(n, 1)) > true.cumsum(1)).sum(1)
    sharp = np.exp(4 * logits)  # ... and one giving 4x these logits is over-confident: T = 4 undoes it
    probs = sharp / sharp.sum(1, keepdims=True)
    t = fit_temperature(probs, labels)
    calibrated = apply_temperature(probs, t)
    assert t == pytest.approx(4.0, rel=0.1)
    assert nll(calibrated, labels) < nll(probs, labels) - 0.1
    assert expected_calibration_error(calibrated, labels) < expected_calibration_error(probs, labels) / 3
    assert (calibrated.argmax(1) == probs.argmax(1)).all()  # the predicted class never changes
    metrics = calibration_metrics(labels, calibrated, probs, t)
    assert metrics["calibration"]["expected_calibration_error_before"] > metrics["expected_calibration_error"]


def test_a_validation_set_without_errors_gives_the_bounded_temperature():
    from biapy_cls.evaluation.calibration import T_MIN

    probs = np.array([[0.7, 0.3], [0.4, 0.6], [0.8, 0.2]])
    assert fit_temperature(probs, np.array([0, 1, 0])) == T_MIN  # unbounded, the fit would run to T = 0


def test_temperature_one_leaves_probabilities_unchanged():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    assert np.allclose(apply_temperature(probs, 1.0), probs, atol=1e-6)
