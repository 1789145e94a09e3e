"""Real multi-process runs: `python -m torch.distributed.run --nproc_per_node=2 biapy ...` on the CPU (gloo)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import ROOT, digits_config, write_yaml

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


def torchrun(script: str, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", script,
               *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def biapy_script() -> str:
    found = shutil.which("biapy")
    if found is None:
        pytest.skip("the biapy console script is not installed (pip install -e .)")
    return found


def test_two_processes_train_and_predict_every_test_image_once(digits_dir, tmp_path):
    """Also with the weight EMA, which each process keeps of its DDP-synchronised weights."""
    cfg = digits_config(digits_dir, TRAIN={"ENABLE": True, "EPOCHS": 3, "BATCH_SIZE": 32, "LR": 3e-3, "PATIENCE": -1,
                                           "LR_SCALING": "linear"},
                        MODEL={"ARCHITECTURE": "simple_cnn", "EMA": {"ENABLE": True, "DECAY": 0.9, "WARMUP": 5}})
    config = write_yaml(tmp_path / "dist.yaml", cfg)
    result = torchrun(biapy_script(), "--config", config, "--result_dir", tmp_path / "out", "--name", "dist",
                      "--run_id", 1)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    job = tmp_path / "out" / "dist"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dist"]
    predictions = pd.read_csv(job / "results" / "dist_1" / "predictions.csv")
    test_files = sorted(str(p.relative_to(digits_dir / "test")) for p in (digits_dir / "test").rglob("*.png"))
    assert sorted(predictions["filename"]) == test_files  # every test image exactly once
    accuracy = (predictions["class"] == predictions["true_class"]).mean()
    log_text = (job / "logs" / "dist_1_log.txt").read_text()
    assert log_text.count("Test accuracy:") == 1 and result.stdout.count("Test accuracy:") == 1
    assert "2 processes" in log_text and "64 images per step" in log_text and "learning rate 0.006" in log_text
    assert accuracy >= 0.85
    assert f"Test accuracy: {accuracy:.4f}" in log_text
    assert log_text.count("Epoch 3/3") == 1
    checkpoint = torch.load(job / "checkpoints" / "dist_1-checkpoint-last.pth", map_location="cpu", weights_only=False)
    training = checkpoint["training"]
    assert training["ema"]["updates"] == training["schedule"]["steps"] > 0  # one update per optimizer step
    assert all("val-ema_loss" in row and "val-ema_accuracy" in row for row in training["history"])


def test_a_crashing_rank_ends_the_job_with_its_error(small_digits_dir, tmp_path):
    """Rank 1 crashes in its first epoch while rank 0 waits for it in an all-reduce: the job must end with
    rank 1's message, not hang until the process group's 30-minute timeout."""
    config = write_yaml(tmp_path / "crash.yaml", digits_config(small_digits_dir))
    try:
        result = torchrun(str(HERE / "crash_on_rank1.py"), "--config", config, "--result_dir", tmp_path / "out",
                          "--name", "crash", timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("the job still ran 180 s after rank 1 crashed: rank 0 kept waiting for it", pytrace=False)
    assert result.returncode != 0
    assert "[rank 1] unexpected internal error (RuntimeError: simulated crash of rank 1)" in result.stderr
    assert not (tmp_path / "out" / "crash" / "results" / "crash_1" / "predictions.csv").exists()
