"""A BiaPy YAML with DATA.PREPROCESS, FILTER_SAMPLES and REPLICATE runs end to end on the digits."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

BIAPY_YAML = """\
PROBLEM:
    TYPE: CLASSIFICATION
    NDIM: 2D
DATA:
    PATCH_SIZE: (32, 32, 1)
    NORMALIZATION:
        TYPE: div
    TRAIN:
        PATH: {data}/train
        IN_MEMORY: True
        REPLICATE: 2
        FILTER_SAMPLES:
            ENABLE: True
            PROPS: [['mean']]
            VALUES: [[95]]
            SIGNS: [['gt']]
            NORM_BEFORE: False
    VAL:
        FROM_TRAIN: True
        SPLIT_TRAIN: 0.1
    TEST:
        IN_MEMORY: True
        LOAD_GT: True
        PATH: {data}/test
{preprocess}
MODEL:
    ARCHITECTURE: simple_cnn
TRAIN:
    ENABLE: {train}
    OPTIMIZER: ADAMW
    LR: 3.E-3
    BATCH_SIZE: 32
    EPOCHS: 2
    PATIENCE: -1
TEST:
    ENABLE: True
"""
PREPROCESS = """\
    PREPROCESS:
        TRAIN: True
        VAL: True
        TEST: True
        GAUSSIAN_BLUR:
            ENABLE: True
            SIGMA: 1
            MODE: nearest
        CLAHE:
            ENABLE: True
            CLIP_LIMIT: 0.01
"""


@pytest.mark.slow
def test_preprocessed_filtered_replicated_training_on_digits(tmp_path, digits_dir, run_biapy):
    config = tmp_path / "prep.yaml"
    config.write_text(BIAPY_YAML.format(data=digits_dir, preprocess=PREPROCESS, train=True))
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "prep")
    assert code == 0, err
    run = tmp_path / "prep" / "results" / "prep_1"
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert metrics["accuracy"] >= 0.85

    bright = sorted(p.relative_to(digits_dir / "train").as_posix() for p in (digits_dir / "train").rglob("*.png")
                    if np.asarray(Image.open(p)).mean() > 95)
    removed = pd.read_csv(run / "filtered_samples.csv")
    assert sorted(removed["filename"]) == bright and set(removed["condition"]) == {"mean > 95"}
    n_train = sum(1 for _ in (digits_dir / "train").rglob("*.png")) - len(bright)
    n_fit = n_train - sum(max(1, round(c * 0.1)) for c in
                          pd.Series([p.parent.name for p in (digits_dir / "train").rglob("*.png")
                                     if p.relative_to(digits_dir / "train").as_posix() not in bright]).value_counts())
    log_text = (tmp_path / "prep" / "logs" / "prep_1_log.txt").read_text()
    assert f"{math.ceil(2 * n_fit / 32)} batches of 32 per epoch, each image 2 times" in log_text
    assert "Preprocessing of the train, val, test images: GAUSSIAN_BLUR" in log_text and "CLAHE" in log_text
    assert f"DATA.TRAIN.FILTER_SAMPLES removed {len(bright)} of" in log_text
    report = (run / "report.html").read_text()
    assert "Data preparation" in report and "GAUSSIAN_BLUR" in report

    # Test only, from the checkpoint, with a YAML that says nothing about preprocessing: the same predictions
    plain = tmp_path / "plain.yaml"
    plain.write_text(BIAPY_YAML.format(data=digits_dir, preprocess="", train=False))
    checkpoint = tmp_path / "prep" / "checkpoints" / "prep_1-checkpoint-best.pth"
    code, _, err = run_biapy("--config", plain, "--result_dir", tmp_path, "--name", "again",
                             "PATHS.CHECKPOINT_FILE", checkpoint, "DATA.TRAIN.FILTER_SAMPLES.ENABLE", "False")
    assert code == 0, err
    first = pd.read_csv(run / "predictions.csv")
    again = pd.read_csv(tmp_path / "again" / "results" / "again_1" / "predictions.csv")
    assert again["class"].tolist() == first["class"].tolist()
    assert np.allclose(again.filter(like="prob_").to_numpy(), first.filter(like="prob_").to_numpy(), atol=1e-5)
