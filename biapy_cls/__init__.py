"""biapy-cls: train, evaluate and apply 2D/3D biomedical image classifiers from one YAML file.

    from biapy_cls import BiaPy, build_config      # the Python API, with BiaPy's names (docs/python_api.md)

Importing the package is cheap on purpose: torch and friends are imported only when a run starts or
when BiaPy / build_config are first used, so that `biapy --help` and `biapy --version` answer at once.
"""

__version__ = "0.1.0"
__all__ = ["BiaPy", "build_config", "__version__"]


def __getattr__(name: str):
    # PEP 562 lazy attributes: `from biapy_cls import BiaPy` imports the API only when asked for.
    if name == "BiaPy":
        from biapy_cls.api import BiaPy

        return BiaPy
    if name == "build_config":
        from biapy_cls.api_config import build_config

        return build_config
    raise AttributeError(f"module 'biapy_cls' has no attribute {name!r}")
