"""IN_MEMORY loading that cannot fit is refused before anything is decoded, for every split loaded in memory
(issue 21, point 19): training, validation (cut from training or its own folder) and test, with the figure
and the way out (a smaller DATA.PATCH_SIZE, or the split's IN_MEMORY key False)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from biapy_cls.configure import load_config
from biapy_cls.data.dataset import ImageSpec
from biapy_cls.data.memory import InMemorySplit, check_memory
from biapy_cls.data.plan import DataPlan, plan_test_data, plan_training_data
from biapy_cls.errors import DataError
from tests.conftest import check_user_error, run_config, write_yaml

HUGE = "(200000, 200000, 1)"  # 40 GB per grey image (the 20000 x 20000 is 0.4 GB): 6 fit on no test machine


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(path)


@pytest.fixture
def data(tmp_path):
    """train (2 x 30), val (2 x 30) and test (2 x 30) folders of tiny PNGs."""
    for split in ("train", "val", "test"):
        for cls in ("a", "b"):
            for k in range(30):
                _png(tmp_path / split / cls / f"{k}.png")
    return tmp_path


def _cfg(data, train_in_memory=True, val_folder=False, val_in_memory=True, test_in_memory=False, **extra):
    cfg = {"DATA": {"PATCH_SIZE": HUGE,
                    "TRAIN": {"PATH": str(data / "train"), "IN_MEMORY": train_in_memory},
                    "VAL": {"FROM_TRAIN": not val_folder, "PATH": str(data / "val") if val_folder else "",
                            "IN_MEMORY": val_in_memory},
                    "TEST": {"PATH": str(data / "test"), "LOAD_GT": True, "IN_MEMORY": test_in_memory}},
           "MODEL": {"ARCHITECTURE": "simple_cnn"},
           "TRAIN": {"ENABLE": True, "EPOCHS": 1}, "TEST": {"ENABLE": True}}
    for section, values in extra.items():
        cfg[section].update(values)
    return cfg


def _plan(data, **kwargs):
    return load_config(write_yaml(data / "c.yaml", _cfg(data, **kwargs)))[0]


def _refusal(call) -> str:
    with pytest.raises(DataError) as err:
        call()
    return " ".join(str(err.value).split())


def test_training_and_validation_cut_from_it(data):
    text = _refusal(lambda: plan_training_data(_plan(data)))
    assert "DATA.TRAIN.IN_MEMORY is True, but 54 training images of DATA.TRAIN.PATH" in text
    assert "+ 6 validation images of DATA.TRAIN.PATH (DATA.VAL.FROM_TRAIN) (240.0 GB)" in text
    assert "need at least 2400.0 GB of memory" in text
    assert "Use a smaller DATA.PATCH_SIZE, or set DATA.TRAIN.IN_MEMORY False" in text


def test_validation_from_its_own_folder(data):
    """Only the validation folder is in memory: it alone is counted, and its own key is the way out."""
    text = _refusal(lambda: plan_training_data(_plan(data, train_in_memory=False, val_folder=True)))
    assert "DATA.VAL.IN_MEMORY is True, but 60 validation images of DATA.VAL.PATH" in text and "2400.0 GB" in text
    assert "set DATA.VAL.IN_MEMORY False" in text and "DATA.TRAIN.IN_MEMORY" not in text
    plan_training_data(_plan(data, train_in_memory=False, val_folder=True, val_in_memory=False))  # the way out


def test_training_and_validation_folder_together(data):
    text = _refusal(lambda: plan_training_data(_plan(data, val_folder=True)))
    assert "DATA.TRAIN.IN_MEMORY and DATA.VAL.IN_MEMORY are True" in text
    assert "60 training images" in text and "+ 60 validation images of DATA.VAL.PATH" in text
    assert "4800.0 GB of memory together" in text
    assert "set DATA.TRAIN.IN_MEMORY False and DATA.VAL.IN_MEMORY False" in text


def test_test_images_in_a_training_run(data):
    cfg = _plan(data, train_in_memory=False, val_in_memory=False, test_in_memory=True)
    plan = plan_training_data(cfg)  # training and validation read from disk: accepted
    text = _refusal(lambda: plan_test_data(cfg, plan))
    assert "DATA.TEST.IN_MEMORY is True, but 60 test images of DATA.TEST.PATH" in text and "2400.0 GB" in text
    assert "Use a smaller DATA.PATCH_SIZE, or set DATA.TEST.IN_MEMORY False" in text


def test_use_val_as_test(data):
    raw = _cfg(data, train_in_memory=False, test_in_memory=True)
    raw["DATA"]["TEST"]["USE_VAL_AS_TEST"] = True
    cfg = load_config(write_yaml(data / "c.yaml", raw))[0]
    plan = plan_training_data(cfg)
    text = _refusal(lambda: plan_test_data(cfg, plan))
    assert "6 test images of the validation images (DATA.TEST.USE_VAL_AS_TEST)" in text


def test_test_only_run_names_the_model_size_not_patch_size(data):
    """A checkpoint fixes the size in a test-only run: DATA.PATCH_SIZE is no way out there."""
    cfg = _plan(data, test_in_memory=True, TRAIN={"ENABLE": False})
    plan = DataPlan(["a", "b"], ImageSpec.from_patch_size("2D", (200000, 200000, 1), False, False))
    text = _refusal(lambda: plan_test_data(cfg, plan))
    assert "at the model's image size (200000, 200000, 1)" in text
    assert "Set DATA.TEST.IN_MEMORY False" in text and "PATCH_SIZE" not in text


def test_the_estimate_counts_every_value():
    splits = [InMemorySplit("training", 10, "T", "K1"), InMemorySplit("validation", 5, "V", "K2")]
    check_memory(splits, (3, 100, 100), "P", available=int(15 * 30000 / 0.8) + 1)  # fits: nothing said
    with pytest.raises(DataError, match="need at least 0.0 GB of memory together"):
        check_memory(splits, (3, 100, 100), "P", available=int(15 * 30000 / 0.8) - 1)
    check_memory([InMemorySplit("test", 0, "T", "K")], (1, 10**6, 10**6), "P", available=1)  # nothing loaded


def test_cli_refuses_before_writing(run_biapy, data, tmp_path):
    check_user_error(run_config(run_biapy, tmp_path, _cfg(data, train_in_memory=False, val_folder=True)),
                     "DATA.VAL.IN_MEMORY is True", "60 validation images", "GB of memory", "DATA.VAL.IN_MEMORY False")
    assert not (tmp_path / "out").exists()
