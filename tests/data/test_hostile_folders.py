"""Folders a hostile user would hand over (issue 21, points 7, 8, 11, 25, 26, 28): nothing dropped without a
word, an order that does not depend on the file system, and messages that name the real problem."""

from __future__ import annotations

import io
import logging
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biapy_cls.data.discover import discover_labelled, discover_unlabelled
from biapy_cls.errors import DataError
from biapy_cls.evaluation.reports import csv_text, write_predictions


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_symlinks_and_subfolders_are_used_or_reported(tmp_path, caplog):
    root = tmp_path / "train"
    for k in range(3):
        _png(root / "a" / f"{k}.png")
    _png(tmp_path / "elsewhere" / "x1.png")
    _png(tmp_path / "elsewhere" / "x2.png")
    os.symlink(tmp_path / "elsewhere", root / "a" / "linked")  # a symlinked sub-folder: followed
    os.symlink(root / "a", root / "a" / "loop")  # a loop: read once
    os.symlink(tmp_path / "missing.png", root / "a" / "dangling.png")
    os.symlink("self.png", root / "a" / "self.png")  # a looping file link
    _png(root / "b" / "0.png")
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        samples, names = discover_labelled(root, "DATA.TRAIN.PATH", "2D")
    assert names == ["a", "b"]
    used = sorted(p.relative_to(root).as_posix() for p in samples.paths)
    assert used == ["a/0.png", "a/1.png", "a/2.png", "a/linked/x1.png", "a/linked/x2.png", "b/0.png"]
    assert "Skipped 2 file(s)" in caplog.text and "2 a broken or looping symbolic link" in caplog.text
    assert "a/dangling.png: a broken or looping symbolic link" in caplog.text and "a/self.png" in caplog.text


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_an_unreadable_subfolder_is_an_error_not_dropped(tmp_path):
    root = tmp_path / "train"
    _png(root / "a" / "0.png")
    _png(root / "a" / "hidden_from_me" / "1.png")
    _png(root / "b" / "0.png")
    (root / "a" / "hidden_from_me").chmod(0)
    try:
        with pytest.raises(DataError, match="Permission denied: the folder .*hidden_from_me"):
            discover_labelled(root, "DATA.TRAIN.PATH", "2D")
    finally:
        (root / "a" / "hidden_from_me").chmod(0o755)


def test_an_unreadable_folder_says_permission_denied(tmp_path, monkeypatch):
    """Also checked as root (who reads everything): the check is os.access, as for any user."""
    root = tmp_path / "train"
    _png(root / "a" / "0.png")
    _png(root / "b" / "0.png")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith("/b") else real(p, mode))
    with pytest.raises(DataError) as err:
        discover_labelled(root, "DATA.TRAIN.PATH", "2D")
    assert "Permission denied: the folder" in str(err.value) and "holds no image files" not in str(err.value)


def test_class_folders_that_differ_only_by_case_are_refused(tmp_path):
    for name in ("zero", "Zero", "one"):
        _png(tmp_path / "t" / name / "0.png")
    with pytest.raises(DataError) as err:
        discover_labelled(tmp_path / "t", "DATA.TRAIN.PATH", "2D")
    message = flat(str(err.value))
    assert "DATA.TRAIN.PATH" in message and str(tmp_path / "t") in message
    assert "differ only by case: 'Zero' and 'zero'" in message and "Windows and macOS" in message


def test_class_order_is_total_whatever_the_listing(tmp_path, monkeypatch):
    """`a01` and `a1` have the same natural key: the exact name breaks the tie, not the file system."""
    for name in ("a1", "a01", "b"):
        _png(tmp_path / "t" / name / "0.png")
    _, first = discover_labelled(tmp_path / "t", "DATA.TRAIN.PATH", "2D")
    real_iterdir = type(tmp_path).iterdir
    monkeypatch.setattr(type(tmp_path), "iterdir", lambda self: reversed(list(real_iterdir(self))))
    _, names = discover_labelled(tmp_path / "t", "DATA.TRAIN.PATH", "2D")
    assert names == first == ["a01", "a1", "b"]


def test_a_test_folder_differing_by_case_is_named(tmp_path):
    _png(tmp_path / "test" / "Zero" / "0.png")
    with pytest.raises(DataError, match="matched with their case \\('Zero' is 'zero' there\\)"):
        discover_labelled(tmp_path / "test", "DATA.TEST.PATH", "2D", ["one", "zero"])


def test_pngs_in_a_3d_run_say_png_is_2d(tmp_path):
    _png(tmp_path / "t" / "a" / "0.png")
    _png(tmp_path / "t" / "b" / "0.png")
    with pytest.raises(DataError) as err:
        discover_labelled(tmp_path / "t", "DATA.TRAIN.PATH", "3D")
    assert "a 2D format, but PROBLEM.NDIM is 3D" in str(err.value) and "set PROBLEM.NDIM 2D" in str(err.value)
    with pytest.raises(DataError, match="a 2D format"):
        discover_unlabelled(tmp_path / "t", "DATA.TEST.PATH", "3D")


def test_load_gt_on_a_flat_folder_suggests_load_gt_false(tmp_path):
    _png(tmp_path / "test" / "0.png")
    with pytest.raises(DataError, match="set DATA.TEST.LOAD_GT False to predict their classes"):
        discover_labelled(tmp_path / "test", "DATA.TEST.PATH", "2D", ["a", "b"])


NAMES = ["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "'=quoted", "''", "'plain", "normal", "-"]


@pytest.mark.parametrize("name", NAMES)
def test_csv_text_round_trips(name):
    escaped = csv_text(name)
    assert not escaped.startswith(("=", "+", "-", "@", "\t", "\r"))
    recovered = escaped[1:] if escaped[:1] == "'" and escaped[1:2] in ("=", "+", "-", "@", "'", "\t", "\r") else escaped
    assert recovered == name


def test_predictions_csv_holds_no_formula(tmp_path):
    """Read back with pandas and with a spreadsheet reader (openpyxl, through an .xlsx written by pandas)."""
    classes = ["=HYPERLINK('http://x')", "+plus", "@at"]
    files = ["=cmd|' /C calc'!A0.png", "-1.png", "fine.png"]
    probs = np.eye(3)
    write_predictions(tmp_path / "p.csv", files, probs, classes, np.arange(3))
    table = pd.read_csv(tmp_path / "p.csv")
    for column in ("filename", "class_name", "true_class_name"):
        assert not table[column].astype(str).str.match(r"^[=+\-@]").any(), column
    assert table["filename"].tolist() == ["'" + f if f[0] in "=-" else f for f in files]
    import openpyxl  # a spreadsheet reader: it stores a text cell starting with "=" as a formula
    buffer = io.BytesIO()
    table.to_excel(buffer, index=False)
    sheet = openpyxl.load_workbook(buffer).active
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
