"""Configuration: the key tree (defaults.py), reading (load.py), the config's own checks (check.py), typed
settings (settings.py), BiaPy names (compat.py). biapy_cls.configure.load_config gives a checked config."""

from biapy_cls.config.defaults import get_cfg_defaults

__all__ = ["get_cfg_defaults"]
