"""The docs stay true: the configuration reference is current, YAML examples load, the README links every doc."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT, load_script


def test_configuration_reference_is_current():
    gen = load_script("gen_config_docs")
    assert gen.main(["--check"]) == 0, "docs/configuration.md is stale: run `python scripts/gen_config_docs.py`"


def test_every_default_key_is_documented_with_its_default():
    from biapy_cls.config.defaults import get_cfg_defaults

    gen = load_script("gen_config_docs")
    assert gen.undocumented_keys() == []
    text = gen.render()
    cfg = get_cfg_defaults()
    assert f"| `TRAIN.EPOCHS` | `{cfg.TRAIN.EPOCHS}` |" in text
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
    source.write_text("_C = CN()\n_C.A = CN()\n# Documented.\n_C.A.B = 1\n_C.A.C = (\n    1,\n    2,\n)\n"
                      "if True:\n    # Nested.\n    _C.A.D = 2\n")
    entries = {e.key: e.comment for e in gen.parse_defaults(source)}
    assert entries == {"A": "", "A.B": "Documented.", "A.C": "", "A.D": "Nested."}


def yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", markdown, flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/quickstart.md"])
def test_yaml_examples_in_the_docs_are_valid_configs(doc, tmp_path):
    from biapy_cls.configure import load_config

    blocks = [b for b in yaml_blocks((ROOT / doc).read_text()) if "PROBLEM:" in b]
    assert blocks, f"{doc} has no complete YAML example"
    for i, block in enumerate(blocks):
        path = tmp_path / f"example_{i}.yaml"
        path.write_text(block)
        cfg, notices = load_config(path, [])
        assert notices == [] and cfg.TEST.ENABLE


def test_readme_links_to_every_doc():
    readme = (ROOT / "README.md").read_text()
    for doc in ("installation", "quickstart", "workflow", "configuration", "migrating_from_biapy", "docker",
                "distributed", "troubleshooting", "benchmarks", "models"):
        assert f"(docs/{doc}.md)" in readme
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{doc.name})" in readme, f"README does not link {doc.name}"
