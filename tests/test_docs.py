"""The configuration reference is generated from the code and must be current."""

from __future__ import annotations

from conftest import load_script


def test_configuration_reference_is_current():
    gen = load_script("gen_config_docs")
    assert gen.main(["--check"]) == 0, "docs/configuration.md is stale: run `python scripts/gen_config_docs.py`"


def test_every_default_key_is_documented_with_its_default():
    from biapy_cls.config.defaults import get_cfg_defaults

    gen = load_script("gen_config_docs")
    assert gen.undocumented_keys() == []
    text = gen.render()
    cfg = get_cfg_defaults()
    assert "| `TRAIN.EPOCHS` | `%d` |" % cfg.TRAIN.EPOCHS in text
    assert "div, scale_range, zero_mean_unit_variance" in text  # accepted values come from check.CHOICES
    assert "`MODEL.N_CLASSES` | `DATA.N_CLASSES`" in text  # compat.RENAMED


def test_check_mode_detects_a_stale_file(tmp_path, capsys):
    gen = load_script("gen_config_docs")
    out = tmp_path / "configuration.md"
    assert gen.main(["--output", str(out)]) == 0
    assert gen.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text().replace("Learning rate", "Learning speed"))
    assert gen.main(["--check", "--output", str(out)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_a_key_without_comment_is_reported(tmp_path):
    gen = load_script("gen_config_docs")
    source = tmp_path / "defaults.py"
    source.write_text("_C = CN()\n_C.A = CN()\n# Documented.\n_C.A.B = 1\n_C.A.C = (\n    1,\n    2,\n)\n")
    entries = {e.key: e.comment for e in gen.parse_defaults(source)}
    assert entries == {"A": "", "A.B": "Documented.", "A.C": ""}
