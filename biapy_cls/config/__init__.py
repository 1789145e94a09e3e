"""Configuration: the key tree (defaults.py), loading (load.py), checks (check.py), BiaPy names (compat.py)."""

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.config.load import load_config

__all__ = ["get_cfg_defaults", "load_config"]
