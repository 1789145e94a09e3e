"""A digits run writes saliency maps, features, calibration and ROC/PR outputs that agree with its predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import digits_config, write_yaml

pytestmark = pytest.mark.slow


def test_digits_run_explains_calibrates_and_embeds(tmp_path, digits_dir, run_biapy):
    cfg = digits_config(digits_dir, TRAIN={"ENABLE": True, "EPOCHS": 4, "BATCH_SIZE": 32, "LR": 3e-3, "PATIENCE": -1},
                        TEST={"ENABLE": True, "CALIBRATE": True, "EXPLAIN": {"N_PER_CLASS": 1}})
    code, out, err = run_biapy("--config", write_yaml(tmp_path / "d.yaml", cfg), "--result_dir", tmp_path / "out",
                               "--name", "job", "--run_id", 1)
    assert code == 0, err
    run = tmp_path / "out" / "job" / "results" / "job_1"
    predictions = pd.read_csv(run / "predictions.csv")
    probs = predictions[[c for c in predictions.columns if c.startswith("prob_")]].to_numpy()
    truth = predictions["true_class"].to_numpy()
    assert (probs.argmax(1) == truth).mean() >= 0.9  # the model really learnt the digits

    metrics = json.loads((run / "test_metrics.json").read_text())
    assert 0 <= metrics["expected_calibration_error"] < 0.1 and 0 <= metrics["brier_score"] < 0.3
    calibration = metrics["calibration"]
    assert "expected_calibration_error_before" in calibration and calibration["temperature"] > 0
    table = pd.read_csv(run / "test_metrics.csv")
    assert table.query("metric == 'brier_score'")["value"].iloc[0] == pytest.approx(metrics["brier_score"])

    # The temperature is stored in the checkpoint, and the features are the rows of predictions.csv:
    # the model's own head applied to them, then the temperature, gives the written probabilities.
    state = torch.load(tmp_path / "out" / "job" / "checkpoints" / "job_1-checkpoint-best.pth", weights_only=True)
    assert state["temperature"] == pytest.approx(calibration["temperature"])
    features = np.load(run / "test_features.npy")
    assert features.shape == (len(predictions), 64)
    logits = features @ state["model_state"]["head.weight"].numpy().T + state["model_state"]["head.bias"].numpy()
    logits = logits / state["temperature"]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    assert np.allclose(expected / expected.sum(1, keepdims=True), probs, atol=1e-4)

    # The validation features: rows named by val_features.csv, whose predicted classes the head gives.
    val_features, val_index = np.load(run / "val_features.npy"), pd.read_csv(run / "val_features.csv")
    assert len(val_index) > 0 and val_features.shape == (len(val_index), 64)
    val_logits = val_features @ state["model_state"]["head.weight"].numpy().T
    assert np.array_equal((val_logits + state["model_state"]["head.bias"].numpy()).argmax(1), val_index["class"])
    assert (val_index["class"] == val_index["true_class"]).mean() >= 0.8

    n_errors = int((probs.argmax(1) != truth).sum())
    maps = sorted(p.name for p in (run / "explain").glob("*.png"))
    assert len([m for m in maps if m.startswith("correct_")]) == 10
    assert len([m for m in maps if m.startswith("error_")]) == min(12, n_errors)
    for chart in ("reliability", "roc_pr", "embedding"):
        assert (run / "charts" / f"job_1_{chart}.png").is_file()
    page = (run / "report.html").read_text()
    for title in ("Calibration", "ROC and precision-recall curves", "Feature embedding", "Saliency maps"):
        assert f">{title}<" in page
    assert "Explanations in" in out

    # A test-only run on the same images without labels, from that checkpoint: what applies without truth.
    cfg["TRAIN"]["ENABLE"] = False
    cfg["DATA"]["TEST"]["LOAD_GT"] = False
    cfg["PATHS"] = {"CHECKPOINT_FILE": str(tmp_path / "out" / "job" / "checkpoints" / "job_1-checkpoint-best.pth")}
    code, out, err = run_biapy("--config", write_yaml(tmp_path / "u.yaml", cfg), "--result_dir", tmp_path / "out",
                               "--name", "unlabelled", "--run_id", 1)
    assert code == 0, err
    run = tmp_path / "out" / "unlabelled" / "results" / "unlabelled_1"
    unlabelled = pd.read_csv(run / "predictions.csv")
    columns = [c for c in unlabelled.columns if c.startswith("prob_")]
    assert np.allclose(unlabelled[columns].to_numpy(), probs, atol=1e-5)
    kinds = {p.name.split("_")[0] for p in (run / "explain").glob("*.png")}
    assert kinds == {"confident", "uncertain"}
    assert (run / "test_features.npy").is_file() and not (run / "test_metrics.json").exists()
    page = (run / "report.html").read_text()
    assert ">Feature embedding<" in page and ">Calibration<" not in page and ">Least confident<" in page
    assert not (run / "val_features.npy").exists()  # a test-only run has no validation set
