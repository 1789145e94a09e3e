"""Training that stops early: NaN loss, Ctrl-C and kill -9, then --resume; nothing finished is lost."""

from __future__ import annotations

import pytest
import torch

from conftest import check_user_error, digits_config, interrupt_at_epoch, run_config, write_yaml

pytestmark = pytest.mark.slow


def test_nan_loss_stops_with_a_message_and_keeps_the_best_checkpoint(run_biapy, small_digits_dir, tmp_path,
                                                                     monkeypatch):
    from biapy_cls.engine import trainer

    real = trainer.train_one_epoch

    def poisoned_from_epoch_3(setup, epoch):
        if epoch == 2:  # the weights go bad, as with a far too high learning rate
            with torch.no_grad():
                next(setup.model.parameters()).fill_(float("nan"))
        return real(setup, epoch)

    monkeypatch.setattr(trainer, "train_one_epoch", poisoned_from_epoch_3)
    message = check_user_error(run_config(run_biapy, tmp_path, digits_config(small_digits_dir, TRAIN={"EPOCHS": 4})),
                               "NaN", "TRAIN.LR")
    best = tmp_path / "out" / "job" / "checkpoints" / "job_1-checkpoint-best.pth"
    assert best.exists() and str(best) in message
    kept = torch.load(best, weights_only=False)
    assert kept["training"]["epoch"] < 2  # from an epoch before the weights went bad
    weights = [w for w in kept["model_state"].values() if w.is_floating_point()]
    assert weights and all(torch.isfinite(w).all() for w in weights)


def test_ctrl_c_saves_and_resume_completes(run_biapy, small_digits_dir, tmp_path, monkeypatch):
    resume_normally = interrupt_at_epoch(monkeypatch, 1)
    cfg = digits_config(small_digits_dir, TRAIN={"EPOCHS": 3})
    code, out, err = run_config(run_biapy, tmp_path, cfg)
    assert code == 130 and "Traceback" not in out + err
    assert "--resume" in err and "job_1-checkpoint-last.pth" in " ".join(err.split())
    resume_normally()
    code, out, err = run_config(run_biapy, tmp_path, cfg, "--resume")
    assert code == 0, err
    assert "Resuming after epoch 1" in out and "Epoch 3/3" in out and "Epoch 1/3" not in out
    assert (tmp_path / "out" / "job" / "results" / "job_1" / "predictions.csv").exists()


def test_kill_9_then_resume_completes(small_digits_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    config = write_yaml(tmp_path / "config.yaml", digits_config(small_digits_dir, TRAIN={"EPOCHS": 40}))
    args = [sys.executable, "-m", "biapy_cls", "--config", str(config), "--result_dir", str(tmp_path / "out"),
            "--name", "job"]
    last = tmp_path / "out" / "job" / "checkpoints" / "job_1-checkpoint-last.pth"
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last.exists()
    epochs_done = torch.load(last, weights_only=False)["training"]["epoch"] + 1
    assert epochs_done < 40
    resumed = subprocess.run([*args, "--resume", "TRAIN.EPOCHS", str(epochs_done + 1)], capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming after epoch {epochs_done}" in resumed.stdout
    assert (tmp_path / "out" / "job" / "results" / "job_1" / "test_metrics.json").exists()
