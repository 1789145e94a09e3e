"""Image size and channels decided from a sample, not the first file (issue 21, points 9, 24, 27)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from biapy_cls.configure import load_config
from biapy_cls.data.plan import plan_training_data
from biapy_cls.errors import DataError
from tests.conftest import write_yaml


def _img(path, shape, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8), mode).save(path)


def _cfg(tmp_path, **data):
    cfg = {"DATA": {"TRAIN": {"PATH": str(tmp_path / "train")}, "PATCH_SIZE": "()", **data},
           "TRAIN": {"ENABLE": True, "EPOCHS": 1}, "TEST": {"ENABLE": False}}
    return load_config(write_yaml(tmp_path / "c.yaml", cfg))[0]


def test_a_1x1_first_image_does_not_set_the_size(tmp_path, caplog):
    _img(tmp_path / "train" / "a" / "0.png", (1, 1))
    for k in range(1, 6):
        _img(tmp_path / "train" / "a" / f"{k}.png", (32, 32))
        _img(tmp_path / "train" / "b" / f"{k}.png", (32, 32))
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        plan = plan_training_data(_cfg(tmp_path))
    assert plan.spec.spatial == (32, 32)
    assert "differ in size" in caplog.text and "(1, 1) x1" in caplog.text


def test_absurdly_small_images_are_refused_when_inferring(tmp_path):
    for k in range(3):
        _img(tmp_path / "train" / "a" / f"{k}.png", (2, 2))
        _img(tmp_path / "train" / "b" / f"{k}.png", (2, 2))
    with pytest.raises(DataError, match=r"are \(2, 2\) pixels .* too small to classify .* Set DATA.PATCH_SIZE"):
        plan_training_data(_cfg(tmp_path))


def test_mixed_channel_counts_get_one_message_with_the_setting_that_accepts_all(tmp_path):
    _img(tmp_path / "train" / "a" / "grey.png", (16, 16))
    _img(tmp_path / "train" / "a" / "rgb.png", (16, 16, 3))
    _img(tmp_path / "train" / "b" / "rgba.png", (16, 16, 4))
    _img(tmp_path / "train" / "b" / "la.png", (16, 16, 2), "LA")
    with pytest.raises(DataError) as err:
        plan_training_data(_cfg(tmp_path, PATCH_SIZE="(16, 16, 1)"))
    text = str(err.value)
    assert "mixes images with different channel counts" in text
    assert "1 grey, 1 grey+alpha, 1 RGB, 1 RGBA" in text and "DATA.FORCE_RGB True" in text
    plan = plan_training_data(_cfg(tmp_path, PATCH_SIZE="(16, 16, 3)", FORCE_RGB=True))  # the fix works
    from biapy_cls.data.dataset import build_dataset

    assert build_dataset(plan.train, plan.spec, True, "t").images.shape[1] == 3


def test_in_memory_loading_that_cannot_fit_is_refused_with_the_figure(tmp_path):
    for k in range(3):
        _img(tmp_path / "train" / "a" / f"{k}.png", (16, 16))
        _img(tmp_path / "train" / "b" / f"{k}.png", (16, 16))
    with pytest.raises(DataError) as err:
        plan_training_data(_cfg(tmp_path, PATCH_SIZE="(200000, 200000, 1)"))
    text = str(err.value)
    assert "DATA.TRAIN.IN_MEMORY is True, but 4 training images" in text and "need at least 240.0 GB" in text
    assert "set DATA.TRAIN.IN_MEMORY False" in text
    plan_training_data(_cfg(tmp_path, PATCH_SIZE="(200000, 200000, 1)", TRAIN={"PATH": str(tmp_path / "train"),
                                                                              "IN_MEMORY": False}))
