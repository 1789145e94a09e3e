"""The whole path on real digits images: train, test, and every file a user looks at."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, digits_config, write_yaml

pytestmark = pytest.mark.slow


def test_simple_cnn_learns_digits_and_writes_the_output_tree(tmp_path, digits_dir, run_biapy):
    cfg = digits_config(digits_dir, TRAIN={"ENABLE": True, "EPOCHS": 4, "BATCH_SIZE": 32, "LR": 3e-3, "PATIENCE": -1})
    config = write_yaml(tmp_path / "digits.yaml", cfg)
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path / "out", "--name", "job", "--run_id", 1)
    assert code == 0, err
    job = tmp_path / "out" / "job"
    run = job / "results" / "job_1"
    for path in [job / "config_files" / "digits_1.yaml", job / "checkpoints" / "job_1-checkpoint-best.pth",
                 job / "checkpoints" / "job_1-checkpoint-last.pth", job / "logs" / "job_1_log.txt",
                 job / "logs" / "job_1_training_log.json", run / "predictions.csv", run / "test_metrics.json",
                 run / "test_metrics.csv", run / "charts" / "job_1_loss.png", run / "charts" / "job_1_accuracy.png",
                 run / "charts" / "job_1_confusion_matrix.png"]:
        assert path.is_file(), f"missing {path}"
    assert any((run / "tensorboard").iterdir())

    predictions = pd.read_csv(run / "predictions.csv")
    n_test = sum(1 for _ in (digits_dir / "test").rglob("*.png"))
    assert len(predictions) == n_test == predictions["filename"].nunique()
    assert list(predictions.columns[:3]) == ["filename", "class", "class_name"]
    probs = predictions[[c for c in predictions.columns if c.startswith("prob_")]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert (predictions["class"] == probs.argmax(axis=1)).all()
    # the class of each file is the name of its folder
    truth = predictions["filename"].str.split("/").str[0]
    accuracy = float((truth == predictions["class_name"]).mean())
    assert accuracy >= 0.90

    metrics = json.loads((run / "test_metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(accuracy)
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert matrix.sum() == n_test and np.trace(matrix) == round(accuracy * n_test)
    assert set(metrics["per_class"]) == {p.name for p in (digits_dir / "train").iterdir()}
    table = pd.read_csv(run / "test_metrics.csv")
    assert table.query("metric == 'accuracy'")["value"].iloc[0] == pytest.approx(accuracy)
    assert "Test accuracy" in out and "9_nine" in out

    lines = (job / "logs" / "job_1_training_log.json").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    log_text = (job / "logs" / "job_1_log.txt").read_text()
    assert "Epoch 4/4" in log_text and "Test accuracy" in log_text


def test_biapy_template_with_simple_cnn_runs_unchanged(tmp_path, small_digits_dir, run_biapy):
    """BiaPy's own 2D template (classification_2d.yaml of BiaPy 3.x) with only paths and sizes set."""
    text = f"""\
SYSTEM:
    NUM_CPUS: -1
    NUM_WORKERS: 5

PROBLEM:
    TYPE: CLASSIFICATION
    NDIM: 2D

DATA:
    PATCH_SIZE: (32, 32, 1)
    CHECK_GENERATORS: False
    TRAIN:
        PATH: {small_digits_dir / 'train'}
        IN_MEMORY: True
    VAL:
        FROM_TRAIN: True
        SPLIT_TRAIN: 0.1
    TEST:
        IN_MEMORY: True
        LOAD_GT: True
        PATH: {small_digits_dir / 'test'}

AUGMENTOR:
    ENABLE: True
    RANDOM_ROT: True
    VFLIP: True
    HFLIP: True

MODEL:
    ARCHITECTURE: simple_cnn
    N_CLASSES: 10
    LOAD_CHECKPOINT: False

TRAIN:
    ENABLE: True
    OPTIMIZER: ADAMW
    LR: 1.E-4
    BATCH_SIZE: 6
    EPOCHS: 2
    PATIENCE: 50

TEST:
    ENABLE: True
"""
    config = tmp_path / "2d_classification.yaml"
    config.write_text(text)
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "biapy_job", "--run_id", 3)
    assert code == 0, err
    run = tmp_path / "biapy_job" / "results" / "biapy_job_3"
    assert (run / "predictions.csv").is_file() and (run / "test_metrics.json").is_file()
    assert "MODEL.N_CLASSES" in out  # the rename notice


def test_test_only_run_from_the_checkpoint_predicts_the_same(tmp_path, small_digits_dir, run_biapy):
    config = write_yaml(tmp_path / "c.yaml", digits_config(small_digits_dir))
    assert run_biapy("--config", config, "--result_dir", tmp_path, "--name", "j")[0] == 0
    trained = pd.read_csv(tmp_path / "j" / "results" / "j_1" / "predictions.csv")
    checkpoint = tmp_path / "j" / "checkpoints" / "j_1-checkpoint-best.pth"
    code, _, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "j2", "TRAIN.ENABLE", "False",
                             "PATHS.CHECKPOINT_FILE", checkpoint, "DATA.TEST.LOAD_GT", "False")
    assert code == 0, err
    tested = pd.read_csv(tmp_path / "j2" / "results" / "j2_1" / "predictions.csv")
    assert tested["filename"].tolist() == trained["filename"].tolist()
    assert tested["class"].tolist() == trained["class"].tolist()


def test_make_demo_template_is_valid():
    from biapy_cls.configure import load_config

    cfg, _ = load_config(ROOT / "templates" / "classification" / "2d_classification_digits.yaml")
    assert cfg.DATA.TRAIN.PATH == "data/digits/train"
