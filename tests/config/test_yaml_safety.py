"""Config files that used to be read wrongly or exhaust memory (issue 21, points 10, 13, 16, 20, 29)."""

from __future__ import annotations

import pytest

from tests.conftest import digits_config, write_yaml


def _run(run_biapy, tmp_path, config_text: str, *extra: str):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config_text)
    out = tmp_path / "out"
    code, _, err = run_biapy("--config", cfg, "--result_dir", out, "--name", "j", *extra)
    return code, " ".join(err.split()), out  # the message is wrapped to the terminal width


def test_a_duplicate_section_is_refused_with_both_lines(run_biapy, tmp_path):
    text = ("PROBLEM:\n  NDIM: 2D\nDATA:\n  PATCH_SIZE: (32, 32, 1)\nTRAIN:\n  EPOCHS: 3\nDATA:\n"
            "  NORMALIZATION:\n    TYPE: div\n")
    code, err, out = _run(run_biapy, tmp_path, text)
    assert code == 2
    assert "gives 'DATA' twice in the same section, at lines 3 and 7" in err
    assert not out.exists()


def test_a_duplicate_key_in_a_section_is_refused(run_biapy, tmp_path):
    code, err, _ = _run(run_biapy, tmp_path, "TRAIN:\n  EPOCHS: 3\n  LR: 0.1\n  EPOCHS: 30\n")
    assert code == 2 and "'EPOCHS' twice in the same section, at lines 2 and 4" in err


def test_yaml_merge_keys_and_anchors_still_work(tmp_path):
    from biapy_cls.config.load import read_yaml

    (tmp_path / "a.yaml").write_text("BASE: &b\n  EPOCHS: 3\nTRAIN:\n  <<: *b\n  LR: 0.1\n")
    assert read_yaml(tmp_path / "a.yaml")["TRAIN"] == {"EPOCHS": 3, "LR": 0.1}


def test_billion_laughs_is_refused_without_exhausting_memory(run_biapy, tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    code, err, out = _run(run_biapy, tmp_path, "\n".join(lines) + "\nTRAIN:\n  EPOCHS: *a9\n")
    assert code == 2 and "anchors and aliases expand to more than 1,000,000 values" in err
    assert not out.exists()


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n"])
def test_an_empty_config_file_says_it_is_empty(run_biapy, tmp_path, text):
    code, err, out = _run(run_biapy, tmp_path, text)
    assert code == 2 and "c.yaml' is empty" in err and "templates/classification/2d_classification.yaml" in err
    assert not out.exists()


def test_a_seed_beyond_32_bits_is_refused_in_the_check(run_biapy, small_digits_dir, tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", digits_config(small_digits_dir, SYSTEM={"SEED": 2**32}))
    code, _, err = run_biapy("--config", cfg, "--result_dir", tmp_path / "out", "--name", "j")
    err = " ".join(err.split())
    assert code == 2 and "SYSTEM.SEED is 4294967296; it must be between 0 and 4294967295" in err
    assert not (tmp_path / "out").exists()


def test_zero_epochs_with_training_is_refused(run_biapy, small_digits_dir, tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", digits_config(small_digits_dir, TRAIN={"ENABLE": True, "EPOCHS": 0}))
    code, _, err = run_biapy("--config", cfg, "--result_dir", tmp_path / "out", "--name", "j")
    err = " ".join(err.split())
    assert code == 2 and "TRAIN.EPOCHS is 0 with TRAIN.ENABLE True" in err and "random weights" in err
    assert not (tmp_path / "out").exists()
