"""`python -m biapy_cls` behaves like the `biapy` command, exit status included."""

from __future__ import annotations

import runpy
import sys

import pytest


def test_python_dash_m_returns_the_error_status(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["biapy_cls"])  # no --config: a user error
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("biapy_cls", run_name="__main__")
    assert exit_info.value.code == 2
    assert "--config is required" in capsys.readouterr().err
