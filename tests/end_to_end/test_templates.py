"""Every shipped template loads and runs one epoch on tiny data, with only the paths (and size) overridden."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from biapy_cls.configure import load_config
from conftest import ROOT, assert_self_contained

TEMPLATES = sorted((ROOT / "templates" / "classification").glob("*.yaml"))


def test_biapy_templates_are_all_there():
    names = {p.name for p in TEMPLATES}
    assert {"2d_classification.yaml", "2d_classification_rgb.yaml", "3d_classification.yaml"} <= names


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_template_loads_without_notices(template):
    cfg, notices = load_config(template, [])
    assert notices == []  # no renamed or ignored keys: templates show the current spelling
    assert cfg.TRAIN.ENABLE and cfg.TEST.ENABLE


CLASSES = ("0_zero", "1_one", "2_two")
N_TRAIN, N_TEST = 10, 4


def digits_subset(digits: Path, out: Path, to_volume=None) -> Path:
    """3 classes x (10 train + 4 test) real digits; as (8, 32, 32) volumes when `to_volume` is given."""
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        for name in CLASSES:
            folder = out / split / name
            folder.mkdir(parents=True)
            for i, png in enumerate(sorted((digits / split / name).glob("*.png"))[:n]):
                if to_volume is None:
                    (folder / png.name).write_bytes(png.read_bytes())
                else:
                    tifffile.imwrite(folder / f"vol_{i}.tif", to_volume(np.asarray(Image.open(png))))
    return out


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory, small_digits_dir) -> Path:
    return digits_subset(small_digits_dir, tmp_path_factory.mktemp("tiny_digits"))


@pytest.fixture(scope="module")
def small_volumes(tmp_path_factory, small_digits_dir) -> Path:
    """A digit repeated along z with noise: (8, 32, 32) uint8 volumes."""
    rng = np.random.default_rng(0)

    def to_volume(image: np.ndarray) -> np.ndarray:
        volume = np.stack([image.astype(np.int16) + rng.integers(-10, 10, image.shape) for _ in range(8)])
        return np.clip(volume, 0, 255).astype(np.uint8)

    return digits_subset(small_digits_dir, tmp_path_factory.mktemp("volumes"), to_volume)


def overrides_for(template: Path, digits: Path, volumes: Path) -> list[str]:
    raw = yaml.safe_load(template.read_text())
    three_d = raw["PROBLEM"]["NDIM"] == "3D"
    data = volumes if three_d else digits
    opts = [
        "DATA.TRAIN.PATH",
        data / "train",
        "DATA.TEST.PATH",
        data / "test",
        "TRAIN.EPOCHS",
        "1",
        "DATA.N_CLASSES",
        "-1",
        "SYSTEM.NUM_WORKERS",
        "0",
        "AUGMENTOR.AUG_SAMPLES",
        "False",
    ]  # samples: tested elsewhere
    if not raw["DATA"].get("VAL", {}).get("FROM_TRAIN", True):
        opts += ["DATA.VAL.PATH", data / "test"]
    if template.name == "2d_classification_rgb.yaml":  # grayscale digits as RGB, smaller to keep the test fast
        opts += ["DATA.FORCE_RGB", "True", "DATA.PATCH_SIZE", "(64, 64, 3)"]
    return [str(o) for o in opts]


@pytest.mark.slow
@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_template_runs_one_epoch(template, tiny_digits, small_volumes, tmp_path, run_biapy):
    opts = overrides_for(template, tiny_digits, small_volumes)
    code, out, err = run_biapy("--config", template, "--result_dir", tmp_path, "--name", template.stem,
                               "--run_id", "1", *opts)
    assert code == 0, err
    results = tmp_path / template.stem / "results" / f"{template.stem}_1"
    metrics = json.loads((results / "test_metrics.json").read_text())
    assert {c: metrics["per_class"][c]["support"] for c in metrics["per_class"]} == {c: N_TEST for c in CLASSES}
    assert (results / "predictions.csv").read_text().count("\n") == len(CLASSES) * N_TEST + 1
    report = (results / "report.html").read_text()
    assert_self_contained(report)
    assert "<h2>Training</h2>" in report and "<h2>Confusion matrix</h2>" in report
