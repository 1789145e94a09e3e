"""biapy-cls: train, evaluate and apply 2D/3D biomedical image classifiers from one YAML file.

Importing the package is cheap on purpose: torch and friends are imported only when a run starts,
so that `biapy --help` and `biapy --version` answer at once.
"""

__version__ = "0.1.0"
