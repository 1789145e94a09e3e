"""Cross-validation: BiaPy's one fold per run (stratified, disjoint folds) and the all-folds run, resumable."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.crossval import summarise
from biapy_cls.data.discover import stratified_folds
from biapy_cls.data.plan import plan_test_data, plan_training_data
from conftest import digits_config, write_yaml


def test_folds_are_stratified_disjoint_and_cover_the_training_set():
    labels = np.repeat(np.arange(3), [10, 7, 13])
    vals = [stratified_folds(labels, 5, k, seed=3)[1] for k in range(1, 6)]
    for k, val in enumerate(vals, start=1):
        train, val2 = stratified_folds(labels, 5, k, seed=3)
        assert not set(train) & set(val) and len(train) + len(val) == len(labels)
        assert np.array_equal(val, val2)
        # stratified: each class's share of the fold is its share of the set, within one image
        for cls, n in enumerate(np.bincount(labels)):
            assert abs((labels[val] == cls).sum() - n / 5) < 1
    assert sorted(np.concatenate(vals).tolist()) == list(range(len(labels)))


def test_plan_folds_partition_the_training_folder_and_val_can_be_the_test(small_digits_dir):
    cfg = get_cfg_defaults()
    cfg.TRAIN.ENABLE, cfg.TEST.ENABLE = True, True
    cfg.DATA.TRAIN.PATH = str(small_digits_dir / "train")
    cfg.DATA.VAL.CROSS_VAL, cfg.DATA.VAL.CROSS_VAL_NFOLD = True, 4
    cfg.DATA.TEST.USE_VAL_AS_TEST = True
    seen = []
    for fold in range(1, 5):
        cfg.DATA.VAL.CROSS_VAL_FOLD = fold
        plan = plan_test_data(cfg, plan_training_data(cfg))
        assert not set(plan.train.paths) & set(plan.val.paths)
        assert plan.test is plan.val and np.bincount(plan.val.labels).tolist() == [6] * 10  # 24 per class / 4
        seen += plan.val.paths
    assert sorted(seen) == sorted((small_digits_dir / "train").rglob("*.png"))


def test_summary_mean_and_sample_std():
    rows = [{"fold": 1, "run": "a", "val_loss": 1.0, "test_accuracy": 0.5},
            {"fold": 2, "run": "b", "val_loss": 3.0, "test_accuracy": 0.7},
            {"fold": 3, "run": "c", "val_loss": 2.0}]
    s = summarise(rows)
    assert s["metrics"] == ["val_loss"]  # only metrics every fold has
    assert s["mean"]["val_loss"] == pytest.approx(2.0) and s["std"]["val_loss"] == pytest.approx(1.0)


def test_all_is_fold_minus_one(tmp_path, small_digits_dir):
    from biapy_cls.configure import load_config

    cfg = digits_config(small_digits_dir)
    cfg["DATA"]["VAL"] = {"CROSS_VAL": True, "CROSS_VAL_FOLD": "all", "CROSS_VAL_NFOLD": 3}
    loaded, _ = load_config(write_yaml(tmp_path / "c.yaml", cfg))
    assert loaded.DATA.VAL.CROSS_VAL_FOLD == -1


@pytest.mark.slow
def test_all_folds_run_writes_a_summary_and_resumes_fold_by_fold(tmp_path, small_digits_dir, run_biapy, monkeypatch):
    data = tmp_path / "data"
    for name in ("0_zero", "1_one", "7_seven"):
        shutil.copytree(small_digits_dir / "train" / name, data / "train" / name)
    cfg = digits_config(data, TRAIN={"ENABLE": True, "EPOCHS": 6, "BATCH_SIZE": 8, "LR": 3e-3, "PATIENCE": -1})
    cfg["DATA"]["VAL"] = {"CROSS_VAL": True, "CROSS_VAL_FOLD": -1, "CROSS_VAL_NFOLD": 3}
    cfg["DATA"]["TEST"] = {"USE_VAL_AS_TEST": True, "IN_MEMORY": True}
    config = write_yaml(tmp_path / "cv.yaml", cfg)
    args = ("--config", config, "--result_dir", tmp_path, "--name", "cv")

    # Ctrl-C in the second epoch of fold 2: fold 1 is finished, fold 2 has one epoch saved
    from biapy_cls.engine import trainer

    real, calls = trainer.train_one_epoch, []

    def counting(setup, epoch):
        calls.append(epoch)
        if len(calls) == 8:  # fold 1: epochs 0-5; fold 2: epoch 0, then this
            raise KeyboardInterrupt
        return real(setup, epoch)

    monkeypatch.setattr(trainer, "train_one_epoch", counting)
    code, _, err = run_biapy(*args)
    assert code != 0 and "--resume" in err
    job = tmp_path / "cv"
    fold1_best = job / "checkpoints" / "cv_1_fold1-checkpoint-best.pth"
    stamp = fold1_best.stat().st_mtime_ns
    assert (job / "checkpoints" / "cv_1_fold2-checkpoint-last.pth").exists()
    monkeypatch.setattr(trainer, "train_one_epoch", real)

    code, _, err = run_biapy(*args)  # without --resume: refused, nothing changed
    assert code != 0 and "--resume" in err

    code, out, err = run_biapy(*args, "--resume")
    assert code == 0, err
    assert fold1_best.stat().st_mtime_ns == stamp  # fold 1 kept, not retrained
    log2 = (job / "logs" / "cv_1_fold2_training_log.json").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log2] == [1, 2, 3, 4, 5, 6]  # fold 2 continued after epoch 1
    assert "Resuming after epoch 1" in (job / "logs" / "cv_1_fold2_log.txt").read_text()

    summary = json.loads((job / "results" / "cv_1" / "cross_validation.json").read_text())
    table = pd.read_csv(job / "results" / "cv_1" / "cross_validation.csv")
    assert summary["n_folds"] == 3 and table["fold"].tolist() == ["1", "2", "3", "mean", "std"]
    accuracies = []
    for k in (1, 2, 3):
        metrics = json.loads((job / "results" / f"cv_1_fold{k}" / "test_metrics.json").read_text())
        assert metrics["confusion_matrix"]["matrix"] and sum(map(sum, metrics["confusion_matrix"]["matrix"])) == 8 * 3
        accuracies.append(metrics["accuracy"])
        assert summary["folds"][k - 1]["test_accuracy"] == pytest.approx(metrics["accuracy"])
    assert summary["mean"]["test_accuracy"] == pytest.approx(np.mean(accuracies))
    assert summary["std"]["test_accuracy"] == pytest.approx(np.std(accuracies, ddof=1))
    assert summary["mean"]["test_accuracy"] > 0.6  # 3 easy digit classes
    report = (job / "results" / "cv_1" / "report.html").read_text()
    assert "Cross-validation (3 folds)" in report and "cv_1_fold3" in report
    assert "Cross-validation over 3 folds" in out
