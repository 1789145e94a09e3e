"""DATA.*.FILTER_SAMPLES on the real digits: which images go, what is written, and when it is an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.configure import validate
from biapy_cls.data.plan import plan_test_data, plan_training_data
from biapy_cls.errors import ConfigError, DataError


def raw_means(folder: Path) -> dict[str, float]:
    """Independent measurement: each PNG's mean with PIL and numpy."""
    return {p.relative_to(folder).as_posix(): float(np.asarray(Image.open(p)).mean()) for p in folder.rglob("*.png")}


def config(train: Path, **filters):
    cfg = get_cfg_defaults()
    cfg.TRAIN.ENABLE = True
    cfg.DATA.TRAIN.PATH = str(train)
    cfg.DATA.PATCH_SIZE = (32, 32, 1)
    cfg.DATA.NORMALIZATION.TYPE = "div"
    for split, (props, values, signs) in filters.items():
        f = cfg.DATA[split].FILTER_SAMPLES
        f.ENABLE, f.PROPS, f.VALUES, f.SIGNS = True, props, values, signs
    return cfg


def test_removes_exactly_the_images_meeting_a_condition_group(small_digits_dir):
    train = small_digits_dir / "train"
    means = raw_means(train)
    cfg = config(train, TRAIN=([["mean"], ["mean", "max"]], [[95], [70, 255]], [["gt"], ["lt", "ge"]]))
    validate(cfg)
    plan = plan_training_data(cfg)
    # any group: mean > 95, or (mean < 70 and max >= 255); the digits' maximum is 255
    expected = {name for name, m in means.items() if m > 95 or m < 70}
    kept = {p.relative_to(train).as_posix() for p in plan.train.paths + plan.val.paths}
    assert kept == set(means) - expected and 0 < len(expected) < len(means) / 2
    rows = plan.filtered[0].rows
    assert {r["filename"] for r in rows} == expected
    assert {r["condition"] for r in rows} <= {"mean > 95", "mean < 70 and max >= 255"}
    assert all(r["class"] == r["filename"].split("/")[0] for r in rows)
    # the log line counts per condition and class
    removed = f"DATA.TRAIN.FILTER_SAMPLES removed {len(expected)} of {len(means)} training images"
    assert plan.notes[0].startswith(removed)


def test_norm_before_measures_on_the_normalised_image(small_digits_dir):
    """With div normalisation, 95/255 on the normalised image removes what 95 removes on the raw one."""
    train = small_digits_dir / "train"
    raw = plan_training_data(config(train, TRAIN=([["mean"]], [[95]], [["gt"]])))
    cfg = config(train, TRAIN=([["mean"]], [[95 / 255]], [["gt"]]))
    cfg.DATA.TRAIN.FILTER_SAMPLES.NORM_BEFORE = True
    normed = plan_training_data(cfg)
    assert {r["filename"] for r in normed.filtered[0].rows} == {r["filename"] for r in raw.filtered[0].rows}


def test_ge_and_gt_differ_at_the_boundary(small_digits_dir):
    train = small_digits_dir / "train"
    least = min(raw_means(train).values())
    assert any(plan_training_data(config(train, TRAIN=([["mean"]], [[least]], [["le"]]))).filtered[0].rows)
    assert not plan_training_data(config(train, TRAIN=([["mean"]], [[least]], [["lt"]]))).filtered[0].rows


def test_test_filter_and_the_csv(small_digits_dir, tmp_path):
    from biapy_cls.data.plan import write_filtered_samples
    from biapy_cls.outputs import RunPaths

    cfg = config(small_digits_dir / "train", TEST=([["mean"]], [[90]], [["gt"]]))
    cfg.TEST.ENABLE, cfg.DATA.TEST.PATH = True, str(small_digits_dir / "test")
    plan = plan_test_data(cfg, plan_training_data(cfg))
    expected = {n for n, m in raw_means(small_digits_dir / "test").items() if m > 90}
    assert len(plan.test) == 60 - len(expected) and expected
    paths = RunPaths.create(str(tmp_path), "job", 1, "c.yaml")
    write_filtered_samples(paths, plan)
    lines = (paths.results_dir / "filtered_samples.csv").read_text().splitlines()
    assert lines[0] == "split,filename,class,condition,values" and len(lines) == 1 + len(expected)
    assert all(line.startswith("test,") for line in lines[1:])


def test_a_filter_that_removes_a_whole_class_is_an_error(small_digits_dir, tmp_path):
    train = tmp_path / "train"
    for name in ("0_zero", "1_one"):
        shutil.copytree(small_digits_dir / "train" / name, train / name)
    for p in (train / "1_one").glob("*.png"):  # inverted: every image of this class is bright
        Image.fromarray(255 - np.asarray(Image.open(p))).save(p)
    with pytest.raises(DataError, match="every training image of class 1_one"):
        plan_training_data(config(train, TRAIN=([["mean"]], [[128]], [["gt"]])))
    with pytest.raises(DataError, match="removes every one of the 48 training images"):
        plan_training_data(config(train, TRAIN=([["max"]], [[0]], [["gt"]])))


@pytest.mark.parametrize("props, values, signs, message", [
    ([["foreground"]], [[0.1]], [["lt"]], "segmentation mask"),
    ([["median"]], [[1]], [["lt"]], "not a property"),
    ([["mean"]], [[1]], [["<"]], "not a comparison"),
    ([["mean", "max"]], [[1]], [["lt", "gt"]], "same nesting"),
    (["mean"], [1], ["lt"], "lists of lists"),
    ([], [], [], "PROPS is empty"),
])
def test_bad_conditions_are_config_errors(props, values, signs, message):
    cfg = config(Path("unused"), VAL=(props, values, signs))
    with pytest.raises(ConfigError, match=message) as err:
        validate(cfg)
    assert "DATA.VAL.FILTER_SAMPLES" in str(err.value)
