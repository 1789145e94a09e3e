"""results/RUN/report.html: written at the end of a run, self-contained, with the expected sections."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import tifffile

from biapy_cls.config import get_cfg_defaults
from biapy_cls.evaluation.report_html import TestOutcome, render_report
from biapy_cls.outputs import RunPaths, atomic_write_text
from conftest import assert_self_contained


def write_pngs(folder, n):
    from PIL import Image

    files = []
    for i in range(n):
        files.append(folder / f"img_{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(files[-1])
    return files


def test_report_shows_metrics_curves_and_the_most_confident_errors(tmp_path):
    from biapy_cls.evaluation.metrics import test_metrics

    cfg = get_cfg_defaults()
    cfg.TRAIN.ENABLE = cfg.TEST.ENABLE = True
    cfg.AUGMENTOR.ENABLE = cfg.AUGMENTOR.HFLIP = True
    paths = RunPaths.create(str(tmp_path / "out"), "job", 1, "x.yaml")
    paths.log_dir.mkdir(parents=True)
    paths.training_log.write_text("".join(
        json.dumps({"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_accuracy": 0.5, "val_accuracy": 0.6,
                    "val_f1": 0.5, "lr": 1e-3, "seconds": 1.0}) + "\n" for e in (1, 2, 3)))
    files = write_pngs(tmp_path, 6)
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1],  # img_1: wrong, 70 %
                      [0.1, 0.8, 0.1], [0.05, 0.05, 0.9],  # img_3: wrong, 90 %
                      [0.1, 0.1, 0.8], [0.5, 0.2, 0.3]])  # img_5: wrong, 50 %
    names = ["cat <a>", "dog", "eel"]  # markup in a class name must be shown, not interpreted
    metrics = test_metrics(labels, probs, names)
    text = render_report(paths, cfg, names, TestOutcome(files, [f.name for f in files], probs, labels, metrics))
    assert_self_contained(text)
    for heading in ("Configuration", "Training", "Test metrics", "Confusion matrix", "Most confidently misclassified"):
        assert f"<h2>{heading}" in text
    assert "cat &lt;a&gt;" in text and "<a>" not in text
    assert text.count("<figure>") == 3  # the three errors, most confident first
    assert text.index("img_3.png") < text.index("img_1.png") < text.index("img_5.png")
    assert "img_0.png" not in text
    assert text.count("data:image/png;base64,") == 4  # the curves and three thumbnails
    assert f"{metrics['accuracy']:.4f}" in text
    assert re.search(r"Augmentation</td><td>([^<]*)<", text).group(1) == "HFLIP"  # not AUG_SAMPLES, DRAW_GRID


def test_report_for_unlabelled_3d_predictions(tmp_path):
    cfg = get_cfg_defaults()
    cfg.PROBLEM.NDIM, cfg.TEST.ENABLE = "3D", True
    files = []
    for i in range(5):
        files.append(tmp_path / f"vol_{i}.tif")
        tifffile.imwrite(files[-1], np.random.default_rng(i).integers(0, 255, (6, 20, 24), dtype=np.uint8))
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.4, 0.6], [0.99, 0.01]])
    paths = RunPaths.create(str(tmp_path / "out"), "job", 1, "x.yaml")
    text = render_report(paths, cfg, ["alive", "dead"], TestOutcome(files, [f.name for f in files], probs, None, None))
    assert_self_contained(text)
    assert "Least confident predictions" in text and "Test metrics" not in text
    assert text.count("<figure>") == 5 and text.count("data:image/png;base64,") == 5
    assert text.index("vol_1.tif") < text.index("vol_3.tif") < text.index("vol_4.tif")  # least confident first


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_honour_the_umask(tmp_path, umask):
    from biapy_cls.engine.checkpoint import save_checkpoint

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        save_checkpoint(tmp_path / "c.pth", {"epoch": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "c.pth").stat().st_mode & 0o777 == 0o666 & ~umask


def test_training_only_report_has_config_and_curves(tmp_path):
    cfg = get_cfg_defaults()
    cfg.TRAIN.ENABLE, cfg.TEST.ENABLE = True, False
    paths = RunPaths.create(str(tmp_path / "out"), "job", 1, "x.yaml")
    paths.log_dir.mkdir(parents=True)
    paths.training_log.write_text(json.dumps({"epoch": 1, "train_loss": 0.7, "train_accuracy": 0.6, "lr": 1e-3}) + "\n")
    text = render_report(paths, cfg, ["a", "b"])
    assert_self_contained(text)
    assert "<h2>Training</h2>" in text and "training run" in text and "Test metrics" not in text
    assert text.count("data:image/png;base64,") == 1


def test_best_epoch_follows_the_checkpoint_monitor(tmp_path):
    from biapy_cls.evaluation.report_html import training_section

    history = [{"epoch": 1, "val_loss": 0.5, "val_f1": 0.9}, {"epoch": 2, "val_loss": 0.4, "val_f1": 0.8}]
    assert "<b>2</b><span>best epoch</span>" in training_section(history, "val_loss")
    assert "<b>1</b><span>best epoch</span>" in training_section(history, "val_f1")
