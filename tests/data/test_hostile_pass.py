"""Cases of the second hostile pass (docs/hostile_pass.md) that gave a silent wrong result or a misleading
message, each with the exact input and what the user sees now."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from PIL import Image

from biapy_cls.configure import load_config
from biapy_cls.data.plan import plan_test_data, plan_training_data
from tests.conftest import write_yaml


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16), value, np.uint8)).save(path)


@pytest.fixture
def tree(tmp_path):
    for split in ("train", "other"):
        for cls in ("a", "b"):
            for k in range(4):
                _png(tmp_path / split / cls / f"{k}.png", 40 * k)
    return tmp_path


def _cfg(tmp_path, **data):
    cfg = {"DATA": {"PATCH_SIZE": "(16, 16, 1)", "TRAIN": {"PATH": str(tmp_path / "train")},
                    "TEST": {"PATH": str(tmp_path / "other"), "LOAD_GT": True}, **data},
           "TRAIN": {"ENABLE": True, "EPOCHS": 1}, "TEST": {"ENABLE": True}}
    return load_config(write_yaml(tmp_path / "c.yaml", cfg))[0]


def test_test_folder_that_is_the_training_folder_is_said_loudly(tree, caplog):
    cfg = _cfg(tree, TEST={"PATH": str(tree / "train"), "LOAD_GT": True})
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        plan_test_data(cfg, plan_training_data(cfg))
    text = " ".join(caplog.text.split())
    assert "8 of the 8 test images of DATA.TEST.PATH" in text
    assert "are also training or validation images of this run" in text and "memorised" in text


def test_validation_folder_that_is_the_training_folder(tree, caplog):
    cfg = _cfg(tree, VAL={"FROM_TRAIN": False, "PATH": str(tree / "train")})
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        plan_training_data(cfg)
    assert "8 of the 8 validation images of DATA.VAL.PATH" in caplog.text
    assert "also training images (DATA.TRAIN.PATH)" in caplog.text


def test_linked_files_are_the_same_images(tree, caplog):
    os.symlink(tree / "train" / "a" / "0.png", tree / "other" / "a" / "linked.png")
    cfg = _cfg(tree)
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        plan_test_data(cfg, plan_training_data(cfg))
    assert "1 of the 9 test images" in caplog.text and "'linked.png'" in caplog.text


def test_separate_folders_say_nothing(tree, caplog):
    cfg = _cfg(tree)
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        plan_test_data(cfg, plan_training_data(cfg))
    assert "memorised" not in caplog.text


@pytest.mark.parametrize("content, words", [
    (b"", "it is an empty file (0 bytes)"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "a Git LFS pointer, not the image itself: "
                                                                      "fetch the images with 'git lfs pull', or"),
    (b"<html><body>404 Not Found</body></html>", "it is a text file, not an image (it starts with '<html><body>404"),
    (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "The file is corrupt, truncated or not an image"),
])
def test_an_unreadable_image_says_what_the_file_is(tmp_path, content, words):
    from biapy_cls.data.io import read_file
    from biapy_cls.errors import DataError

    path = tmp_path / "img.png"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_file(path)
    message = str(err.value)
    assert message.startswith(f"Cannot read the image '{path}': ") and words in message
    assert message.endswith("replace or remove it.")
