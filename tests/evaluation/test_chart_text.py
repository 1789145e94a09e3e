"""Names are text in charts, never TeX (issue 21, point 15): '$^^$' in a class or run name crashed mathtext."""

from __future__ import annotations

from biapy_cls.evaluation.reports import plot_confusion, plot_history

NAME = "$^^$"  # also the run name: plot_history draws without pyplot


def test_history_charts_alone_take_tex_like_run_names(tmp_path):
    history = [{"epoch": 1, "train_loss": 1.0, "lr": 0.1}, {"epoch": 2, "train_loss": 0.5, "lr": 0.1}]
    plot_history(history, tmp_path, NAME)  # first, so no pyplot setting of an earlier chart helps it
    assert any(p.name.endswith("_loss.png") for p in tmp_path.iterdir())


def test_tex_like_names_do_not_break_the_charts(tmp_path):
    plot_confusion([[1, 0], [0, 1]], [NAME, "a$^^$b"], tmp_path / "cm.png", f"Confusion - {NAME}")
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "lr": 0.1},
               {"epoch": 2, "train_loss": 0.5, "val_loss": 0.7, "lr": 0.1}]
    plot_history(history, tmp_path, NAME)
    assert (tmp_path / "cm.png").stat().st_size > 1000
    assert any(p.name.endswith("_loss.png") for p in tmp_path.iterdir())


def test_names_in_scripts_the_font_lacks_draw_without_warnings(tmp_path):
    """Hostile pass: a CJK class name printed two matplotlib 'Glyph missing' warnings per chart. Run in a fresh
    interpreter, with the warning filters a run has (pytest resets those set while importing the tests)."""
    import subprocess
    import sys

    code = ("from pathlib import Path; from biapy_cls.evaluation.reports import plot_confusion, plot_history; "
            f"out = Path({str(tmp_path)!r}); "
            "plot_confusion([[1, 0], [0, 1]], ['classe 中', 'b'], out / 'cm.png', 'Confusion 中'); "
            "plot_history([{'epoch': 1, 'train_loss': 1.0, 'lr': 0.1}], out, '运行')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cm.png").stat().st_size > 1000
    assert "missing from font" not in result.stderr
