"""Training from the command line: determinism, exact resume, logs, charts and TensorBoard."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import digits_config, interrupt_at_epoch, write_yaml

# Adam, a per-step schedule, augmentation and dropout: every state that resuming must restore.
TRAIN = {"EPOCHS": 4, "BATCH_SIZE": 32, "LR": 3e-3, "PATIENCE": -1, "OPTIMIZER": "ADAMW",
         "LR_SCHEDULER": {"NAME": "warmupcosine", "WARMUP_COSINE_DECAY_EPOCHS": 1, "MIN_LR": 1e-5}}


def training_config(tmp_path, data, **train):
    cfg = digits_config(data, TRAIN={**TRAIN, **train},
                        AUGMENTOR={"ENABLE": True, "HFLIP": True, "VFLIP": True, "RANDOM_ROT": True},
                        MODEL={"ARCHITECTURE": "simple_cnn", "SAVE_CKPT_FREQ": 2})
    cfg["DATA"]["PATCH_SIZE"] = "(16, 16, 1)"  # a quarter of the computation: this test runs 3 trainings
    return write_yaml(tmp_path / "train.yaml", cfg)


def predictions(tmp_path, name: str) -> bytes:
    return (tmp_path / name / "results" / f"{name}_1" / "predictions.csv").read_bytes()


@pytest.mark.slow
def test_seeded_runs_are_identical(tmp_path, small_digits_dir, run_biapy):
    config = training_config(tmp_path, small_digits_dir, EPOCHS=2)
    for name in ("a", "b"):
        code, _, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", name)
        assert code == 0, err
    assert predictions(tmp_path, "a") == predictions(tmp_path, "b")
    lines = (tmp_path / "a" / "logs" / "a_1_training_log.json").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["train_loss"] != json.loads(lines[1])["train_loss"]


@pytest.mark.slow
def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path, small_digits_dir, run_biapy, monkeypatch):
    config = training_config(tmp_path, small_digits_dir)
    code, _, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "a")
    assert code == 0, err

    # Ctrl-C during the third epoch of four, then --resume.
    resume_normally = interrupt_at_epoch(monkeypatch, 2)
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "c")
    assert code == 130 and "--resume" in err + out
    job = tmp_path / "c"
    assert not (job / "results" / "c_1" / "predictions.csv").exists()
    assert torch.load(job / "checkpoints" / "c_1-checkpoint-last.pth", weights_only=True)["training"]["epoch"] == 1
    resume_normally()
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "c", "--resume")
    assert code == 0, err
    assert "Resuming after epoch 2 of 4" in out
    assert predictions(tmp_path, "c") == predictions(tmp_path, "a")

    # The resumed run's log holds each epoch once, as the uninterrupted run's does (but for the timings).
    def epochs(name):
        lines = (tmp_path / name / "logs" / f"{name}_1_training_log.json").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]

    assert epochs("c") == epochs("a")
    assert [row["epoch"] for row in epochs("a")] == [1, 2, 3, 4]
    # MODEL.SAVE_CKPT_FREQ 2 keeps the checkpoints of epochs 2 and 4 besides best and last
    assert sorted(p.name for p in (job / "checkpoints").iterdir()) == [
        "c_1-checkpoint-2.pth", "c_1-checkpoint-4.pth", "c_1-checkpoint-best.pth", "c_1-checkpoint-last.pth"]

    # A finished run is neither resumed nor overwritten without --overwrite.
    code, _, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "c", "--resume")
    assert code == 2 and "already finished" in err and "--overwrite" in err


@pytest.mark.slow
def test_one_epoch_run_writes_logs_charts_and_tensorboard(tmp_path, small_digits_dir, run_biapy):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = write_yaml(tmp_path / "c.yaml", digits_config(
        small_digits_dir, TRAIN={"EPOCHS": 1, "BATCH_SIZE": 32, "PATIENCE": -1, "CHECKPOINT_MONITOR": "val_f1",
                                 "METRICS": ["accuracy", "top-5-accuracy"], "GRADIENT_CLIP_NORM": 1.0,
                                 "ACCUM_ITER": 2},
        LOSS={"CLASS_REBALANCE": "auto", "LABEL_SMOOTHING": 0.1}, LOG={"CHART_CREATION_FREQ": 5}))
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "j")
    assert code == 0, err
    job, run = tmp_path / "j", tmp_path / "j" / "results" / "j_1"
    row, = [json.loads(line) for line in (job / "logs" / "j_1_training_log.json").read_text().splitlines()]
    assert set(row) == {"epoch", "train_loss", "train_accuracy", "train_top5_accuracy", "val_loss", "val_accuracy",
                        "val_top5_accuracy", "val_f1", "lr", "seconds"}
    assert row["epoch"] == 1 and 0 <= row["val_accuracy"] <= row["val_top5_accuracy"] <= 1
    log_text = (job / "logs" / "j_1_log.txt").read_text()
    assert "Loss class weights" in log_text and "early stopping on val_f1" in log_text and "Epoch 1/1" in log_text
    # charts after one epoch, although LOG.CHART_CREATION_FREQ is 5: they are always drawn at the end
    charts = sorted(p.name for p in (run / "charts").iterdir())
    # ... next to the test's charts (the confusion matrix, and evaluation/insights.py's calibration, ROC/PR, embedding)
    assert charts == ["j_1_accuracy.png", "j_1_confusion_matrix.png", "j_1_embedding.png", "j_1_f1.png", "j_1_loss.png",
                      "j_1_lr.png", "j_1_reliability.png", "j_1_roc_pr.png", "j_1_top5_accuracy.png"]
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"loss/train_loss", "loss/val_loss", "accuracy/val_accuracy", "lr/lr"} <= set(tags)
    [scalar] = events.Scalars("loss/val_loss")
    assert scalar.step == 1 and scalar.value == pytest.approx(row["val_loss"], rel=1e-5)


def test_reduceonplateau_needs_a_validation_set(tmp_path, small_digits_dir, run_biapy):
    import shutil

    for name in ("a", "b"):  # one image per class: nothing can be split off for validation
        (tmp_path / "train" / name).mkdir(parents=True)
        shutil.copy(next((small_digits_dir / "train" / "0_zero").iterdir()), tmp_path / "train" / name / "x.png")
    cfg = digits_config(
        small_digits_dir,
        TRAIN={"LR_SCHEDULER": {"NAME": "reduceonplateau", "REDUCEONPLATEAU_PATIENCE": 2}},
        TEST={"ENABLE": False},
    )
    cfg["DATA"]["TRAIN"]["PATH"] = str(tmp_path / "train")
    code, _, err = run_biapy("--config", write_yaml(tmp_path / "c.yaml", cfg), "--result_dir", tmp_path, "--name", "j")
    assert code == 2 and "no validation set" in err and "reduceonplateau" in err
    assert not (tmp_path / "j").exists()  # refused before anything was written


@pytest.mark.slow
def test_reading_from_disk_with_worker_processes_trains_the_same_model(tmp_path, small_digits_dir, run_biapy):
    """SYSTEM.NUM_WORKERS: images read lazily by 2 DataLoader worker processes give the very predictions
    of images decoded once into memory (same order, same augmentation, same model)."""
    for name, in_memory, workers in (("memory", True, 0), ("disk", False, 2)):
        cfg = digits_config(small_digits_dir, TRAIN={**TRAIN, "EPOCHS": 2},
                            AUGMENTOR={"ENABLE": True, "HFLIP": True, "RANDOM_ROT": True},
                            SYSTEM={"NUM_WORKERS": workers})
        cfg["DATA"]["PATCH_SIZE"] = "(16, 16, 1)"
        for split in ("TRAIN", "VAL", "TEST"):
            cfg["DATA"].setdefault(split, {})["IN_MEMORY"] = in_memory
        config = write_yaml(tmp_path / f"{name}.yaml", cfg)
        code, _, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", name)
        assert code == 0, err
    assert predictions(tmp_path, "disk") == predictions(tmp_path, "memory")
