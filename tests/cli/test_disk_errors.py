"""Folders that cannot be written and a full disk are the user's problem, not "internal errors"
(issue 21, point 17)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import digits_config, write_yaml


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_result_dir_that_is_a_file_is_refused_up_front(run_biapy, small_digits_dir, tmp_path):
    target = tmp_path / "tool.sh"
    target.write_text("#!/bin/sh\n")
    target.chmod(0o755)
    config = write_yaml(tmp_path / "c.yaml", digits_config(small_digits_dir))
    code, _, err = run_biapy("--config", config, "--result_dir", target, "--name", "j")
    assert code == 2 and f"'{target}' is a file, not a folder" in flat(err)
    assert target.read_text() == "#!/bin/sh\n"


def test_an_unwritable_checkpoints_folder_is_refused_up_front(run_biapy, small_digits_dir, tmp_path, monkeypatch):
    (tmp_path / "out" / "j" / "checkpoints").mkdir(parents=True)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith("checkpoints") else real(p, mode))
    config = write_yaml(tmp_path / "c.yaml", digits_config(small_digits_dir))
    code, _, err = run_biapy("--config", config, "--result_dir", tmp_path / "out", "--name", "j")
    assert code == 2 and "checkpoints' is not a writable folder" in flat(err)
    assert sorted(p.name for p in (tmp_path / "out" / "j").iterdir()) == ["checkpoints"]


@pytest.mark.slow
def test_a_full_disk_at_the_checkpoint_save_is_reported_as_such(run_biapy, small_digits_dir, tmp_path, monkeypatch):
    import torch

    def full(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 0 vs 12; file write failed")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr("shutil.disk_usage", lambda p: type("U", (), {"free": 0})())
    config = write_yaml(tmp_path / "c.yaml", digits_config(small_digits_dir, TRAIN={"EPOCHS": 1}))
    code, _, err = run_biapy("--config", config, "--result_dir", tmp_path / "out", "--name", "j")
    assert code == 2
    assert flat(err).startswith("ERROR: The disk is full: writing '") and "checkpoint" in err
    assert "internal error" not in err
    info = json.loads((tmp_path / "out" / "j" / "results" / "j_1" / "run_info.json").read_text())
    assert info["status"] == "failed"
