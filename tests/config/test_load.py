"""Config loading: YAML + overrides, BiaPy spellings, and errors that name the key.

A missing file and bad YAML are tested through the CLI in tests/cli/test_user_errors.py."""

from __future__ import annotations

import pytest

from biapy_cls.config import get_cfg_defaults
from biapy_cls.config.load import all_keys
from biapy_cls.configure import load_config
from biapy_cls.errors import ConfigError
from conftest import write_yaml

BASE = {"PROBLEM": {"TYPE": "CLASSIFICATION"}, "TRAIN": {"ENABLE": True}, "DATA": {"TRAIN": {"PATH": "/data/train"}}}


def load(tmp_path, cfg: dict, *overrides: str):
    return load_config(write_yaml(tmp_path / "c.yaml", cfg), overrides)


def test_every_default_key_has_a_comment_line():
    import inspect

    from biapy_cls.config import defaults

    source = inspect.getsource(defaults).splitlines()
    for key in all_keys():
        line = next(i for i, text in enumerate(source) if text.startswith(f"_C.{key} ="))
        assert source[line - 1].lstrip().startswith("#"), f"{key} has no comment above it"


def test_yaml_then_overrides_take_effect(tmp_path):
    cfg, _ = load(tmp_path, {**BASE, "TRAIN": {"ENABLE": True, "EPOCHS": 7, "LR": 1.0e-4}}, "TRAIN.EPOCHS", "3")
    assert cfg.TRAIN.EPOCHS == 3
    assert cfg.TRAIN.LR == pytest.approx(1e-4)
    assert cfg.is_frozen()


def test_biapy_tuple_strings_and_scientific_notation_parse(tmp_path):
    text = ("PROBLEM:\n  TYPE: CLASSIFICATION\nDATA:\n  PATCH_SIZE: (28, 28, 1)\n  TRAIN:\n    PATH: /x\n"
            "TRAIN:\n  ENABLE: True\n  LR: 1.E-4\n")
    path = tmp_path / "b.yaml"
    path.write_text(text)
    cfg, _ = load_config(path)
    assert tuple(cfg.DATA.PATCH_SIZE) == (28, 28, 1)
    assert cfg.TRAIN.LR == pytest.approx(1e-4)


def test_override_of_a_tuple_and_an_int_to_float(tmp_path):
    cfg, _ = load(tmp_path, BASE, "DATA.PATCH_SIZE", "(16,16,3)", "TRAIN.LR", "1")
    assert tuple(cfg.DATA.PATCH_SIZE) == (16, 16, 3)
    assert cfg.TRAIN.LR == 1.0


def test_model_n_classes_is_translated_with_a_notice(tmp_path):
    cfg, notices = load(tmp_path, {**BASE, "MODEL": {"N_CLASSES": 7}})
    assert cfg.DATA.N_CLASSES == 7
    assert any("MODEL.N_CLASSES" in n and "DATA.N_CLASSES" in n for n in notices)


def test_unknown_key_suggests_the_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"Unknown config key TRAIN\.BATCHSIZE.*Did you mean TRAIN\.BATCH_SIZE\?"):
        load(tmp_path, {**BASE, "TRAIN": {"ENABLE": True, "BATCHSIZE": 4}})


def test_right_name_in_the_wrong_section_is_found(tmp_path):
    with pytest.raises(ConfigError, match=r"DATA\.EPOCHS.*Did you mean TRAIN\.EPOCHS\?"):
        load(tmp_path, {**BASE, "DATA": {"EPOCHS": 4, "TRAIN": {"PATH": "/x"}}})


def test_unsupported_biapy_key_is_rejected_unless_at_its_default(tmp_path):
    load(tmp_path, {**BASE, "TEST": {"BY_CHUNKS": {"ENABLE": False}}})  # BiaPy's default asks for nothing: accepted
    with pytest.raises(ConfigError, match=r"TEST\.BY_CHUNKS\.ENABLE.*does not implement.*True"):
        load(tmp_path, {**BASE, "TEST": {"BY_CHUNKS": {"ENABLE": True}}})


def test_biapy_torchvision_yaml_is_accepted(tmp_path):
    cfg, _ = load(tmp_path, {**BASE, "MODEL": {"SOURCE": "torchvision", "TORCHVISION_MODEL_NAME": "resnet18"}})
    assert cfg.MODEL.SOURCE == "torchvision" and cfg.MODEL.TORCHVISION_PRETRAINED is True


def test_segmentation_keys_of_a_biapy_yaml_are_accepted_with_a_notice(tmp_path):
    _, notices = load(tmp_path, {**BASE, "DATA": {"TRAIN": {"PATH": "/x", "GT_PATH": "/y"}}})
    assert any("DATA.TRAIN.GT_PATH" in n and "no effect" in n for n in notices)


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"TRAIN\.EPOCHS \(in the command line\) must be an integer.*'many'"):
        load(tmp_path, BASE, "TRAIN.EPOCHS", "many")


@pytest.mark.parametrize("key,value,words", [
    ("TRAIN.LR", "-0.1", "TRAIN.LR is -0.1"),
    ("DATA.VAL.SPLIT_TRAIN", "1.5", "DATA.VAL.SPLIT_TRAIN is 1.5"),
    ("PROBLEM.NDIM", "4D", "PROBLEM.NDIM is '4D'"),
    ("MODEL.ARCHITECTURE", "resnet", "simple_cnn, vit"),
    ("DATA.PATCH_SIZE", "(32, 32)", "needs 3 positive integers"),
    ("TRAIN.OPTIMIZER", "RMSPROP", "accepted values: 'SGD', 'ADAM', 'ADAMW'"),
])
def test_bad_values_are_reported_with_the_key(tmp_path, key, value, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load(tmp_path, BASE, key, value)


def test_other_workflows_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="CLASSIFICATION workflow only"):
        load(tmp_path, {**BASE, "PROBLEM": {"TYPE": "SEMANTIC_SEG"}})


def test_case_insensitive_choices_are_normalised(tmp_path):
    cfg, _ = load(tmp_path, BASE, "TRAIN.OPTIMIZER", "adamw", "MODEL.ARCHITECTURE", "Simple_CNN")
    assert cfg.TRAIN.OPTIMIZER == "ADAMW"


def test_nothing_to_do_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="nothing to do"):
        load(tmp_path, {"PROBLEM": {"TYPE": "CLASSIFICATION"}})


def test_defaults_are_independent_copies():
    a = get_cfg_defaults()
    a.TRAIN.EPOCHS = 1
    assert get_cfg_defaults().TRAIN.EPOCHS != 1
