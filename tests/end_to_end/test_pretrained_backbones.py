"""MODEL.SOURCE torchvision end to end on volumes: the 3D video network r3d_18 runs on the 3D digits.
The 2D resnet18's accuracy floor (issue 15: >= 0.95 from a random start) is in test_model_floors.py, under
the settings bench/model_ablation.py measured it with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import digits_config, load_script, write_yaml

pytestmark = pytest.mark.slow


def test_metrics(result_dir: Path, job: str) -> dict:
    return json.loads((result_dir / job / "results" / f"{job}_1" / "test_metrics.json").read_text())


test_metrics.__test__ = False  # a helper, not a test


def test_torchvision_r3d_18_runs_on_volumes(tmp_path_factory, tmp_path, run_biapy):
    data = tmp_path_factory.mktemp("digits3d_tiny")
    assert load_script("make_example_data").main([str(data), "--3d", "--limit", "5", "--depth", "8"]) == 0
    cfg = digits_config(data, PROBLEM={"TYPE": "CLASSIFICATION", "NDIM": "3D"},
                        TRAIN={"ENABLE": True, "EPOCHS": 1, "BATCH_SIZE": 8, "LR": 1e-3, "PATIENCE": -1})
    cfg["DATA"]["PATCH_SIZE"] = "(8, 32, 32, 1)"
    cfg["MODEL"] = {"SOURCE": "torchvision", "TORCHVISION_MODEL_NAME": "r3d_18", "TORCHVISION_PRETRAINED": False}
    code, out, err = run_biapy("--config", write_yaml(tmp_path / "c.yaml", cfg), "--result_dir", tmp_path,
                               "--name", "r3d")
    assert code == 0, err
    assert "Model: torchvision r3d_18" in out
    metrics = test_metrics(tmp_path, "r3d")
    assert len(metrics["confusion_matrix"]["matrix"]) == 10
