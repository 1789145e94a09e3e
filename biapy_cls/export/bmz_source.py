"""MODEL.SOURCE bmz in the run: the data plan a package implies (its classes, image size and channels) and
the model built from it (bmz_import.py does the loading). Used by workflow.py in a few lines."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from yacs.config import CfgNode as CN

from biapy_cls.data.dataset import LazyDataset
from biapy_cls.data.plan import DataPlan
from biapy_cls.errors import ConfigError
from biapy_cls.models import ModelSpec

log = logging.getLogger("biapy_cls")
ARCHITECTURE = "bmz"  # ModelSpec.architecture of a model loaded from a package


def is_bmz(spec: ModelSpec) -> bool:
    return spec.architecture == ARCHITECTURE


def model_from_package(cfg: CN) -> bool:
    """MODEL.SOURCE bmz, unless the run starts from a checkpoint (e.g. testing a fine-tuned package model):
    then the checkpoint gives the classes and size, and records the package to rebuild the network from."""
    from_checkpoint = cfg.MODEL.LOAD_CHECKPOINT or (not cfg.TRAIN.ENABLE and bool(cfg.PATHS.CHECKPOINT_FILE))
    return cfg.MODEL.SOURCE == "bmz" and not from_checkpoint


def data_plan(cfg: CN, plan_training_data: Callable[[CN], DataPlan]) -> DataPlan:
    """Test-only: the package's classes and size. Training: the training folders, read at the package's size."""
    from biapy_cls.export.bmz_import import load_package

    package = load_package(str(cfg.MODEL.BMZ.SOURCE_MODEL_ID))
    spec = package.spec
    if spec.ndim != cfg.PROBLEM.NDIM:
        raise ConfigError(f"MODEL.BMZ.SOURCE_MODEL_ID '{package.source}' is a {spec.ndim} model but PROBLEM.NDIM is "
                          f"{cfg.PROBLEM.NDIM}: set PROBLEM.NDIM {spec.ndim}.")
    log.info(f"BioImage Model Zoo package '{package.name}' ({package.source}): {len(package.class_names)} classes "
             f"({', '.join(package.class_names)}), input {spec.ndim} {spec.spatial} with {spec.channels} channel(s).")
    if not cfg.TRAIN.ENABLE:
        return DataPlan(list(package.class_names), spec)
    size = (*spec.spatial, spec.channels)
    if cfg.DATA.PATCH_SIZE and tuple(cfg.DATA.PATCH_SIZE) != size:
        log.warning(f"DATA.PATCH_SIZE {tuple(cfg.DATA.PATCH_SIZE)} differs from the package's input {size}; "
                    "the package's size is used.")
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATA.PATCH_SIZE = size
    return plan_training_data(cfg)


def model_spec(plan: DataPlan) -> ModelSpec:
    return ModelSpec(ARCHITECTURE, plan.spec.ndim, plan.spec.channels, len(plan.class_names), plan.spec.spatial)


def value_range(plan: DataPlan) -> float:
    """What 1.0 means in our batches (the first image's dtype range): the package gets raw values back."""
    samples = plan.train if plan.train is not None else plan.test
    return LazyDataset(samples.subset(np.arange(1)), plan.spec).value_range


def model_for(model_cfg: CN, plan: DataPlan, spec: ModelSpec):
    """The package's network for this run's classes (a new head when their count differs)."""
    from biapy_cls.export.bmz_import import build_bmz_model, load_package

    package = load_package(str(model_cfg.BMZ.SOURCE_MODEL_ID))
    return build_bmz_model(package, value_range(plan), spec.n_classes)
