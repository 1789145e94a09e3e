"""The checked config a run works from: defaults <- YAML (or the API's dict) <- command-line overrides,
checked by the config's own rules (config/check.py) and by each component for the keys it alone
understands (preprocessing, sample filters, the model source, the BMZ export), then frozen.

This module sits above config/, data/, models/ and export/, so that config/ never imports them.
Every problem found is reported at once, each naming its key and where its value was set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from yacs.config import CfgNode as CN

from biapy_cls.config.check import check_config
from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.config.load import flatten, merge, parse_overrides, read_yaml, with_origins
from biapy_cls.data.filters import check_filter_cfg
from biapy_cls.data.preprocess import check_preprocess_cfg
from biapy_cls.errors import ConfigError
from biapy_cls.export.settings import check_bmz, check_bmz_installed
from biapy_cls.models import available_sources, get_source


def check_components(cfg: CN, errors: list[str]) -> None:
    """The checks of the components that read their own keys, added to `errors`."""
    check_preprocess_cfg(cfg, errors)
    check_filter_cfg(cfg, errors)
    if cfg.MODEL.SOURCE in available_sources():  # bmz is checked by check_bmz
        errors += get_source(cfg.MODEL.SOURCE).check(cfg.MODEL, cfg.PROBLEM.NDIM)
    check_bmz(cfg, errors)


def validate(cfg: CN) -> list[str]:
    """Check `cfg` in place (normalising spellings); raise one ConfigError listing every problem, or
    return the notices to print."""
    errors: list[str] = []
    notices = check_config(cfg, errors)
    check_components(cfg, errors)
    if errors:
        raise ConfigError("\n".join(errors))
    check_bmz_installed(cfg)
    return notices


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> tuple[CN, list[str]]:
    """Defaults <- YAML <- overrides; checked and frozen. Returns (config, notices to print)."""
    return load_config_data(read_yaml(path), f"'{Path(path).name}'", overrides)


def load_config_data(data: dict, source: str, overrides: Sequence[str] = ()) -> tuple[CN, list[str]]:
    """Defaults <- `data` (nested sections and/or dotted keys, as the Python API takes them) <- overrides;
    checked and frozen. `source` names where `data` came from in error messages."""
    cfg = get_cfg_defaults()
    origins: dict[str, str] = {}
    notices = merge(cfg, flatten(data), source, origins)
    notices += merge(cfg, parse_overrides(overrides), "the command line", origins)
    try:
        notices += validate(cfg)
    except ConfigError as err:
        raise ConfigError(with_origins(str(err), origins)) from None
    cfg.freeze()
    return cfg, notices
