"""BiaPy keys that are not in defaults.py, and what happens to each, by exact key name.

Every key of BiaPy 3.7.1 is listed by its exact name in `biapy_keys.py` (generated from BiaPy's own
config.py), so a typo such as `AUGMENTOR.SHEER_RANGE` is never mistaken for a BiaPy key: it is an
unknown key, and the error suggests the closest valid one. A BiaPy key that is not ours is:

- RENAMED: translated to our key, with a notice (older BiaPy names included).
- NOT_USED: a key BiaPy itself ignores in classification (segmentation, detection, ... settings), or a
  path that comes from the command line here. Accepted with a notice: no effect in BiaPy either.
- UNSUPPORTED: a BiaPy feature biapy-cls does not implement. Accepted only at BiaPy's default value
  (which asks for nothing); any other value is an error that says so. Never silently ignored.

`lookup(key)` gives the verdict for one key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from biapy_cls.config.biapy_keys import BIAPY_DEFAULTS, BIAPY_VERSION

RENAMED = {
    "MODEL.N_CLASSES": "DATA.N_CLASSES",
    "DATA.NORMALIZATION.CUSTOM_MEAN": "DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR.MEAN_VAL",
    "DATA.NORMALIZATION.CUSTOM_STD": "DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR.STD_VAL",
}

# Old values of a key that mean the same as a current value.
RENAMED_VALUES = {
    ("DATA.NORMALIZATION.TYPE", "custom"): "zero_mean_unit_variance",
    # BiaPy's LOSS.CLASS_REBALANCE is a switch; on, it weights classes by inverse frequency.
    ("LOSS.CLASS_REBALANCE", False): "none",
    ("LOSS.CLASS_REBALANCE", True): "auto",
}

# Keys BiaPy 3.7 writes as lists where biapy-cls takes one value: key -> what BiaPy's list entries are for.
# A one-entry list is read as its entry; a longer one is an error that says why.
LISTS_OF_ONE = {
    "TRAIN.OPTIMIZER": "one per optimizer, several only in BiaPy's GAN workflows; a classifier has one",
    "TRAIN.LR": "one per optimizer, several only in BiaPy's GAN workflows; a classifier has one",
    "TRAIN.OPT_BETAS": "one per optimizer, several only in BiaPy's GAN workflows; a classifier has one",
    "DATA.NORMALIZATION.PERC_CLIP.LOWER_VALUE": "one per channel; biapy-cls applies one value to every channel",
    "DATA.NORMALIZATION.PERC_CLIP.UPPER_VALUE": "one per channel; biapy-cls applies one value to every channel",
    "DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR.MEAN_VAL": "one per channel; biapy-cls applies one value to every channel",
    "DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR.STD_VAL": "one per channel; biapy-cls applies one value to every channel",
}

# Why BiaPy keys have no effect in classification. A key is NOT_USED only if it is one of BiaPy's
# (BIAPY_DEFAULTS, by exact name) and not UNSUPPORTED; the section prefix picks the explanation.
SEGMENTATION = "a segmentation setting"
FROM_COMMAND_LINE = "output folders and names come from --result_dir, --name and --run_id"
WHOLE_IMAGES = "a segmentation, detection or Zarr/H5 setting: classification reads whole images from class folders"
NOT_USED_WHY = [
    ("PROBLEM.SEMANTIC_SEG.", "a semantic segmentation setting"),
    ("PROBLEM.INSTANCE_SEG.", "an instance segmentation setting"),
    ("PROBLEM.DETECTION.", "a detection setting"),
    ("PROBLEM.DENOISING.", "a denoising setting"),
    ("PROBLEM.SUPER_RESOLUTION.", "a super-resolution setting"),
    ("PROBLEM.SELF_SUPERVISED.", "a self-supervised setting"),
    ("PROBLEM.IMAGE_TO_IMAGE.", "an image-to-image setting"),
    ("PROBLEM.PRINT_OLD_KEY_CHANGES", "renamed BiaPy keys are always reported"),
    ("DATA.NORMALIZATION.TARGET.", "normalisation of target images (image-to-image workflows)"),
    ("DATA.TEST.ROI_MASK.", "a region-of-interest mask for segmentation by chunks"),
    ("DATA.TRAIN.CHECK_DATA", "the data is always checked before training"),
    ("DATA.TEST.CHECK_DATA", "the data is always checked before testing"),
    ("DATA.VAL.DIST_EVAL", "validation is always shared across processes in distributed runs"),
    ("DATA.W_", SEGMENTATION),
    ("DATA.TRAIN.W_", SEGMENTATION),
    ("DATA.TRAIN.PROBABILITY_MAP", SEGMENTATION),
    ("DATA.TRAIN.MINIMUM_FOREGROUND_PER", SEGMENTATION),
    ("DATA.TEST.MEDIAN_PADDING", "a patch-cropping setting for segmentation"),
    ("DATA.TEST.BINARY_MASKS", SEGMENTATION),
    ("DATA.TEST.ARGMAX_TO_OUTPUT", SEGMENTATION),
    ("DATA.TRAIN.", WHOLE_IMAGES),
    ("DATA.VAL.", WHOLE_IMAGES),
    ("DATA.TEST.", WHOLE_IMAGES),
    ("AUGMENTOR.COUT_APPLY_TO_MASK", "cutout of segmentation masks; classification has no masks"),
    ("MODEL.CONVNEXT_", "a U-NeXt setting"),
    ("MODEL.MAE_", "a masked-autoencoder setting"),
    ("MODEL.UNETR_", "a UNETR setting"),
    ("MODEL.UNET_SR_", "a super-resolution setting"),
    ("MODEL.RCAN_", "a super-resolution setting"),
    ("MODEL.HRNET", "an HRNet setting"),
    ("MODEL.NAFNET", "a NAFNet (image restoration) setting"),
    ("MODEL.STUNET", "an STU-Net (segmentation) setting"),
    ("MODEL.", "a U-Net setting; classification networks have their own widths"),
    ("LOSS.WEIGHTS", "weights of combined segmentation losses"),
    ("LOSS.GAN.", "a GAN setting"),
    ("TEST.EVAL_BORDER_CROP", "a segmentation/image-to-image setting"),
    ("TEST.SAVE_MODEL_RAW_OUTPUT", "an image-to-image setting"),
    ("TEST.METRICS_IN_CPU", "classification metrics are always computed on the CPU"),
    ("TEST.FULL_IMG", SEGMENTATION),
    ("TEST.DET_", "a detection setting"),
    ("TEST.MATCHING_STATS", "an instance segmentation setting"),
    ("TEST.POST_PROCESSING.", "a segmentation/detection post-processing setting"),
    ("TEST.VERBOSE", "progress is always shown"),
    ("TRAIN.VERBOSE", "progress is always shown"),
    ("TEST.REDUCE_MEMORY", "inference is batched and holds only one batch at a time"),
    ("SYSTEM.NUM_GPUS", "the GPUs come from the --gpu flag"),
    ("LOG.", FROM_COMMAND_LINE),
    ("PATHS.", FROM_COMMAND_LINE),
]

# BiaPy features biapy-cls does not implement: accepted only at BiaPy's default (BIAPY_DEFAULTS).
UNSUPPORTED_KEYS = [
    "SYSTEM.DEVICE",
    "DATA.CHECK_GENERATORS",
    "DATA.FILTER_BY_IMAGE",
    "DATA.SAVE_FILTERED_IMAGES",
    "DATA.SAVE_FILTERED_IMAGES_NUM",
    "DATA.TRAIN.EXTRACT_RANDOM_PATCH",
    "DATA.RESOLUTION_NORM.ENABLE",
    "DATA.RESOLUTION_NORM.TARGET_RESOLUTION",
    "MODEL.VIT_PRETRAINED_WEIGHTS",
    "MODEL.ITEMS_TO_LOAD_FROM_CHECKPOINT",
    "LOSS.IGNORE_INDEX",
    "LOSS.CONTRAST.ENABLE",
    "LOSS.CONTRAST.MEMORY_SIZE",
    "LOSS.CONTRAST.PROJ_DIM",
    "LOSS.CONTRAST.PIXEL_UPD_FREQ",
    "TRAIN.LR_SCHEDULER.COSINE_DECAY_FRACTION",
    "TRAIN.SAVE_TRAIN_PREDS_FREQ",
    "TRAIN.SAVE_TRAIN_PREDS_NUM_SAMPLES",
    "TRAIN.SAVE_TRAIN_PREDS_SHOW",
    "TEST.AUGMENTATION_GROUP",
    "TEST.ANALIZE_2D_IMGS_AS_3D_STACK",
    "TEST.REUSE_PREDICTIONS",
    *[f"TEST.BY_CHUNKS.{k}" for k in (
        "ENABLE", "FLUSH_EACH", "PHASES", "SAVE_OUT_TIF", "WRITE_RAW_PREDICTIONS", "Z_START", "Z_END",
        "WORKFLOW_PROCESS.ENABLE", "WORKFLOW_PROCESS.TYPE", "WORKFLOW_PROCESS.PATCHES_PER_TILE",
        "WORKFLOW_PROCESS.INSTANCE_SEG_MERGE_IOU_TH")],
]

# Names of BiaPy versions before 3.7 (which BiaPy 3.7 translates): accepted at the value that asks for nothing.
OLD_UNSUPPORTED = {
    "DATA.EXTRACT_RANDOM_PATCH": False,
    "DATA.PROBABILITY_MAP": False,
    "MODEL.LOAD_CHECKPOINT_ONLY_WEIGHTS": True,
    "MODEL.LOAD_MODEL_FROM_CHECKPOINT": True,
}


@dataclass(frozen=True)
class Verdict:
    kind: str  # "renamed", "not_used", "unsupported" or "unknown"
    detail: Any = None  # the new name, why it is not used, or the only accepted value


def lookup(key: str, ours: set[str] | frozenset[str] = frozenset()) -> Verdict:
    """What happens to `key` (not one of `ours`, the keys of defaults.py)."""
    if key in RENAMED:
        return Verdict("renamed", RENAMED[key])
    if key in OLD_UNSUPPORTED:
        return Verdict("unsupported", OLD_UNSUPPORTED[key])
    if key not in BIAPY_DEFAULTS or key in ours:
        return Verdict("unknown")
    if key in _UNSUPPORTED:
        return Verdict("unsupported", BIAPY_DEFAULTS[key])
    why = next((why for prefix, why in NOT_USED_WHY if key.startswith(prefix)), None)
    return Verdict("not_used", why or f"not read by BiaPy {BIAPY_VERSION}'s classification workflow")


_UNSUPPORTED = frozenset(UNSUPPORTED_KEYS)


def same_value(a, b) -> bool:
    """Compare a YAML value with a BiaPy default, treating tuples and lists alike."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    return a == b
