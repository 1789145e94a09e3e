"""Every mistake a user can make gives one clear paragraph, exit code 2, no traceback, and loses nothing.

Each case runs the real command line (in-process) on a config or data folder with one thing wrong.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from conftest import digits_config, interrupt_at_epoch, write_yaml


def check_user_error(result, *words: str) -> str:
    code, out, err = result
    assert code == 2, f"exit code {code}\n{out}\n{err}"
    assert "Traceback" not in out + err
    assert err.startswith("ERROR: ")
    message = " ".join(err.split())  # the paragraph, unwrapped
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


@pytest.fixture
def digits_copy(small_digits_dir, tmp_path) -> Path:
    """A private copy of the small digits data, to damage."""
    return Path(shutil.copytree(small_digits_dir, tmp_path / "data"))


def run_config(run_biapy, tmp_path, cfg: dict, *extra: str):
    config = write_yaml(tmp_path / "config.yaml", cfg)
    return run_biapy("--config", config, "--result_dir", tmp_path / "out", "--name", "job", *extra)


# --- config -------------------------------------------------------------------------------------------

def test_missing_config_file(run_biapy, tmp_path):
    check_user_error(run_biapy("--config", tmp_path / "nope.yaml", "--result_dir", tmp_path),
                     "nope.yaml", "does not exist")


def test_yaml_syntax_error_names_the_line(run_biapy, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("TRAIN:\n  ENABLE: True\n   EPOCHS: 3\n")
    check_user_error(run_biapy("--config", path, "--result_dir", tmp_path), "bad.yaml", "line 3")


@pytest.mark.parametrize(
    "section, values, words",
    [
        ("TRAIN", {"EPOCS": 3}, ["TRAIN.EPOCS", "Did you mean TRAIN.EPOCHS?"]),
        ("TRAIN", {"EPOCHS": "many"}, ["TRAIN.EPOCHS", "many"]),
        ("TRAIN", {"LR": -0.1}, ["TRAIN.LR", "greater than 0"]),
        ("DATA", {"VAL": {"SPLIT_TRAIN": 1.5}}, ["DATA.VAL.SPLIT_TRAIN", "1.5"]),
        ("PROBLEM", {"TYPE": "SEMANTIC_SEG"}, ["PROBLEM.TYPE", "CLASSIFICATION"]),
        ("PROBLEM", {"NDIM": "4D"}, ["PROBLEM.NDIM", "2D", "3D"]),
        ("MODEL", {"ARCHITECTURE": "resnet9000"}, ["MODEL.ARCHITECTURE", "resnet9000", "simple_cnn"]),
        ("DATA", {"PATCH_SIZE": "(32, 32)"}, ["DATA.PATCH_SIZE", "needs 3 positive integers (y, x, channels)"]),
    ],
)
def test_config_mistakes(run_biapy, small_digits_dir, tmp_path, section, values, words):
    cfg = digits_config(small_digits_dir)
    cfg[section] = {**cfg.get(section, {}), **values}
    check_user_error(run_config(run_biapy, tmp_path, cfg), *words)
    assert not (tmp_path / "out").exists()  # nothing written


# --- data ---------------------------------------------------------------------------------------------

def test_missing_data_path(run_biapy, tmp_path):
    check_user_error(run_config(run_biapy, tmp_path, digits_config(tmp_path / "missing")),
                     "DATA.TRAIN.PATH", "does not exist")


def test_path_without_class_folders(run_biapy, digits_copy, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in list((digits_copy / "train").rglob("*.png"))[:5]:
        shutil.copy(image, flat / image.name)
    cfg = digits_config(digits_copy)
    cfg["DATA"]["TRAIN"]["PATH"] = str(flat)
    check_user_error(run_config(run_biapy, tmp_path, cfg), str(flat), "class")


def test_empty_class_folder(run_biapy, digits_copy, tmp_path):
    for image in (digits_copy / "train" / "3_three").iterdir():
        image.unlink()
    check_user_error(run_config(run_biapy, tmp_path, digits_config(digits_copy)), "3_three")


def test_single_class(run_biapy, digits_copy, tmp_path):
    for folder in (digits_copy / "train").iterdir():
        if folder.name != "0_zero":
            shutil.rmtree(folder)
    check_user_error(run_config(run_biapy, tmp_path, digits_config(digits_copy)), "0_zero", "at least two classes")


def test_n_classes_disagrees_with_the_folders(run_biapy, small_digits_dir, tmp_path):
    cfg = digits_config(small_digits_dir)
    cfg["DATA"]["N_CLASSES"] = 5
    check_user_error(run_config(run_biapy, tmp_path, cfg), "DATA.N_CLASSES", "5", "10")


def test_truncated_image_is_named(run_biapy, digits_copy, tmp_path):
    victim = sorted((digits_copy / "train" / "4_four").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:40])
    check_user_error(run_config(run_biapy, tmp_path, digits_config(digits_copy)), victim.name)


def test_non_image_file_is_skipped_with_a_warning(run_biapy, digits_copy, tmp_path):
    (digits_copy / "train" / "2_two" / "notes.docx").write_text("lab notes")
    code, out, err = run_config(run_biapy, tmp_path, digits_config(digits_copy, TRAIN={"EPOCHS": 1}))
    assert code == 0, err
    assert "notes.docx" in out + err


def test_channel_count_disagrees_with_patch_size(run_biapy, small_digits_dir, tmp_path):
    cfg = digits_config(small_digits_dir)
    cfg["DATA"]["PATCH_SIZE"] = "(32, 32, 3)"
    check_user_error(run_config(run_biapy, tmp_path, cfg), "channel", "DATA.FORCE_RGB")


def test_volume_in_a_2d_run(run_biapy, digits_copy, tmp_path):
    tifffile.imwrite(digits_copy / "train" / "1_one" / "stack.tif", np.zeros((5, 32, 32, 2), np.uint8))
    check_user_error(run_config(run_biapy, tmp_path, digits_config(digits_copy)), "stack.tif", "PROBLEM.NDIM (2D)")


def test_test_class_that_training_never_saw(run_biapy, digits_copy, tmp_path):
    shutil.copytree(digits_copy / "test" / "1_one", digits_copy / "test" / "11_eleven")
    check_user_error(run_config(run_biapy, tmp_path, digits_config(digits_copy)), "11_eleven")


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_16_bit_and_float_images_work(run_biapy, small_digits_dir, tmp_path, dtype):
    import imageio.v3 as iio

    data = tmp_path / "deep"
    for image in small_digits_dir.rglob("*.png"):
        pixels = iio.imread(image).astype(np.float64)
        target = data / image.relative_to(small_digits_dir).with_suffix(".tif")
        target.parent.mkdir(parents=True, exist_ok=True)
        scaled = pixels * 257 if dtype == np.uint16 else pixels / 255.0
        tifffile.imwrite(target, scaled.astype(dtype))
    code, out, err = run_config(run_biapy, tmp_path, digits_config(data, TRAIN={"EPOCHS": 3}))
    assert code == 0, err
    assert "Test accuracy" in out


# --- runs ---------------------------------------------------------------------------------------------

def test_result_dir_that_cannot_be_created(run_biapy, small_digits_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    config = write_yaml(tmp_path / "config.yaml", digits_config(small_digits_dir))
    check_user_error(run_biapy("--config", config, "--result_dir", blocker / "results"), str(blocker))


def test_result_dir_not_writable(run_biapy, small_digits_dir, tmp_path, monkeypatch):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # root may write anywhere, so the permission check itself is told the folder is read-only
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    config = write_yaml(tmp_path / "config.yaml", digits_config(small_digits_dir))
    check_user_error(run_biapy("--config", config, "--result_dir", locked), str(locked), "writ")


@pytest.mark.parametrize("kind", ["missing", "corrupt", "foreign"])
def test_bad_checkpoint_file(run_biapy, small_digits_dir, tmp_path, kind):
    checkpoint = tmp_path / "model.pth"
    if kind == "corrupt":
        checkpoint.write_bytes(b"PK\x03\x04 half a checkpoint")
    elif kind == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(3)}}, checkpoint)
    cfg = digits_config(small_digits_dir, TRAIN={"ENABLE": False},
                        MODEL={"ARCHITECTURE": "simple_cnn", "LOAD_CHECKPOINT": True},
                        PATHS={"CHECKPOINT_FILE": str(checkpoint)})
    words = {"missing": ["model.pth", "does not exist"], "corrupt": ["model.pth", "not"],
             "foreign": ["model.pth", "biapy-cls"]}[kind]
    check_user_error(run_config(run_biapy, tmp_path, cfg), *words)


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
    assert torch.load(best, weights_only=False)["model_state"]


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


def test_debug_shows_the_traceback(run_biapy, tmp_path):
    with pytest.raises(Exception):
        run_biapy("--config", tmp_path / "nope.yaml", "--result_dir", tmp_path, "--debug")


def test_checkpoint_of_another_class_count_or_architecture(run_biapy, digits_copy, tmp_path):
    assert run_config(run_biapy, tmp_path, digits_config(digits_copy, TRAIN={"EPOCHS": 1}))[0] == 0
    checkpoint = tmp_path / "out" / "job" / "checkpoints" / "job_1-checkpoint-best.pth"
    for folder in list((digits_copy / "train").iterdir())[3:]:
        shutil.rmtree(folder)
    fine_tune = digits_config(digits_copy, TRAIN={"EPOCHS": 1}, TEST={"ENABLE": False},
                              MODEL={"ARCHITECTURE": "simple_cnn", "LOAD_CHECKPOINT": True},
                              PATHS={"CHECKPOINT_FILE": str(checkpoint)})
    (tmp_path / "ft").mkdir()
    check_user_error(run_config(run_biapy, tmp_path / "ft", fine_tune), "job_1-checkpoint-best.pth",
                     "10 classes", "MODEL.SKIP_UNMATCHED_LAYERS True")
    fine_tune["MODEL"]["ARCHITECTURE"] = "vit"
    check_user_error(run_config(run_biapy, tmp_path / "ft", fine_tune), "holds a simple_cnn model",
                     "MODEL.ARCHITECTURE")
    fine_tune["MODEL"].update(ARCHITECTURE="simple_cnn", SKIP_UNMATCHED_LAYERS=True)
    code, out, err = run_config(run_biapy, tmp_path / "ft", fine_tune)
    assert code == 0, err
    assert "Fine-tuning from" in out
