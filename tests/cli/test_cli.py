"""The command line: fast help, the required flag, results never silently replaced (the error paragraphs
themselves are in test_user_errors.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import digits_config, write_yaml


def test_help_and_version_answer_without_importing_torch():
    """Fast because torch is not imported; the time itself is measured by bench/ (docs/benchmarks.md)."""
    code = ("import sys, biapy_cls.cli as c\ntry:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--config" in result.stdout and result.stdout.strip().endswith("False")
    version = subprocess.run([sys.executable, "-m", "biapy_cls", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "biapy-cls" in version.stdout


def test_missing_config_flag(run_biapy):
    code, _, err = run_biapy("--result_dir", "/tmp")
    assert code == 2 and "--config is required" in err


@pytest.mark.slow
def test_finished_run_is_not_overwritten_without_flag(tmp_path, small_digits_dir, run_biapy):
    config = write_yaml(tmp_path / "c.yaml", digits_config(small_digits_dir, TRAIN={"EPOCHS": 1}))
    args = ["--config", config, "--result_dir", tmp_path, "--name", "j"]
    assert run_biapy(*args)[0] == 0
    files = sorted(p for p in (tmp_path / "j").rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    code, _, err = run_biapy(*args)
    assert code == 2 and "--overwrite" in err and "Nothing was changed" in err
    assert {p: p.read_bytes() for p in files} == before
    assert sorted(p for p in (tmp_path / "j").rglob("*") if p.is_file()) == files
    code, _, err = run_biapy(*args, "--overwrite")
    assert code == 0, err
