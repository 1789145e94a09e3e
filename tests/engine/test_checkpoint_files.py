"""Files given as a checkpoint that are not one (issue 21, point 22): say what the file is."""

from __future__ import annotations

import pytest

from biapy_cls.engine.checkpoint import load_checkpoint
from biapy_cls.errors import CheckpointError


def test_a_text_file_is_named_as_text(tmp_path):
    (tmp_path / "model.pth").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "model.pth")
    assert "is a text file (it starts with 'version https://git-lfs.github.com/spec/v1')" in str(err.value)


def test_a_folder_lists_the_checkpoints_inside(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "j_1-checkpoint-best.pth").write_bytes(b"PK")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file .* It holds j_1-checkpoint-best.pth"):
        load_checkpoint(tmp_path / "checkpoints")


def test_an_empty_file_says_it_is_empty(tmp_path):
    (tmp_path / "m.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="an empty file"):
        load_checkpoint(tmp_path / "m.pth")
