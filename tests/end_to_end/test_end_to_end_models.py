"""Architectures from the CLI: 3D volumes end to end and fine-tuning a checkpoint on another class count
(the accuracy floors of every default-size model: tests/end_to_end/test_model_floors.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import digits_config, load_script, write_yaml

pytestmark = pytest.mark.slow


def accuracy(result_dir: Path, job: str) -> float:
    return json.loads((result_dir / job / "results" / f"{job}_1" / "test_metrics.json").read_text())["accuracy"]


@pytest.fixture(scope="module")
def digits3d_dir(tmp_path_factory) -> Path:
    """30 real digits per class extruded into 16x32x32 tif volumes (24 train, 6 test per class)."""
    out = tmp_path_factory.mktemp("digits3d")
    assert load_script("make_example_data").main([str(out), "--3d", "--limit", "30"]) == 0
    return out


def test_make_example_data_writes_volumes(digits3d_dir):
    import tifffile

    files = sorted((digits3d_dir / "train" / "3_three").glob("*.tif"))
    assert len(files) == 24
    volume = tifffile.imread(files[0])
    assert volume.shape == (16, 32, 32) and volume.dtype.name == "uint8"
    assert not (volume[0] == volume[1]).all()  # slices are jittered, not copies


def test_3d_simple_cnn_learns_volumes(tmp_path, digits3d_dir, run_biapy):
    cfg = digits_config(digits3d_dir, PROBLEM={"TYPE": "CLASSIFICATION", "NDIM": "3D"},
                        TRAIN={"ENABLE": True, "EPOCHS": 8, "BATCH_SIZE": 16, "LR": 3e-3, "PATIENCE": -1})
    cfg["DATA"]["PATCH_SIZE"] = "(16, 32, 32, 1)"
    code, out, err = run_biapy(
        "--config", write_yaml(tmp_path / "c.yaml", cfg), "--result_dir", tmp_path, "--name", "v3d"
    )
    assert code == 0, err
    assert "3D (16, 32, 32) with 1 channel" in out
    assert accuracy(tmp_path, "v3d") >= 0.6  # 10 classes: chance is 0.1


def test_fine_tune_with_another_class_count(tmp_path, small_digits_dir, run_biapy):
    first = digits_config(small_digits_dir, TRAIN={"ENABLE": True, "EPOCHS": 1, "BATCH_SIZE": 32, "LR": 3e-3,
                                                   "PATIENCE": -1}, TEST={"ENABLE": False})
    code, _, err = run_biapy(
        "--config", write_yaml(tmp_path / "a.yaml", first), "--result_dir", tmp_path, "--name", "ten"
    )
    assert code == 0, err
    checkpoint = tmp_path / "ten" / "checkpoints" / "ten_1-checkpoint-best.pth"
    three = tmp_path / "three"
    for split in ("train", "test"):
        for name in ("0_zero", "1_one", "2_two"):
            (three / split).mkdir(parents=True, exist_ok=True)
            (three / split / name).symlink_to(small_digits_dir / split / name)
    second = digits_config(three, TRAIN={"ENABLE": True, "EPOCHS": 2, "BATCH_SIZE": 16, "LR": 3e-3, "PATIENCE": -1})
    second["MODEL"].update({"LOAD_CHECKPOINT": True})
    second["PATHS"] = {"CHECKPOINT_FILE": str(checkpoint)}
    config = write_yaml(tmp_path / "b.yaml", second)
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "three")
    assert code == 2 and "SKIP_UNMATCHED_LAYERS" in err + out

    code, out, err = run_biapy(
        "--config",
        config,
        "--result_dir",
        tmp_path,
        "--name",
        "three",
        "--overwrite",
        "MODEL.SKIP_UNMATCHED_LAYERS",
        "True",
        "MODEL.FREEZE_LAYERS_MATCHING",
        "['^features\\.0\\.']",
    )
    assert code == 0, err
    assert "Fine-tuning from" in out and "head.weight" in out and "Frozen" in out
    metrics = json.loads((tmp_path / "three" / "results" / "three_1" / "test_metrics.json").read_text())
    assert set(metrics["per_class"]) == {"0_zero", "1_one", "2_two"}
