"""Typed settings, resolved once from the checked config: each decision (the names a key accepts, the
default a key falls back to, what its -1 "auto" means) is made here and handed on as a plain value.

    train = TrainSettings.from_cfg(cfg)      # train.metrics, train.monitor_mode, train.schedule.min_lr, ...
    system = SystemSettings.from_cfg(cfg)    # system.num_workers with -1 resolved

The checks (config/check.py) accept the names listed here; the engine and the report read the
settings instead of the raw yacs node. `Normalizer.from_cfg` and `AugmentSettings.from_cfg`
(data/) follow the same pattern for their sections.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, make_dataclass, replace

from yacs.config import CfgNode as CN

# MODEL.SOURCE: the sources of models/__init__.py's registry, and bmz (export/bmz_source.py).
MODEL_SOURCES = ("biapy", "torchvision", "timm", "bmz")
# TRAIN.LR_SCHEDULER.NAME -> when the schedule steps: after every optimizer step, or after every epoch.
LR_SCHEDULERS = {"reduceonplateau": "epoch", "warmupcosine": "step", "onecycle": "step"}
# Quantities that pick the best checkpoint and stop training early, and whether lower is better.
# train_loss is used when there is no validation set; TRAIN.CHECKPOINT_MONITOR accepts the others.
MONITOR_MODES = {"val_loss": "min", "val_accuracy": "max", "val_f1": "max", "train_loss": "min"}
CHECKPOINT_MONITORS = [m for m in MONITOR_MODES if m.startswith("val_")]
# TRAIN.METRICS items -> the suffix of their keys in the training log (train_<suffix>, val_<suffix>).
TRAIN_METRICS = {"accuracy": "accuracy", "f1": "f1", "top-5-accuracy": "top5_accuracy"}
DEFAULT_TRAIN_METRICS = ("accuracy", "f1")  # TRAIN.METRICS: []
# TEST.METRICS items -> their key in test_metrics.json (macro averages).
TEST_METRICS = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "f1": "f1_macro",
                "precision": "precision_macro", "recall": "recall_macro", "roc_auc": "roc_auc_macro"}
DEFAULT_TEST_METRICS = ("accuracy", "balanced_accuracy", "f1")  # TEST.METRICS: []
MAX_AUTO_WORKERS = 4  # SYSTEM.NUM_WORKERS: -1

# AUGMENTOR switches done in data/augment_ops.py, by application order group: these run after the blurs
# (BiaPy: after the geometric moves) ...
AUGMENT_EARLY = ("GRAYSCALE", "CHANNEL_SHUFFLE", "CUTBLUR", "CUTNOISE", "MISALIGNMENT")
# ... and these after the intensity transformations and GAUSSIAN_NOISE, as in BiaPy.
AUGMENT_LATE = ("POISSON_NOISE", "SALT", "PEPPER", "SALT_AND_PEPPER", "MISSING_SECTIONS", "GRIDMASK")
# AUGMENTOR switches of the transformations, in the order they are applied (each has a <NAME>_PROB key).
AUGMENT_OPS = ("ROT90", "VFLIP", "HFLIP", "ZFLIP", "RANDOM_ROT", "ZOOM", "SHEAR", "SHIFT", "ELASTIC", "G_BLUR",
               "MEDIAN_BLUR", "MOTION_BLUR", *AUGMENT_EARLY, "GAMMA_CONTRAST", "BRIGHTNESS", "CONTRAST", "DROPOUT",
               "CUTOUT", "GAUSSIAN_NOISE", *AUGMENT_LATE)


@dataclass(frozen=True)
class ScheduleSettings:
    """TRAIN.LR_SCHEDULER."""

    name: str = ""  # "" = constant learning rate
    min_lr: float = 0.0  # MIN_LR, -1 resolved to 0
    factor: float = 0.5  # REDUCEONPLATEAU_FACTOR
    patience: int = -1  # REDUCEONPLATEAU_PATIENCE
    warmup_epochs: int = 0  # WARMUP_COSINE_DECAY_EPOCHS

    @property
    def per_step(self) -> bool:
        return LR_SCHEDULERS.get(self.name) == "step"

    @classmethod
    def from_cfg(cls, node: CN) -> ScheduleSettings:
        """From the TRAIN.LR_SCHEDULER node."""
        return cls(str(node.NAME), max(float(node.MIN_LR), 0.0), float(node.REDUCEONPLATEAU_FACTOR),
                   int(node.REDUCEONPLATEAU_PATIENCE), int(node.WARMUP_COSINE_DECAY_EPOCHS))


@dataclass(frozen=True)
class TrainSettings:
    """TRAIN.*: how the model is optimised, watched and saved."""

    epochs: int = 100
    batch_size: int = 32
    accum_iter: int = 1
    lr: float = 1e-4
    optimizer: str = "ADAMW"
    weight_decay: float = 0.0
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    lr_scaling: str = "none"
    patience: int = -1  # -1: never stop early
    monitor: str = "val_loss"  # TRAIN.CHECKPOINT_MONITOR (train_loss when there is no validation set)
    metrics: tuple[str, ...] = DEFAULT_TRAIN_METRICS
    clip_norm: float = 0.0  # 0: no clipping
    amp: str = "auto"
    save_every: int = -1  # MODEL.SAVE_CKPT_FREQ; -1: only best and last
    chart_every: int = 1  # LOG.CHART_CREATION_FREQ
    schedule: ScheduleSettings = ScheduleSettings()
    backbone_lr_scale: float = 1.0  # TRAIN.BACKBONE_LR_SCALE: the backbone's LR is this x lr
    freeze_backbone_epochs: int = 0  # TRAIN.FREEZE_BACKBONE_EPOCHS

    @classmethod
    def from_cfg(cls, cfg: CN) -> TrainSettings:
        train = cfg.TRAIN
        return cls(
            epochs=int(train.EPOCHS), batch_size=int(train.BATCH_SIZE), accum_iter=int(train.ACCUM_ITER),
            lr=float(train.LR), optimizer=str(train.OPTIMIZER), weight_decay=float(train.W_DECAY),
            momentum=float(train.MOMENTUM), betas=tuple(float(b) for b in train.OPT_BETAS),
            lr_scaling=str(train.LR_SCALING), patience=int(train.PATIENCE), monitor=str(train.CHECKPOINT_MONITOR),
            metrics=tuple(train.METRICS) or DEFAULT_TRAIN_METRICS, clip_norm=float(train.GRADIENT_CLIP_NORM),
            amp=str(train.AMP), save_every=int(cfg.MODEL.SAVE_CKPT_FREQ), chart_every=int(cfg.LOG.CHART_CREATION_FREQ),
            schedule=ScheduleSettings.from_cfg(train.LR_SCHEDULER),
            backbone_lr_scale=float(train.BACKBONE_LR_SCALE),
            freeze_backbone_epochs=int(train.FREEZE_BACKBONE_EPOCHS),
        )

    @property
    def monitor_mode(self) -> str:
        """'min' or 'max': whether a lower monitored value is better."""
        return MONITOR_MODES[self.monitor]

    def without_validation(self) -> TrainSettings:
        """The settings of a run that has no validation set: the training loss is watched."""
        return replace(self, monitor="train_loss")

    def with_lr(self, lr: float) -> TrainSettings:
        return replace(self, lr=lr)


def summary_metric_names(cfg: CN) -> tuple[str, ...]:
    """TEST.METRICS (the metrics of the final summary line), or the default set when it is empty."""
    return tuple(cfg.TEST.METRICS) or DEFAULT_TEST_METRICS


def workers_capped(cfg: CN) -> str | None:
    """The warning for a SYSTEM.NUM_WORKERS above this machine's CPU count (SystemSettings caps it), or None."""
    available = os.cpu_count() or 1
    if cfg.SYSTEM.NUM_WORKERS <= available:
        return None
    return (f"SYSTEM.NUM_WORKERS is {cfg.SYSTEM.NUM_WORKERS}, more than the {available} CPU(s) of this machine: "
            f"{available} worker process(es) are used (more would only compete for the same CPUs and memory).")


@dataclass(frozen=True)
class SystemSettings:
    """SYSTEM.*, with its -1 "automatic" values resolved for this machine."""

    seed: int = 0
    num_cpus: int = 1  # threads for the whole job
    num_workers: int = 0  # DataLoader worker processes
    pin_memory: bool = True

    @classmethod
    def from_cfg(cls, cfg: CN) -> SystemSettings:
        system = cfg.SYSTEM
        available = os.cpu_count() or 1
        cpus = available if system.NUM_CPUS == -1 else min(int(system.NUM_CPUS), available)
        # -1: up to MAX_AUTO_WORKERS, within SYSTEM.NUM_CPUS as given (not capped by this machine's count)
        budget = available if system.NUM_CPUS == -1 else int(system.NUM_CPUS)
        workers = min(MAX_AUTO_WORKERS, budget) if system.NUM_WORKERS == -1 else int(system.NUM_WORKERS)
        # More worker processes than CPUs only compete for them (and each holds its own copy of the
        # libraries): 1000 workers on 2 CPUs made a run hang for minutes before its first batch.
        workers = min(workers, available)
        return cls(int(system.SEED), cpus, workers, bool(system.PIN_MEM))


def frozen_section(node: CN, name: str):
    """A frozen dataclass instance holding every key of a config section, named as the keys are (lists
    become tuples, sub-sections nested instances): a typed, read-only snapshot that the code reads
    instead of the mutable yacs node. New keys in defaults.py appear in it without further wiring."""
    values = {}
    for key, value in node.items():
        if isinstance(value, CN):
            value = frozen_section(value, f"{name}_{key}")
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    cls = make_dataclass(name, [(key, type(value)) for key, value in values.items()], frozen=True)
    return cls(**values)


def augment_prob(aug: CN, key: str) -> float:
    """AUGMENTOR.<key> (a *_PROB key) as a probability: -1 means AUGMENTOR.DA_PROB, as in BiaPy."""
    p = aug[key]
    return float(aug.DA_PROB if p == -1 else p)


@dataclass(frozen=True)
class PolicySettings:
    """AUGMENTOR.RANDAUGMENT or TRIVIALAUGMENT (2D only; `kind` '' = neither); data.policies.Policy runs it."""

    kind: str = ""
    num_ops: int = 2
    magnitude: int = 9

    @classmethod
    def from_cfg(cls, cfg: CN) -> PolicySettings:
        aug = cfg.AUGMENTOR
        if not aug.ENABLE or cfg.PROBLEM.NDIM != "2D":  # config/check.py refuses them in 3D
            return cls()
        if aug.RANDAUGMENT.ENABLE:
            return cls("randaugment", int(aug.RANDAUGMENT.N), int(aug.RANDAUGMENT.M))
        if aug.TRIVIALAUGMENT:
            return cls("trivialaugment", 1, -1)
        return cls()


@dataclass(frozen=True)
class AugmentSettings:
    """AUGMENTOR: the switched-on transformations with their probabilities (-1 resolved to DA_PROB), and
    every parameter key as `params.<KEY>` (e.g. params.ZOOM_RANGE)."""

    ops: tuple[tuple[str, float], ...] = ()  # (switch name, probability), in AUGMENT_OPS order
    ndim: int = 2
    params: object = None  # frozen_section(cfg.AUGMENTOR)
    policy: PolicySettings = PolicySettings()

    @classmethod
    def from_cfg(cls, cfg: CN) -> AugmentSettings:
        aug = cfg.AUGMENTOR

        ops = tuple((n, augment_prob(aug, f"{n}_PROB")) for n in AUGMENT_OPS if aug.ENABLE and aug[n])
        return cls(ops, 3 if cfg.PROBLEM.NDIM == "3D" else 2, frozen_section(aug, "AugmentorParams"),
                   PolicySettings.from_cfg(cfg))
