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

from biapy_cls.errors import ConfigError
from conftest import check_user_error, digits_config, run_config, write_yaml


@pytest.fixture
def digits_copy(small_digits_dir, tmp_path) -> Path:
    """A private copy of the small digits data, to damage."""
    return Path(shutil.copytree(small_digits_dir, tmp_path / "data"))


# --- config -------------------------------------------------------------------------------------------

def test_missing_config_file(run_biapy, tmp_path):
    check_user_error(run_biapy("--config", tmp_path / "nope.yaml", "--result_dir", tmp_path),
                     "nope.yaml", "does not exist")


def test_yaml_syntax_error_names_the_line(run_biapy, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("TRAIN:\n  ENABLE: True\n   EPOCHS: 3\n")
    check_user_error(run_biapy("--config", path, "--result_dir", tmp_path), "bad.yaml", "not valid YAML at line 3")


@pytest.mark.parametrize(
    "section, values, words",
    [  # every config check has its own unit test in tests/config/; these two show what the CLI adds
        ("TRAIN", {"EPOCS": 3}, ["TRAIN.EPOCS", "Did you mean TRAIN.EPOCHS?"]),
        ("MODEL", {"ARCHITECTURE": "resnet9000"}, ["MODEL.ARCHITECTURE", "resnet9000", "simple_cnn"]),
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


def test_class_folders_differing_only_by_case(run_biapy, digits_copy, tmp_path):
    shutil.copytree(digits_copy / "train" / "0_zero", digits_copy / "train" / "0_Zero")
    check_user_error(run_config(run_biapy, tmp_path, digits_config(digits_copy)), "DATA.TRAIN.PATH",
                     str(digits_copy / "train"), "differ only by case: '0_Zero' and '0_zero'")
    assert not (tmp_path / "out").exists()  # nothing written


def test_n_classes_disagrees_with_the_folders(run_biapy, small_digits_dir, tmp_path):
    cfg = digits_config(small_digits_dir)
    cfg["DATA"]["N_CLASSES"] = 5
    check_user_error(run_config(run_biapy, tmp_path, cfg), "DATA.N_CLASSES", "5", "10")


def test_truncated_image_is_named(run_biapy, digits_copy, tmp_path):
    victim = sorted((digits_copy / "train" / "4_four").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:40])
    check_user_error(run_config(run_biapy, tmp_path, digits_config(digits_copy)), victim.name)


@pytest.mark.slow
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


@pytest.mark.slow
def test_16_bit_and_float_images_train_the_very_model_of_8_bit_ones(run_biapy, small_digits_dir, tmp_path):
    """The same digits as 8-bit PNG, 16-bit tif (x 257) and float tif (/ 255) are the same unit-scale values
    (DATA.NORMALIZATION div), so the three seeded runs must predict the same probabilities."""
    import imageio.v3 as iio
    import pandas as pd

    folders = {"uint8": small_digits_dir}
    for dtype in (np.uint16, np.float32):
        data = folders[np.dtype(dtype).name] = tmp_path / np.dtype(dtype).name
        for image in small_digits_dir.rglob("*.png"):
            pixels = iio.imread(image).astype(np.float64)
            target = data / image.relative_to(small_digits_dir).with_suffix(".tif")
            target.parent.mkdir(parents=True, exist_ok=True)
            scaled = pixels * 257 if dtype == np.uint16 else pixels / 255.0
            tifffile.imwrite(target, scaled.astype(dtype))
    tables = {}
    for name, data in folders.items():
        config = write_yaml(tmp_path / f"{name}.yaml", digits_config(data, TRAIN={"EPOCHS": 6, "BATCH_SIZE": 16}))
        code, out, err = run_biapy("--config", config, "--result_dir", tmp_path / "out", "--name", name)
        assert code == 0, err
        tables[name] = pd.read_csv(tmp_path / "out" / name / "results" / f"{name}_1" / "predictions.csv")
    reference = tables["uint8"]
    assert (reference["class"] == reference["true_class"]).mean() >= 0.3  # it learned: chance is 0.1
    probabilities = [c for c in reference.columns if c.startswith("prob_")]
    for name in ("uint16", "float32"):
        assert list(tables[name]["filename"].str.replace(".tif", ".png")) == list(reference["filename"])
        assert np.array_equal(tables[name][probabilities].to_numpy(), reference[probabilities].to_numpy()), name


# --- runs ---------------------------------------------------------------------------------------------

def test_empty_result_dir(run_biapy, small_digits_dir, tmp_path):
    """Hostile pass: --result_dir "" gave the API's "train() ... this BiaPy object writes no files"."""
    config = write_yaml(tmp_path / "config.yaml", digits_config(small_digits_dir))
    message = check_user_error(run_biapy("--config", config, "--result_dir", ""), "--result_dir is empty")
    assert "train()" not in message


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


def test_debug_shows_the_traceback(run_biapy, tmp_path):
    """--debug lets the very error through (pytest shows its traceback) instead of printing the paragraph."""
    with pytest.raises(ConfigError, match="nope.yaml.*does not exist"):
        run_biapy("--config", tmp_path / "nope.yaml", "--result_dir", tmp_path, "--debug")


@pytest.mark.slow
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
