"""Config values of the hostile pass (docs/hostile_pass.md). SYSTEM.NUM_WORKERS above the CPU count (1000 workers on
2 CPUs hung a run for minutes before its first batch) is capped at the CPUs with a warning; keys in lower case."""

from __future__ import annotations

import os

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.config.settings import SystemSettings, workers_capped


def _cfg(tmp_path, workers):
    cfg = get_cfg_defaults()
    cfg.SYSTEM.NUM_WORKERS = workers
    return cfg


def test_more_workers_than_cpus_are_capped_with_a_warning(tmp_path):
    cpus = os.cpu_count() or 1
    cfg = _cfg(tmp_path, 1000)
    assert SystemSettings.from_cfg(cfg).num_workers == cpus
    assert workers_capped(cfg) == (
        f"SYSTEM.NUM_WORKERS is 1000, more than the {cpus} CPU(s) of this machine: {cpus} worker process(es) are "
        "used (more would only compete for the same CPUs and memory).")


def test_workers_within_the_cpus_are_kept(tmp_path):
    cfg = _cfg(tmp_path, 1)
    assert SystemSettings.from_cfg(cfg).num_workers == 1 and workers_capped(cfg) is None
    assert workers_capped(_cfg(tmp_path, -1)) is None


def test_a_key_in_lower_case_is_named_in_upper_case():
    """Hostile pass: `train.epochs 2` on the command line got no suggestion at all."""
    from biapy_cls.config.load import all_keys, suggest

    assert suggest("train.epochs", all_keys()) == " Did you mean TRAIN.EPOCHS?"
    assert suggest("data.train.path", all_keys()) == " Did you mean DATA.TRAIN.PATH?"
