"""Every config error says where the value came from: the YAML file by name, or the command line."""

from __future__ import annotations

import pytest

from biapy_cls.configure import load_config
from biapy_cls.errors import ConfigError


def _yaml(tmp_path, data: str = "", train: str = ""):
    """A test-only config; `data` and `train` are extra lines of the DATA and TRAIN sections."""
    path = tmp_path / "my_run.yaml"
    path.write_text(f"PROBLEM:\n  NDIM: 2D\nTRAIN:\n  ENABLE: False\n{train}TEST:\n  ENABLE: True\n"
                    f"DATA:\n  TEST:\n    PATH: x\n{data}")
    return path


def test_unparsable_patch_size_names_the_file_and_gives_a_useful_example(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_yaml(tmp_path, data="  PATCH_SIZE: (32, 32, 1\n"))
    message = str(err.value)
    assert "DATA.PATCH_SIZE (in 'my_run.yaml') must be a list" in message
    assert "(256, 256, 1)" in message and "Example: DATA.PATCH_SIZE: ()" not in message


def test_value_check_names_the_yaml_or_the_command_line(tmp_path):
    config = _yaml(tmp_path, train="  LR: -1.0\n")
    with pytest.raises(ConfigError, match=r"TRAIN\.LR is -1\.0.*\(Set: TRAIN\.LR in 'my_run\.yaml'\.\)"):
        load_config(config)
    with pytest.raises(ConfigError, match=r"TRAIN\.BATCH_SIZE is 0.*\(Set: TRAIN\.BATCH_SIZE in the command line\.\)"):
        load_config(config, ["TRAIN.LR", "0.1", "TRAIN.BATCH_SIZE", "0"])


def test_biapy_list_form_of_the_optimizer_keys_is_read(tmp_path):
    """BiaPy 3.7 writes TRAIN.OPTIMIZER / LR / OPT_BETAS as one-entry lists (one per optimizer)."""
    config = _yaml(tmp_path, train="  OPTIMIZER: [ADAMW]\n  LR: [1.e-3]\n  OPT_BETAS: [[0.8, 0.9]]\n")
    cfg, _ = load_config(config)
    assert (cfg.TRAIN.OPTIMIZER, cfg.TRAIN.LR, tuple(cfg.TRAIN.OPT_BETAS)) == ("ADAMW", 1e-3, (0.8, 0.9))
    with pytest.raises(ConfigError, match=r"TRAIN\.LR in the command line lists 2 values"):
        load_config(config, ["TRAIN.LR", "[1e-3, 1e-4]"])


@pytest.mark.parametrize("key, close", [("AUGMENTOR.SHEER_RANGE", "AUGMENTOR.SHEAR_RANGE"),
                                        ("DATA.PREPROCES.TRAIN", "DATA.PREPROCESS.TRAIN"),
                                        ("MODEL.BMZ.EXPORT.ENABEL", "MODEL.BMZ.EXPORT.ENABLE")])
def test_a_typo_of_a_biapy_key_is_refused_with_the_closest_key(tmp_path, key, close):
    expected = rf"Unknown config key {key} \(in the command line\)\. Did you mean {close}\?"
    with pytest.raises(ConfigError, match=expected):
        load_config(_yaml(tmp_path), [key, "1"])


def test_every_biapy_key_is_accepted_at_its_default(tmp_path):
    """A YAML written by BiaPy 3.7.1 (every key at its default) loads."""
    from biapy_cls.config.biapy_keys import BIAPY_DEFAULTS

    overrides = []
    for key, value in BIAPY_DEFAULTS.items():
        if key.startswith(("PROBLEM.", "DATA.TEST.PATH", "TRAIN.ENABLE", "TEST.ENABLE", "DATA.PATCH_SIZE",
                           "MODEL.ARCHITECTURE", "TRAIN.METRICS", "TEST.METRICS", "DATA.N_CLASSES",
                           "LOSS.CLASS_REBALANCE", "DATA.NORMALIZATION.TYPE", "MODEL.VIT_", "MODEL.DROPOUT_VALUES",
                           "TRAIN.LR_SCHEDULER.MIN_LR", "LOSS.TYPE", "TRAIN.OPT_BETAS", "DATA.VAL.CROSS_VAL_FOLD")):
            continue  # values BiaPy's own checks set for other workflows, or ones this test fixes above
        overrides += [key, repr(value) if not isinstance(value, str) else (value or "''")]
    load_config(_yaml(tmp_path), overrides)


def test_refused_list_names_only_biapy_keys_that_are_not_ours():
    from biapy_cls.config import compat
    from biapy_cls.config.biapy_keys import BIAPY_DEFAULTS
    from biapy_cls.config.load import all_keys

    ours = set(all_keys())
    assert set(compat.UNSUPPORTED_KEYS) <= set(BIAPY_DEFAULTS)  # exact BiaPy names, no patterns
    assert set(compat.UNSUPPORTED_KEYS).isdisjoint(ours)  # a key we implement is not refused
    assert not any(key.startswith(("DATA.PREPROCESS.", "DATA.TRAIN.REPLICATE")) or ".FILTER_SAMPLES." in key
                   for key in compat.UNSUPPORTED_KEYS)
