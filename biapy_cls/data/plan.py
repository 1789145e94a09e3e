"""Which images are used for what: class names, training / validation / test lists, image size.

Everything here only lists folders and reads at most one image, so data mistakes are reported
before anything is written or decoded.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
from yacs.config import CfgNode as CN

from biapy_cls.data.dataset import ImageSpec
from biapy_cls.data.discover import (
    SampleList,
    discover_labelled,
    discover_unlabelled,
    stratified_folds,
    stratified_split,
)
from biapy_cls.data.filters import FilterOutcome, SampleFilter, apply_filter, summary
from biapy_cls.data.io import ChannelMismatch, has_alpha_format, read_image, require_readers
from biapy_cls.data.memory import InMemorySplit, check_memory
from biapy_cls.data.preprocess import Preprocessing
from biapy_cls.data.survey import check_channels, inferred_patch, survey, warn_unscaled_floats
from biapy_cls.errors import ConfigError, DataError

log = logging.getLogger("biapy_cls")


@dataclass
class DataPlan:
    class_names: list[str]
    spec: ImageSpec
    train: SampleList | None = None
    val: SampleList | None = None
    test: SampleList | None = None
    preprocess: Preprocessing | None = None
    filtered: list[FilterOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what preprocessing and filtering did, for the log and report

    def preprocess_for(self, split: str) -> Preprocessing | None:
        """The preprocessing of 'TRAIN', 'VAL' or 'TEST' images, or None."""
        return self.preprocess if self.preprocess is not None and self.preprocess.applies_to(split) else None

    def filter(self, cfg: CN, split: str, samples: SampleList) -> SampleList:
        """`samples` less those DATA.<split>.FILTER_SAMPLES removes (recorded in `filtered` and `notes`)."""
        sample_filter = SampleFilter.from_cfg(cfg, split)
        if sample_filter is None:
            return samples
        from biapy_cls.data.transforms import Normalizer

        kept, outcome = apply_filter(samples, sample_filter, self.spec, self.class_names, Normalizer.from_cfg(cfg))
        self.filtered.append(outcome)
        self.notes.append(summary(outcome, sample_filter))
        return kept

    @property
    def has_test_labels(self) -> bool:
        return self.test is not None and bool((self.test.labels >= 0).all())


def _split_train(cfg: CN, samples: SampleList) -> tuple[SampleList, SampleList | None]:
    val_cfg = cfg.DATA.VAL
    if val_cfg.CROSS_VAL:
        train_idx, val_idx = stratified_folds(samples.labels, val_cfg.CROSS_VAL_NFOLD, val_cfg.CROSS_VAL_FOLD,
                                              cfg.SYSTEM.SEED, shuffle=val_cfg.RANDOM)
    else:
        train_idx, val_idx = stratified_split(
            samples.labels, val_cfg.SPLIT_TRAIN, cfg.SYSTEM.SEED, shuffle=val_cfg.RANDOM
        )
    if len(val_idx) == 0:
        log.warning("No class has two or more training images, so there is no validation set: the best "
                    "checkpoint and early stopping follow the training loss.")
        return samples, None
    return samples.subset(train_idx), samples.subset(val_idx)


def infer_spec(cfg: CN, samples: SampleList) -> ImageSpec:
    """ImageSpec from DATA.PATCH_SIZE, or from the first training image when PATCH_SIZE is ()."""
    ndim = cfg.PROBLEM.NDIM
    patch = tuple(cfg.DATA.PATCH_SIZE)
    where = f"DATA.TRAIN.PATH ('{samples.root}')"
    float_peaks: dict = {}
    shapes = survey(samples.paths, ndim, patch[-1] if patch else (3 if cfg.DATA.FORCE_RGB else 1), float_peaks)
    if cfg.DATA.NORMALIZATION.TYPE == "div":
        warn_unscaled_floats(float_peaks, where)
    if not patch:
        first = samples.paths[0]
        channels = Counter(s[-1] for s in shapes.values()).most_common(1)[0][0]
        # grey+alpha / RGBA PNGs: the alpha channel carries no image content. In TIFF or .npy files a 2nd
        # or 4th channel is image data (2- and 4-channel microscopy), so it is kept.
        alpha = all(has_alpha_format(p) for p, s in shapes.items() if s[-1] == channels)
        if cfg.DATA.FORCE_RGB and (channels == 1 or (channels in (2, 4) and alpha)):
            channels = 3
        elif channels in (2, 4) and alpha:
            channels -= 1
        check_channels(shapes, channels, cfg.DATA.FORCE_RGB, where)
        patch = (*inferred_patch(shapes, where), channels)
        log.info(f"DATA.PATCH_SIZE not set: using the most common size of {len(shapes)} training images, {patch} "
                 f"(e.g. '{first.name}').")
    else:
        check_channels(shapes, patch[-1], cfg.DATA.FORCE_RGB, where)
    return ImageSpec.from_patch_size(ndim, patch, cfg.DATA.FORCE_RGB, cfg.DATA.REFLECT_TO_COMPLETE_SHAPE)


def check_first_image(samples: SampleList, spec: ImageSpec) -> None:
    """Read one image of each class early, so that a wrong NDIM or channel count fails at once."""
    seen = set()
    for path, label in zip(samples.paths, samples.labels):
        if label not in seen:
            seen.add(label)
            read_image(path, spec.ndim, spec.channels, spec.force_rgb)


def plan_training_data(cfg: CN) -> DataPlan:
    train, class_names = discover_labelled(cfg.DATA.TRAIN.PATH, "DATA.TRAIN.PATH", cfg.PROBLEM.NDIM)
    if len(class_names) < 2:
        raise DataError(
            f"DATA.TRAIN.PATH ('{train.root}') has a single class folder ({class_names[0]}); a classifier needs at "
            "least two classes, each in its own sub-folder."
        )
    if cfg.DATA.N_CLASSES not in (-1, len(class_names)):
        raise DataError(
            f"DATA.N_CLASSES is {cfg.DATA.N_CLASSES} but DATA.TRAIN.PATH ('{train.root}') has {len(class_names)} "
            f"class folders ({', '.join(class_names)}). Set DATA.N_CLASSES to {len(class_names)} (or -1 to count "
            "the folders), or fix the folders."
        )
    require_readers(train.paths, f"DATA.TRAIN.PATH ('{train.root}')")
    spec = infer_spec(cfg, train)
    check_first_image(train, spec)
    preprocess = Preprocessing.from_cfg(cfg, spec.channels, spec.force_rgb)
    if preprocess is not None and preprocess.applies_to("TRAIN") and not cfg.DATA.PATCH_SIZE:
        spatial = preprocess.output_spatial(spec.spatial)
        if spatial != spec.spatial:
            log.info(f"DATA.PATCH_SIZE not set: the training images are {spatial} after preprocessing.")
            spec = replace(spec, spatial=spatial)
    plan = DataPlan(class_names, spec, preprocess=preprocess)
    train = plan.filter(cfg, "TRAIN", train)  # before the split: validation images cut from it are filtered too
    if cfg.DATA.VAL.FROM_TRAIN:
        train, val = _split_train(cfg, train)
    else:
        val, _ = discover_labelled(cfg.DATA.VAL.PATH, "DATA.VAL.PATH", cfg.PROBLEM.NDIM, class_names)
    check_against_data(cfg, class_names, val)
    if val is not None and not cfg.DATA.VAL.FROM_TRAIN:
        warn_overlap(val, "validation", "DATA.VAL.PATH", train.paths, "training images (DATA.TRAIN.PATH)",
                     "choose the best epoch")
    plan.train, plan.val = train, plan.filter(cfg, "VAL", val) if val is not None else None
    check_memory(training_in_memory(cfg, plan), plan.spec.shape, size_source(cfg, plan))
    return plan


def size_source(cfg: CN, plan: DataPlan) -> str:
    """Where the size images are stored at comes from, for the memory message."""
    size = (*plan.spec.spatial, plan.spec.channels)
    if not cfg.TRAIN.ENABLE:
        return f"the model's image size {size}"
    return f"DATA.PATCH_SIZE {size}" + ("" if cfg.DATA.PATCH_SIZE else " (inferred from the training images)")


def training_in_memory(cfg: CN, plan: DataPlan) -> list[InMemorySplit]:
    """The splits held in memory at the same time while training: training and validation images."""
    splits = []
    if cfg.DATA.TRAIN.IN_MEMORY:
        splits.append(InMemorySplit("training", len(plan.train), f"DATA.TRAIN.PATH ('{plan.train.root}')",
                                    "DATA.TRAIN.IN_MEMORY"))
    if plan.val is not None and cfg.DATA.VAL.FROM_TRAIN and cfg.DATA.TRAIN.IN_MEMORY:
        splits.append(InMemorySplit("validation", len(plan.val), "DATA.TRAIN.PATH (DATA.VAL.FROM_TRAIN)",
                                    "DATA.TRAIN.IN_MEMORY"))
    elif plan.val is not None and not cfg.DATA.VAL.FROM_TRAIN and cfg.DATA.VAL.IN_MEMORY:
        splits.append(InMemorySplit("validation", len(plan.val), f"DATA.VAL.PATH ('{plan.val.root}')",
                                    "DATA.VAL.IN_MEMORY"))
    return splits


def check_test_memory(cfg: CN, plan: DataPlan) -> None:
    """The test images, loaded after training's arrays are gone: checked on their own."""
    if not cfg.DATA.TEST.IN_MEMORY:
        return
    source = ("the validation images (DATA.TEST.USE_VAL_AS_TEST)" if cfg.DATA.TEST.USE_VAL_AS_TEST
              else f"DATA.TEST.PATH ('{plan.test.root}')")
    split = InMemorySplit("test", len(plan.test), source, "DATA.TEST.IN_MEMORY")
    check_memory([split], plan.spec.shape, size_source(cfg, plan),
                 "a smaller DATA.PATCH_SIZE" if cfg.TRAIN.ENABLE else None)


def warn_overlap(samples: SampleList, label: str, key: str, seen_paths: list, seen_as: str, purpose: str) -> None:
    """Say loudly when validation or test images are training images (the same folder given twice, or
    files reached through links): a result measured on them only shows how well the model memorised."""
    import os

    seen = {os.path.realpath(p) for p in seen_paths}
    shared = [p for p in samples.paths if os.path.realpath(p) in seen]
    if shared:
        log.warning(
            f"{len(shared)} of the {len(samples)} {label} images of {key} ('{samples.root}') are also {seen_as}, "
            f"e.g. '{shared[0].name}': images used to {purpose} must be new to the model, or the {label} result "
            f"only shows how well it memorised them. Give {key} a folder of other images."
        )


def warn_trained_on(test: SampleList, checkpoint_config: str | None) -> None:
    """A test-only run on images under the folders the checkpoint was trained (or validated) on: said loudly."""
    import os

    import yaml

    data = (yaml.safe_load(checkpoint_config or "") or {}).get("DATA", {})
    folders = [data.get(split, {}).get("PATH", "") for split in ("TRAIN", "VAL")]
    roots = [os.path.join(os.path.realpath(f), "") for f in folders if f and os.path.isdir(f)]
    shared = [p for p in test.paths if any(os.path.realpath(p).startswith(root) for root in roots)]
    if shared:
        log.warning(
            f"{len(shared)} of the {len(test)} test images of DATA.TEST.PATH ('{test.root}') lie in the folders the "
            f"checkpoint was trained on ({', '.join(f for f in folders if f)}), e.g. '{shared[0].name}': the test "
            "result only shows how well the model memorised them. Give DATA.TEST.PATH a folder of other images."
        )


def check_against_data(cfg: CN, class_names: list[str], val: SampleList | None) -> None:
    """Training settings that depend on the class folders, checked before any image is decoded."""
    weights = list(cfg.LOSS.CLASS_WEIGHTS)
    if cfg.LOSS.CLASS_REBALANCE == "manual" and len(weights) != len(class_names):
        raise ConfigError(
            f"LOSS.CLASS_WEIGHTS has {len(weights)} weights but the training data has {len(class_names)} classes "
            f"({', '.join(class_names)}): give one weight per class, in that order (the class folders' names in "
            "natural order)."
        )
    if val is None and cfg.TRAIN.LR_SCHEDULER.NAME == "reduceonplateau":
        raise ConfigError(
            "TRAIN.LR_SCHEDULER.NAME is reduceonplateau, which lowers the learning rate when the validation "
            "result stalls, but there is no validation set (no class has two or more training images). Add "
            "images, set DATA.VAL.FROM_TRAIN False with a DATA.VAL.PATH, or choose another scheduler."
        )


def plan_test_data(cfg: CN, plan: DataPlan) -> DataPlan:
    """Add the test images to `plan` (whose classes come from training or from the checkpoint)."""
    if cfg.DATA.TEST.USE_VAL_AS_TEST:
        plan.test = plan.val
        if plan.test is None:
            raise DataError("DATA.TEST.USE_VAL_AS_TEST is True but there is no validation set to test on.")
    elif cfg.DATA.TEST.LOAD_GT:
        plan.test, _ = discover_labelled(cfg.DATA.TEST.PATH, "DATA.TEST.PATH", cfg.PROBLEM.NDIM, plan.class_names)
    else:
        plan.test = discover_unlabelled(cfg.DATA.TEST.PATH, "DATA.TEST.PATH", cfg.PROBLEM.NDIM)
    require_readers(plan.test.paths, f"DATA.TEST.PATH ('{plan.test.root}')")
    try:
        check_first_image(plan.test, plan.spec)
    except ChannelMismatch as err:
        # The model's channels are fixed (by the training images or the checkpoint): the test images must
        # follow them; changing DATA.PATCH_SIZE (the generic advice) would not fit the training images.
        names = {1: "grey", 3: "RGB"}
        want = f"{err.channels} channel(s)" + (f" ({names[err.channels]})" if err.channels in names else "")
        how = {1: "convert them to grey (e.g. Pillow: Image.open(f).convert('L').save(f))",
               3: "convert them to RGB, or set DATA.FORCE_RGB True if they are grey"}.get(err.channels, "convert them")
        if cfg.TRAIN.ENABLE:
            raise DataError(
                f"The training images have {want}, but the test image '{err.path}' has {err.have}: test images "
                f"must have the channels of the training images, so {how}, or use test images like the training "
                "ones."
            ) from None
        raise DataError(
            f"The checkpoint was trained on images with {want}, but the test image '{err.path}' has {err.have}. "
            f"DATA.PATCH_SIZE is not used in a test-only run (the checkpoint fixes size and channels): {how}, or "
            "test with a checkpoint trained on such images."
        ) from None
    if not cfg.DATA.TEST.USE_VAL_AS_TEST:  # validation images were filtered as such
        plan.test = plan.filter(cfg, "TEST", plan.test)
        if plan.train is not None:  # validation images chose the best epoch: not new either
            seen = plan.train.paths + (plan.val.paths if plan.val is not None else [])
            warn_overlap(plan.test, "test", "DATA.TEST.PATH", seen, "training or validation images of this run",
                         "measure the model")
    check_test_memory(cfg, plan)
    return plan


def describe(plan: DataPlan) -> str:
    def counts(samples: SampleList | None) -> str:
        if samples is None:
            return "none"
        if (samples.labels < 0).any():
            return f"{len(samples)} images (no labels)"
        per_class = np.bincount(samples.labels, minlength=len(plan.class_names))
        return f"{len(samples)} images (" + ", ".join(f"{n}: {c}" for n, c in zip(plan.class_names, per_class)) + ")"

    lines = [f"Classes ({len(plan.class_names)}): {', '.join(plan.class_names)}",
             f"Image size: {plan.spec.ndim} {plan.spec.spatial} with {plan.spec.channels} channel(s)"]
    if plan.train is not None:
        lines += [f"Training:   {counts(plan.train)}", f"Validation: {counts(plan.val)}"]
    if plan.test is not None:
        lines.append(f"Test:       {counts(plan.test)}")
    if plan.preprocess is not None:
        lines.append(plan.preprocess.describe())
    return "\n".join(lines + plan.notes)


def data_notes(plan: DataPlan) -> list[str]:
    """The preprocessing and filtering lines of the log, kept in run_info.json for the report."""
    return ([plan.preprocess.describe()] if plan.preprocess is not None else []) + list(plan.notes)


def write_filtered_samples(paths, plan: DataPlan) -> None:
    """results/RUN/filtered_samples.csv: every image a FILTER_SAMPLES condition removed (only when one is on)."""
    if not plan.filtered:
        return
    from biapy_cls.data.filters import filtered_csv
    from biapy_cls.outputs import atomic_write_text

    target = paths.results_dir / "filtered_samples.csv"
    atomic_write_text(target, filtered_csv(plan.filtered))
    log.info(f"Filtered images: {target}")
