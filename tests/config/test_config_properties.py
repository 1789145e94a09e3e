"""Property test: whatever a user writes for whatever key, loading the config ends in a valid config or
in the tool's own error (a UserError with a message) - never in another exception."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biapy_cls.api_config import deep_merge
from biapy_cls.config import compat
from biapy_cls.config.load import all_keys
from biapy_cls.configure import load_config
from biapy_cls.errors import UserError

KEYS = all_keys() + list(compat.RENAMED) + ["TRAIN.EPOCS", "DATA.TRAIN", "MODEL", "FOO.BAR", "AUGMENTOR.ZFLIP",
                                            "DATA.PATCH_SIZE.X", "PROBLEM.SEMANTIC_SEG.IGNORE_CLASS_ID"]
BASE = {"PROBLEM": {"TYPE": "CLASSIFICATION", "NDIM": "2D"}, "TRAIN": {"ENABLE": True}, "TEST": {"ENABLE": True},
        "DATA": {"TRAIN": {"PATH": "/data/train"}, "TEST": {"PATH": "/data/test"}}}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["(32, 32, 1)", "[1, 2]", "1e-4", "-1", "nan", "True", "{}", "()", "'x'"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=5), scalars, max_size=2))


def nest(key: str, value) -> dict:
    out: dict = {}
    node = out
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=4),
       override=st.tuples(st.sampled_from(KEYS), st.text(max_size=12)))
def test_any_value_for_any_key_gives_a_config_or_our_error(tmp_path, pairs, override):
    cfg = yaml.safe_load(yaml.safe_dump(BASE))
    for key, value in pairs:
        deep_merge(cfg, nest(key, value))
    path = tmp_path / "random.yaml"
    path.write_text(yaml.safe_dump(cfg))
    try:
        loaded, _ = load_config(path, list(override))
    except UserError as err:
        assert str(err).strip()
    else:
        assert loaded.PROBLEM.TYPE == "CLASSIFICATION"
