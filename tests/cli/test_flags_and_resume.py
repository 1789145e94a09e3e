"""Flags wherever the user puts them, and --resume that extends a finished run to more epochs."""

from __future__ import annotations

import shlex

import pytest

from biapy_cls.cli import parse_args
from conftest import digits_config, write_yaml


@pytest.mark.parametrize("argv", [
    ["--config", "x.yaml", "--name", "job", "--resume", "TRAIN.EPOCHS", "4", "TRAIN.PATIENCE", "-1"],
    ["--config", "x.yaml", "TRAIN.EPOCHS", "4", "--name", "job", "TRAIN.PATIENCE", "-1", "--resume"],
    ["TRAIN.EPOCHS", "4", "--resume", "TRAIN.PATIENCE", "-1", "--config=x.yaml", "--name=job"],
])
def test_flags_mean_the_same_before_and_after_the_overrides(argv):
    args = parse_args(argv)
    assert (args.config, args.name, args.resume) == ("x.yaml", "job", True)
    assert args.opts == ["TRAIN.EPOCHS", "4", "TRAIN.PATIENCE", "-1"]  # -1 is a value, not a flag


def test_unknown_flag_after_the_overrides_is_named(run_biapy, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_biapy("--config", tmp_path / "x.yaml", "TRAIN.EPOCHS", "2", "--resum")
    assert exit_info.value.code == 2


def _paths(root):
    job = root / "out" / "job"
    return job / "results" / "job_1" / "predictions.csv", job / "logs" / "job_1_training_log.json"


@pytest.mark.slow
def test_resume_extends_a_finished_run_exactly(run_biapy, small_digits_dir, tmp_path):
    """4 epochs, then --resume with TRAIN.EPOCHS 6 (flag after the override) == 6 epochs at once."""
    cfg = digits_config(small_digits_dir, TRAIN={"EPOCHS": 4, "OPTIMIZER": "ADAMW"})
    config = write_yaml(tmp_path / "config.yaml", cfg)
    straight, extended = tmp_path / "straight", tmp_path / "extended"
    common = ["--config", config, "--name", "job"]
    assert run_biapy(*common, "--result_dir", straight / "out", "TRAIN.EPOCHS", "6")[0] == 0
    assert run_biapy(*common, "--result_dir", extended / "out")[0] == 0

    code, out, err = run_biapy(*common, "--result_dir", extended / "out", "--resume")
    message = " ".join(err.split())  # unwrapped
    assert code == 2 and "already finished its 4 epochs" in message and "TRAIN.EPOCHS 8" in message
    hint = shlex.split(message.split("give a larger count: ")[1].split(". Or use")[0])
    assert hint[0] == "biapy" and hint[-3:] == ["--resume", "TRAIN.EPOCHS", "8"]  # the hint is a working command

    code, out, err = run_biapy(*common, "--result_dir", extended / "out", "TRAIN.EPOCHS", "6", "--resume")
    assert code == 0, err
    assert "after epoch 4, up to epoch 6" in out and "Epoch 5/6" in out and "Epoch 1/6" not in out
    straight_csv, straight_log = _paths(straight)
    extended_csv, extended_log = _paths(extended)
    assert extended_csv.read_bytes() == straight_csv.read_bytes()
    assert len(extended_log.read_text().splitlines()) == 6


@pytest.mark.slow
def test_resume_after_early_stopping_says_what_to_change(run_biapy, small_digits_dir, tmp_path):
    cfg = digits_config(small_digits_dir, TRAIN={"EPOCHS": 30, "PATIENCE": 1, "LR": 0.5, "OPTIMIZER": "SGD"})
    config = write_yaml(tmp_path / "config.yaml", cfg)
    common = ["--config", config, "--name", "job", "--result_dir", tmp_path / "out"]
    code, out, err = run_biapy(*common)
    assert code == 0, err
    assert "Early stopping" in out
    code, out, err = run_biapy(*common, "--resume")
    assert code == 2 and "stopped early" in err and "TRAIN.PATIENCE -1" in " ".join(err.split())
    code, out, err = run_biapy(*common, "--resume", "TRAIN.PATIENCE", "-1", "TRAIN.EPOCHS", "31")
    assert code == 0, err


@pytest.mark.slow
def test_resume_refuses_to_stretch_a_whole_run_schedule(run_biapy, small_digits_dir, tmp_path):
    cfg = digits_config(small_digits_dir, TRAIN={"EPOCHS": 1, "LR_SCHEDULER": {"NAME": "onecycle"}})
    config = write_yaml(tmp_path / "config.yaml", cfg)
    common = ["--config", config, "--name", "job", "--result_dir", tmp_path / "out"]
    assert run_biapy(*common)[0] == 0
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file())
    code, out, err = run_biapy(*common, "TRAIN.EPOCHS", "2", "--resume")
    assert code == 2 and "onecycle" in err and "cannot be stretched" in " ".join(err.split())
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file()) == before
