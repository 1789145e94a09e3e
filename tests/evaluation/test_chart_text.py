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
