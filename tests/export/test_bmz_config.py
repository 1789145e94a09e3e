"""MODEL.BMZ.* and MODEL.SOURCE bmz are checked as BiaPy checks them, before anything is trained or written."""

from __future__ import annotations

import pytest

from biapy_cls.configure import load_config
from biapy_cls.errors import ConfigError
from conftest import digits_config, write_yaml

GOOD = {"ENABLE": True, "MODEL_NAME": "Digits", "DESCRIPTION": "Digits.", "LICENSE": "MIT",
        "AUTHORS": [{"name": "Jane Doe", "github_user": "janedoe", "affiliation": "Lab"}], "TAGS": ["digits"],
        "CITE": [{"text": "UCI", "doi": "10.24432/C50P49"}],
        "DATASET_INFO": [{"name": "UCI digits", "doi": "10.24432/C50P49", "image_modality": "photography",
                          "dataset_id": "x/y"}], "MODEL_VERSION": "1.2.0"}


def load(tmp_path, data, model: dict, **sections):
    cfg = digits_config(data, MODEL={"ARCHITECTURE": "simple_cnn", **model}, **sections)
    return load_config(write_yaml(tmp_path / "c.yaml", cfg))


def test_biapy_export_keys_are_accepted_unchanged(tmp_path, small_digits_dir):
    pytest.importorskip("bioimageio.core")
    cfg, _ = load(tmp_path, small_digits_dir, {"BMZ": {"EXPORT": GOOD}, "OUT_CHECKPOINT_FORMAT": "safetensors"})
    assert cfg.MODEL.BMZ.EXPORT.AUTHORS[0]["github_user"] == "janedoe"
    assert cfg.MODEL.BMZ.EXPORT.DATASET_INFO[0]["image_modality"] == "photography"
    assert cfg.MODEL.OUT_CHECKPOINT_FORMAT == "safetensors"


@pytest.mark.parametrize("change, message", [
    ({"MODEL_NAME": ""}, "MODEL.BMZ.EXPORT.MODEL_NAME must be set"),
    ({"DESCRIPTION": ""}, "MODEL.BMZ.EXPORT.DESCRIPTION must be set"),
    ({"AUTHORS": []}, "give at least one author"),
    ({"AUTHORS": [{"name": "Jane"}]}, "lacks github_user"),
    ({"AUTHORS": [{"name": "Jane", "github_user": "j", "twitter": "x"}]}, "unknown key(s) twitter"),
    ({"TAGS": []}, "MODEL.BMZ.EXPORT.TAGS must be a non-empty list"),
    ({"CITE": [{"doi": "10.1/x"}]}, "lacks text"),
    ({"CITE": [{"text": "only text"}]}, "needs a 'doi' or a 'url'"),
    ({"DATASET_INFO": [{"name": "a"}, {"name": "b"}]}, "must be a list with one dict"),
    ({"DATASET_INFO": [{"name": "a", "size": 3}]}, "unknown key(s) size"),
    ({"MODEL_VERSION": "v1"}, "MAJOR.MINOR.PATCH"),
    ({"DOCUMENTATION": "/no/such/doc.md"}, "is not a file"),
    ({"REUSE_BMZ_CONFIG": True}, "no package description to reuse"),
])
def test_bad_export_settings_are_refused_before_the_run(tmp_path, small_digits_dir, change, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, small_digits_dir, {"BMZ": {"EXPORT": {**GOOD, **change}}})
    assert message in str(err.value)


def test_export_refuses_data_preprocessing_it_cannot_carry(tmp_path, small_digits_dir):
    with pytest.raises(ConfigError, match="cannot be combined with DATA.PREPROCESS"):
        load(tmp_path, small_digits_dir, {"BMZ": {"EXPORT": GOOD}},
             DATA={"PREPROCESS": {"TRAIN": True}, "TRAIN": {"PATH": str(small_digits_dir / "train")}})


def test_documentation_must_be_markdown(tmp_path, small_digits_dir):
    doc = tmp_path / "doc.txt"
    doc.write_text("x")
    with pytest.raises(ConfigError, match="must be a Markdown"):
        load(tmp_path, small_digits_dir, {"BMZ": {"EXPORT": {**GOOD, "DOCUMENTATION": str(doc)}}})


def test_bmz_source_needs_a_model_id_and_an_id_needs_the_bmz_source(tmp_path, small_digits_dir):
    with pytest.raises(ConfigError, match="MODEL.BMZ.SOURCE_MODEL_ID is empty"):
        load(tmp_path, small_digits_dir, {"SOURCE": "bmz"})
    with pytest.raises(ConfigError, match="set MODEL.SOURCE bmz"):
        load(tmp_path, small_digits_dir, {"BMZ": {"SOURCE_MODEL_ID": "affable-shark"}})


def test_without_the_bmz_extra_export_fails_before_any_output_with_the_install_command(
        tmp_path, small_digits_dir, run_biapy, monkeypatch):
    from biapy_cls.export import settings

    monkeypatch.setattr(settings, "bmz_installed", lambda: False)
    cfg = digits_config(small_digits_dir, MODEL={"ARCHITECTURE": "simple_cnn", "BMZ": {"EXPORT": GOOD}})
    code, _, err = run_biapy("--config", write_yaml(tmp_path / "c.yaml", cfg), "--result_dir", tmp_path / "out",
                             "--name", "job")
    assert code == 2
    assert "pip install 'biapy-cls[bmz]'" in " ".join(err.split())  # the message is wrapped for the terminal
    assert not (tmp_path / "out" / "job").exists()


def test_an_unreadable_package_is_a_clear_error(tmp_path, small_digits_dir, run_biapy):
    pytest.importorskip("bioimageio.core")
    bad = tmp_path / "not_a_model.zip"
    bad.write_bytes(b"not a zip")
    cfg = digits_config(small_digits_dir, TRAIN={"ENABLE": False},
                        MODEL={"SOURCE": "bmz", "BMZ": {"SOURCE_MODEL_ID": str(bad)}})
    code, _, err = run_biapy("--config", write_yaml(tmp_path / "c.yaml", cfg), "--result_dir", tmp_path / "out",
                             "--name", "job")
    assert code == 2
    assert "MODEL.BMZ.SOURCE_MODEL_ID" in err and "not_a_model.zip" in err
