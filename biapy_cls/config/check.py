"""The config's own rules, checked before any heavy work: choices, ranges and keys that depend on each other.

Only the config is consulted (names come from config/settings.py): the keys of a component that knows more
(preprocessing, filters, a model source, the BMZ export) are checked by that component, and
biapy_cls/configure.py runs both. CHOICES and RANGES are also read by scripts/gen_config_docs.py for the
configuration reference. Checks that need the data (class count, channels) happen when the data is read.
"""

from __future__ import annotations

import math
import re

from yacs.config import CfgNode as CN

from biapy_cls.config.settings import (
    AUGMENT_OPS,
    CHECKPOINT_MONITORS,
    LR_SCHEDULERS,
    MODEL_SOURCES,
    TEST_METRICS,
    TRAIN_METRICS,
)
from biapy_cls.errors import ConfigError

# key -> accepted values (strings compared case-insensitively and stored in the spelling given here)
CHOICES = {
    "PROBLEM.TYPE": ["CLASSIFICATION"],
    "PROBLEM.NDIM": ["2D", "3D"],
    "DATA.NORMALIZATION.TYPE": ["div", "scale_range", "zero_mean_unit_variance"],
    "DATA.NORMALIZATION.MEASURE_BY": ["image", "patch", "dataset"],
    "AUGMENTOR.AFFINE_MODE": ["constant", "reflect", "symmetric", "wrap", "edge"],
    "AUGMENTOR.E_MODE": ["constant", "reflect", "symmetric", "wrap", "edge", "nearest"],
    "AUGMENTOR.BRIGHTNESS_MODE": ["2D", "3D"],
    "AUGMENTOR.CONTRAST_MODE": ["2D", "3D"],
    "TEST.AUGMENTATION_MODE": ["mean", "max", "min"],
    "TEST.EXPLAIN.METHOD": ["gradcam", "gradients"],
    "LOSS.TYPE": ["CE", ""],
    "TRAIN.OPTIMIZER": ["SGD", "ADAM", "ADAMW"],
    "TRAIN.LR_SCALING": ["none", "linear"],
    "MODEL.LOAD_CHECKPOINT_EPOCH": ["best_on_val", "last_on_train"],
    "MODEL.SOURCE": list(MODEL_SOURCES),
    "MODEL.OUT_CHECKPOINT_FORMAT": ["pth", "safetensors"],
    "MODEL.VIT_MODEL": ["custom", "vit_base_patch16", "vit_large_patch16", "vit_huge_patch14"],
    "LOSS.CLASS_REBALANCE": ["none", "auto", "manual"],
    "TRAIN.AMP": ["auto", "bf16", "fp16", "none"],
    "TRAIN.CHECKPOINT_MONITOR": CHECKPOINT_MONITORS,
    "TRAIN.LR_SCHEDULER.NAME": ["", *LR_SCHEDULERS],
}

# list keys -> accepted items
LIST_CHOICES = {
    "TRAIN.METRICS": list(TRAIN_METRICS),
    "TEST.METRICS": list(TEST_METRICS),
}

# key -> (low, high, description); `None` = unbounded; -1 sentinels are described in defaults.py
RANGES = {
    "SYSTEM.NUM_CPUS": (-1, None, "-1 or at least 1"),
    "SYSTEM.NUM_WORKERS": (-1, None, "-1 (automatic) or at least 0"),
    "SYSTEM.SEED": (0, 2**32 - 1, "between 0 and 4294967295 (2**32 - 1, what numpy's generator accepts)"),
    "DATA.VAL.SPLIT_TRAIN": (0.0, 1.0, "between 0 and 1 (exclusive), e.g. 0.1"),
    "DATA.VAL.CROSS_VAL_NFOLD": (2, None, "at least 2"),
    "DATA.TRAIN.REPLICATE": (0, None, "0 or more (0 and 1 show each image once per epoch)"),
    "AUGMENTOR.DA_PROB": (0.0, 1.0, "between 0 and 1"),
    "AUGMENTOR.AUG_NUM_SAMPLES": (1, None, "at least 1"),
    "AUGMENTOR.E_SIGMA": (0.0, None, "0 or more (pixels)"),
    "AUGMENTOR.GAUSSIAN_NOISE_VAR": (0.0, None, "0 or more"),
    "AUGMENTOR.MS_DISPLACEMENT": (0, None, "0 or more pixels"),
    "AUGMENTOR.MS_ROTATE_RATIO": (0.0, 1.0, "between 0 and 1"),
    "AUGMENTOR.MISSP_CHANNEL_PB": (0.0, 1.0, "between 0 and 1"),
    "AUGMENTOR.GRID_RATIO": (0.0, 1.0, "between 0 and 1"),
    "AUGMENTOR.GRID_ROTATE": (0.0, 1.0, "between 0 and 1 (1 = 360 degrees)"),
    "AUGMENTOR.SALT_AMOUNT": (0.0, 1.0, "a fraction between 0 and 1"),
    "AUGMENTOR.PEPPER_AMOUNT": (0.0, 1.0, "a fraction between 0 and 1"),
    "AUGMENTOR.SALT_AND_PEPPER_AMOUNT": (0.0, 1.0, "a fraction between 0 and 1"),
    "AUGMENTOR.SALT_AND_PEPPER_PROP": (0.0, 1.0, "a share between 0 and 1"),
    "AUGMENTOR.MIXUP": (0.0, None, "0 (off) or a Beta alpha greater than 0, e.g. 0.2"),
    "AUGMENTOR.CUTMIX_ALPHA": (0.0, None, "0 (off) or a Beta alpha greater than 0, e.g. 1.0"),
    "AUGMENTOR.RANDAUGMENT.N": (1, None, "at least 1"),
    "AUGMENTOR.RANDAUGMENT.M": (0, 30, "between 0 and 30"),
    "MODEL.EMA.DECAY": (0.0, 1.0, "between 0 and 1, e.g. 0.999"),
    "MODEL.EMA.WARMUP": (0, None, "0 (none) or more optimizer steps"),
    "TRAIN.LR": (0.0, None, "greater than 0, e.g. 0.001"),
    "TRAIN.W_DECAY": (0.0, None, "0 or more"),
    "TRAIN.BATCH_SIZE": (1, None, "at least 1"),
    "TEST.EXPLAIN.N_PER_CLASS": (0, None, "0 or more"),
    "TRAIN.EPOCHS": (0, None, "0 or more"),
    "TRAIN.MOMENTUM": (0.0, 1.0, "between 0 and 1, e.g. 0.9"),
    "TRAIN.ACCUM_ITER": (1, None, "at least 1"),
    "TRAIN.GRADIENT_CLIP_NORM": (0.0, None, "0 (no clipping) or more, e.g. 1.0"),
    "TRAIN.BACKBONE_LR_SCALE": (0.0, None, "0 (backbone fixed) or more, e.g. 0.1"),
    "TRAIN.FREEZE_BACKBONE_EPOCHS": (0, None, "0 or more"),
    "LOSS.LABEL_SMOOTHING": (0.0, 0.99, "between 0 and 0.99, e.g. 0.1"),
    "MODEL.SAVE_CKPT_FREQ": (-1, None, "-1 (never) or at least 1"),
    "LOG.CHART_CREATION_FREQ": (1, None, "at least 1"),
}


def _get(cfg: CN, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _set(cfg: CN, key: str, value) -> None:
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[leaf] = value


def _check_choices(cfg: CN, errors: list[str]) -> None:
    for key, options in CHOICES.items():
        value = _get(cfg, key)
        by_lower = {o.lower(): o for o in options}
        if str(value).lower() in by_lower:
            _set(cfg, key, by_lower[str(value).lower()])
        else:
            errors.append(f"{key} is {value!r}; accepted values: {', '.join(repr(o) for o in options if o)}.")


def _check_ranges(cfg: CN, errors: list[str]) -> None:
    for key, (low, high, text) in RANGES.items():
        value = _get(cfg, key)
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(f"{key} is {value}; it must be {text}.")
            continue
        exclusive = key in ("TRAIN.LR", "DATA.VAL.SPLIT_TRAIN")
        too_low = low is not None and (value <= low if exclusive and low == 0 else value < low)
        too_high = high is not None and (value >= high if exclusive else value > high)
        if too_low or too_high:
            errors.append(f"{key} is {value}; it must be {text}.")


def _check_probability(cfg: CN, key: str, errors: list[str]) -> None:
    value = _get(cfg, key)
    if value != -1 and not 0.0 <= value <= 1.0:
        errors.append(f"{key} is {value}; it must be -1 (use AUGMENTOR.DA_PROB) or between 0 and 1.")


def _check_pair(cfg: CN, key: str, errors: list[str]) -> None:
    value = _get(cfg, key)
    if (
        len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or value[0] > value[1]
    ):
        errors.append(f"{key} is {tuple(value)}; it must be two numbers (low, high) with low <= high.")


def _check_list_choices(cfg: CN, errors: list[str]) -> None:
    for key, options in LIST_CHOICES.items():
        values = [str(v).lower() for v in _get(cfg, key)]
        wrong = [v for v in values if v not in options]
        if wrong:
            errors.append(f"{key} is {list(_get(cfg, key))}; {', '.join(map(repr, wrong))} not known. Accepted items: "
                          f"{', '.join(map(repr, options))} (or [] for the default set).")
        else:
            _set(cfg, key, values)


def _check_training(cfg: CN, errors: list[str]) -> None:
    """Scheduler, loss weights and checkpoint keys that only make sense together."""
    train, sched, loss = cfg.TRAIN, cfg.TRAIN.LR_SCHEDULER, cfg.LOSS
    name = sched.NAME
    if sched.MIN_LR != -1 and sched.MIN_LR < 0:
        errors.append(f"TRAIN.LR_SCHEDULER.MIN_LR is {sched.MIN_LR}; it must be -1 (meaning 0) or 0 or more.")
    min_lr = max(sched.MIN_LR, 0.0)
    if name == "warmupcosine":
        warmup = sched.WARMUP_COSINE_DECAY_EPOCHS
        if min_lr >= train.LR:
            errors.append(f"TRAIN.LR_SCHEDULER.MIN_LR ({sched.MIN_LR}) must be lower than TRAIN.LR ({train.LR}): "
                          "warmupcosine decays from TRAIN.LR down to MIN_LR.")
        if warmup < 0:
            errors.append(
                "TRAIN.LR_SCHEDULER.NAME is warmupcosine, so set TRAIN.LR_SCHEDULER.WARMUP_COSINE_DECAY_EPOCHS "
                "to the number of warm-up epochs (0 or more, e.g. 5)."
            )
        elif warmup > train.EPOCHS:
            errors.append(f"TRAIN.LR_SCHEDULER.WARMUP_COSINE_DECAY_EPOCHS ({warmup}) is more than TRAIN.EPOCHS "
                          f"({train.EPOCHS}): the warm-up would never end. Lower it or raise TRAIN.EPOCHS.")
    if name == "reduceonplateau":
        patience = sched.REDUCEONPLATEAU_PATIENCE
        if patience < 1:
            errors.append(
                "TRAIN.LR_SCHEDULER.NAME is reduceonplateau, so set TRAIN.LR_SCHEDULER.REDUCEONPLATEAU_PATIENCE "
                "to the epochs without improvement before the learning rate is lowered (at least 1)."
            )
        elif train.PATIENCE != -1 and patience >= train.PATIENCE:
            errors.append(
                f"TRAIN.LR_SCHEDULER.REDUCEONPLATEAU_PATIENCE ({patience}) must be less than TRAIN.PATIENCE "
                f"({train.PATIENCE}), or early stopping ends training before the learning rate is ever lowered."
            )
        if not 0 < sched.REDUCEONPLATEAU_FACTOR < 1:
            errors.append(f"TRAIN.LR_SCHEDULER.REDUCEONPLATEAU_FACTOR is {sched.REDUCEONPLATEAU_FACTOR}; it must be "
                          "between 0 and 1 (exclusive), e.g. 0.5.")
        if min_lr >= train.LR:
            errors.append(f"TRAIN.LR_SCHEDULER.MIN_LR ({sched.MIN_LR}) must be lower than TRAIN.LR ({train.LR}).")
    weights = list(loss.CLASS_WEIGHTS)
    if loss.CLASS_REBALANCE == "manual":
        if not weights or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights) \
                or not any(weights):
            errors.append(f"LOSS.CLASS_REBALANCE is manual, so LOSS.CLASS_WEIGHTS must list one weight (0 or more, "
                          f"not all 0) per class in class-index order, e.g. [1.0, 2.5]; it is {weights}.")
        elif cfg.DATA.N_CLASSES != -1 and len(weights) != cfg.DATA.N_CLASSES:
            errors.append(f"LOSS.CLASS_WEIGHTS has {len(weights)} weights but DATA.N_CLASSES is {cfg.DATA.N_CLASSES}: "
                          "give one weight per class.")
    elif weights:
        errors.append(f"LOSS.CLASS_WEIGHTS is set but LOSS.CLASS_REBALANCE is {loss.CLASS_REBALANCE}, so the weights "
                      "would be ignored. Set LOSS.CLASS_REBALANCE: manual to use them, or remove LOSS.CLASS_WEIGHTS.")
    if cfg.MODEL.SAVE_CKPT_FREQ == 0:
        errors.append("MODEL.SAVE_CKPT_FREQ is 0; it must be -1 (no extra checkpoints) or at least 1.")
# AUGMENTOR (low, high) keys -> (smallest, largest accepted value, description); `None` = unbounded.
AUG_PAIR_BOUNDS = {
    "ZOOM_RANGE": (1e-3, None, "zoom factors greater than 0"),
    "SHIFT_RANGE": (-1.0, 1.0, "fractions between -1 and 1"),
    "E_ALPHA": (0.0, None, "0 or more"),
    "G_SIGMA": (0.0, None, "0 or more (pixels)"),
    "MB_KERNEL": (1, None, "window sizes of at least 1"),
    "MOTB_K_RANGE": (1, None, "lengths of at least 1 pixel"),
    "GC_GAMMA": (1e-3, None, "exponents greater than 0"),
    "BRIGHTNESS_FACTOR": (None, None, "numbers"),
    "CONTRAST_FACTOR": (-1.0, None, "at least -1"),
    "DROP_RANGE": (0.0, 1.0, "fractions between 0 and 1"),
    "COUT_NB_ITERATIONS": (0, None, "counts of 0 or more"),
    "COUT_SIZE": (0.0, 1.0, "fractions between 0 and 1"),
    "CBLUR_SIZE": (1e-6, 1.0, "fractions greater than 0 and at most 1"),
    "CBLUR_DOWN_RANGE": (1, None, "whole downsampling factors of at least 1"),
    "CMIX_SIZE": (1e-6, 1.0, "fractions greater than 0 and at most 1"),
    "CNOISE_SCALE": (0.0, None, "0 or more"),
    "CNOISE_NB_ITERATIONS": (0, None, "counts of 0 or more"),
    "CNOISE_SIZE": (1e-6, 1.0, "fractions greater than 0 and at most 1"),
    "MISSP_ITERATIONS": (0, None, "counts of 0 or more"),
    "GRID_D_RANGE": (1e-6, None, "fractions of the image size greater than 0"),
}


def _check_augmentation(cfg: CN, errors: list[str], notices: list[str]) -> None:
    aug = cfg.AUGMENTOR
    for key, (low, high, text) in AUG_PAIR_BOUNDS.items():
        value = aug[key]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if (
            numeric
            and len(value) == 2
            and ((low is not None and min(value) < low) or (high is not None and max(value) > high))
        ):
            errors.append(f"AUGMENTOR.{key} is {tuple(value)}; it must hold {text}.")
    for key in ("MB_KERNEL", "MOTB_K_RANGE", "COUT_NB_ITERATIONS", "CBLUR_DOWN_RANGE", "CNOISE_NB_ITERATIONS",
                "MISSP_ITERATIONS"):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in aug[key]):
            errors.append(f"AUGMENTOR.{key} is {tuple(aug[key])}; it must be two whole numbers, e.g. (3, 7).")
    if cfg.PROBLEM.NDIM == "2D":
        for key in ("ZFLIP", "ZOOM_IN_Z"):
            if aug[key]:
                errors.append(f"AUGMENTOR.{key} acts on the z axis, which 2D images do not have (PROBLEM.NDIM is "
                              f"2D). Set AUGMENTOR.{key} False, or PROBLEM.NDIM 3D for volumes.")
    if cfg.PROBLEM.NDIM == "3D":
        for key, on in (("RANDAUGMENT.ENABLE", aug.RANDAUGMENT.ENABLE), ("TRIVIALAUGMENT", aug.TRIVIALAUGMENT)):
            if on:
                errors.append(f"AUGMENTOR.{key} is a 2D policy (torchvision's operations act on y-x images); "
                              "PROBLEM.NDIM is 3D. Set it False, or use the 3D AUGMENTOR transformations.")
    if aug.RANDAUGMENT.ENABLE and aug.TRIVIALAUGMENT:
        errors.append("AUGMENTOR.RANDAUGMENT.ENABLE and AUGMENTOR.TRIVIALAUGMENT are both True; choose one policy.")
    switched_on = [name for name in AUGMENT_OPS if aug[name]]
    if switched_on and not aug.ENABLE:
        notices.append(f"AUGMENTOR.ENABLE is False, so {', '.join(switched_on)} (switched on) will not be applied.")


def _check_normalization(cfg: CN, errors: list[str]) -> None:
    clip = cfg.DATA.NORMALIZATION.PERC_CLIP
    if not clip.ENABLE:
        return
    for side in ("LOWER", "UPPER"):
        perc, value = clip[f"{side}_PERC"], clip[f"{side}_VALUE"]
        if value == -1 and not 0 <= perc <= 100:
            errors.append(
                f"DATA.NORMALIZATION.PERC_CLIP.ENABLE is True, so set DATA.NORMALIZATION.PERC_CLIP.{side}_PERC "
                f"(a percentile between 0 and 100, now {perc}) or {side}_VALUE (a value in raw units)."
            )
    low = clip.LOWER_VALUE if clip.LOWER_VALUE != -1 else None
    high = clip.UPPER_VALUE if clip.UPPER_VALUE != -1 else None
    if low is not None and high is not None and low >= high:
        errors.append(f"DATA.NORMALIZATION.PERC_CLIP.LOWER_VALUE ({low}) must be lower than UPPER_VALUE ({high}).")
    if low is None and high is None and 0 <= clip.LOWER_PERC <= 100 and clip.LOWER_PERC >= clip.UPPER_PERC:
        errors.append(f"DATA.NORMALIZATION.PERC_CLIP.LOWER_PERC ({clip.LOWER_PERC}) must be lower than UPPER_PERC "
                      f"({clip.UPPER_PERC}).")


def _check_model(model: CN, errors: list[str]) -> None:
    """ViT sizes (-1 = auto), and the regular expressions of FREEZE_LAYERS_MATCHING."""
    for key in ("VIT_TOKEN_SIZE", "VIT_EMBED_DIM", "VIT_NUM_LAYERS", "VIT_NUM_HEADS"):
        if model[key] != -1 and model[key] < 1:
            errors.append(f"MODEL.{key} is {model[key]}; it must be -1 (chosen for the patch size) or at least 1.")
    if model.VIT_EMBED_DIM > 0 and model.VIT_NUM_HEADS > 0 and model.VIT_EMBED_DIM % model.VIT_NUM_HEADS:
        errors.append(f"MODEL.VIT_NUM_HEADS ({model.VIT_NUM_HEADS}) must divide MODEL.VIT_EMBED_DIM "
                      f"({model.VIT_EMBED_DIM}): each head gets an equal share of the width.")
    for key in ("VIT_MLP_RATIO", "VIT_NORM_EPS"):
        if not model[key] > 0:
            errors.append(f"MODEL.{key} is {model[key]}; it must be greater than 0.")
    for pattern in model.FREEZE_LAYERS_MATCHING:
        try:
            re.compile(str(pattern))
        except re.error as err:
            errors.append(f"MODEL.FREEZE_LAYERS_MATCHING: {pattern!r} is not a valid regular expression ({err}).")


def check_config(cfg: CN, errors: list[str]) -> list[str]:
    """Check `cfg` in place (normalising spellings), adding every problem to `errors`; returns notices."""
    notices: list[str] = []
    if str(cfg.PROBLEM.TYPE).upper() != "CLASSIFICATION":
        raise ConfigError(
            f"PROBLEM.TYPE is '{cfg.PROBLEM.TYPE}', but biapy-cls runs the CLASSIFICATION workflow only. Set "
            "PROBLEM.TYPE: CLASSIFICATION, or use BiaPy for other workflows."
        )
    _check_choices(cfg, errors)
    _check_ranges(cfg, errors)

    ndim = cfg.PROBLEM.NDIM
    patch = cfg.DATA.PATCH_SIZE
    want = 4 if ndim == "3D" else 3
    if len(patch) and (
        len(patch) != want or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in patch)
    ):
        form = "(z, y, x, channels)" if ndim == "3D" else "(y, x, channels)"
        errors.append(
            f"DATA.PATCH_SIZE is {tuple(patch)}, but a {ndim} run needs {want} positive integers {form}, "
            f"e.g. {(16, 32, 32, 1) if ndim == '3D' else (32, 32, 1)}; or leave it out to use the images' own size."
        )
    if cfg.DATA.N_CLASSES != -1 and cfg.DATA.N_CLASSES < 2:
        errors.append(f"DATA.N_CLASSES is {cfg.DATA.N_CLASSES}; it must be at least 2 (or -1: from the class folders).")

    zmuv = cfg.DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR
    if (zmuv.MEAN_VAL == -1) != (zmuv.STD_VAL == -1):
        errors.append("DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR: set both MEAN_VAL and STD_VAL, or neither (-1).")
    elif zmuv.STD_VAL != -1 and zmuv.STD_VAL <= 0:
        errors.append(f"DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR.STD_VAL is {zmuv.STD_VAL}; it must be greater than 0.")

    val = cfg.DATA.VAL
    if val.CROSS_VAL and not val.FROM_TRAIN:
        errors.append("DATA.VAL.CROSS_VAL needs DATA.VAL.FROM_TRAIN True (the folds are cut from the training set).")
    if val.CROSS_VAL and not (1 <= val.CROSS_VAL_FOLD <= val.CROSS_VAL_NFOLD or val.CROSS_VAL_FOLD == -1):
        errors.append(f"DATA.VAL.CROSS_VAL_FOLD is {val.CROSS_VAL_FOLD}; it must be between 1 and CROSS_VAL_NFOLD "
                      f"({val.CROSS_VAL_NFOLD}), or -1 (or 'all') to run every fold.")
    if cfg.DATA.TEST.USE_VAL_AS_TEST and not (cfg.TRAIN.ENABLE and val.FROM_TRAIN):
        errors.append("DATA.TEST.USE_VAL_AS_TEST needs TRAIN.ENABLE True and DATA.VAL.FROM_TRAIN True.")

    aug = cfg.AUGMENTOR
    for key in [k for k in aug.keys() if k.endswith("_PROB")]:
        _check_probability(cfg, f"AUGMENTOR.{key}", errors)
    pairs = [k for k in aug.keys() if k.endswith("_RANGE")] + [k for k in AUG_PAIR_BOUNDS if not k.endswith("_RANGE")]
    for key in pairs:
        _check_pair(cfg, f"AUGMENTOR.{key}", errors)
    _check_augmentation(cfg, errors, notices)
    _check_normalization(cfg, errors)

    if not all(isinstance(v, (int, float)) and 0 <= v < 1 for v in cfg.MODEL.DROPOUT_VALUES):
        errors.append(f"MODEL.DROPOUT_VALUES is {cfg.MODEL.DROPOUT_VALUES}; each value must be in [0, 1).")
    _check_model(cfg.MODEL, errors)
    if cfg.LOSS.TYPE == "":
        cfg.LOSS.TYPE = "CE"

    train = cfg.TRAIN
    betas = train.OPT_BETAS
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        errors.append(f"TRAIN.OPT_BETAS is {tuple(betas)}; it must be two numbers in [0, 1), e.g. (0.9, 0.999).")
    if train.PATIENCE != -1 and train.PATIENCE < 1:
        errors.append(f"TRAIN.PATIENCE is {train.PATIENCE}; it must be -1 (no early stopping) or at least 1.")
    _check_list_choices(cfg, errors)
    _check_training(cfg, errors)

    if not train.ENABLE and not cfg.TEST.ENABLE:
        errors.append("Both TRAIN.ENABLE and TEST.ENABLE are False: there is nothing to do. Set one of them to True.")
    if train.ENABLE and train.EPOCHS == 0:
        errors.append("TRAIN.EPOCHS is 0 with TRAIN.ENABLE True: nothing would be trained" + (
            ", and the test would measure random weights" if cfg.TEST.ENABLE else "") + ". Set TRAIN.EPOCHS to 1 or "
            "more, or TRAIN.ENABLE False to test a trained checkpoint (MODEL.LOAD_CHECKPOINT True).")
    if train.ENABLE and not cfg.DATA.TRAIN.PATH:
        errors.append("TRAIN.ENABLE is True but DATA.TRAIN.PATH is empty: set it to your training folder.")
    if train.ENABLE and not val.FROM_TRAIN and not val.PATH:
        errors.append(
            "DATA.VAL.FROM_TRAIN is False but DATA.VAL.PATH is empty: set the validation folder, or FROM_TRAIN True."
        )
    if cfg.TEST.ENABLE and not cfg.DATA.TEST.USE_VAL_AS_TEST and not cfg.DATA.TEST.PATH:
        errors.append("TEST.ENABLE is True but DATA.TEST.PATH is empty: set it to your test folder.")
    return notices
