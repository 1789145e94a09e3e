"""BiaPy keys that are not in defaults.py, and what happens to each.

- RENAMED: translated to our key, with a notice.
- NOT_USED: keys BiaPy itself ignores in classification (segmentation, detection, ... settings), or
  paths that come from the command line here. Accepted with a notice, so that a BiaPy YAML runs
  unchanged; they have no effect in BiaPy's classification workflow either.
- UNSUPPORTED: BiaPy features biapy-cls does not implement. Accepted only at BiaPy's default value
  (which asks for nothing); any other value is an error that says so. Never silently ignored.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

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

# pattern -> why it has no effect
NOT_USED = {
    "PROBLEM.SEMANTIC_SEG.*": "a semantic segmentation setting",
    "PROBLEM.INSTANCE_SEG.*": "an instance segmentation setting",
    "PROBLEM.DETECTION.*": "a detection setting",
    "PROBLEM.DENOISING.*": "a denoising setting",
    "PROBLEM.SUPER_RESOLUTION.*": "a super-resolution setting",
    "PROBLEM.SELF_SUPERVISED.*": "a self-supervised setting",
    "PROBLEM.IMAGE_TO_IMAGE.*": "an image-to-image setting",
    "DATA.*.GT_PATH": "classification labels come from the class folders, not masks",
    "DATA.*.INSTANCE_CHANNELS_DIR": "an instance segmentation setting",
    "DATA.*.INSTANCE_CHANNELS_MASK_DIR": "an instance segmentation setting",
    "DATA.*.DETECTION_MASK_DIR": "a detection setting",
    "DATA.*.SSL_SOURCE_DIR": "a self-supervised setting",
    "DATA.*.INPUT_IMG_AXES_ORDER": "a Zarr/H5 setting; images here are read from files",
    "DATA.*.INPUT_MASK_AXES_ORDER": "a Zarr/H5 setting",
    "DATA.*.INPUT_ZARR_MULTIPLE_DATA*": "a Zarr setting",
    "DATA.*.OVERLAP": "a patch-cropping setting for segmentation; classification uses whole images",
    "DATA.*.PADDING": "a patch-cropping setting for segmentation; classification uses whole images",
    "DATA.*.RESOLUTION": "a segmentation/detection setting",
    "DATA.TEST.MEDIAN_PADDING": "a patch-cropping setting for segmentation",
    "DATA.TEST.BINARY_MASKS": "a segmentation setting",
    "DATA.TEST.ARGMAX_TO_OUTPUT": "a segmentation setting",
    "DATA.W_FOREGROUND": "a segmentation setting",
    "DATA.W_BACKGROUND": "a segmentation setting",
    "DATA.TRAIN.MINIMUM_FOREGROUND_PER": "a segmentation setting",
    "DATA.TRAIN.CHECK_DATA": "the data is always checked before training",
    "DATA.TEST.CHECK_DATA": "the data is always checked before testing",
    "DATA.VAL.DIST_EVAL": "validation is always shared across processes in distributed runs",
    "MODEL.FEATURE_MAPS": "a U-Net setting; classification networks have their own widths",
    "MODEL.UPSAMPLE_LAYER": "a U-Net setting",
    "MODEL.Z_DOWN": "a U-Net setting",
    "MODEL.ISOTROPY": "a U-Net setting",
    "MODEL.LARGER_IO": "a U-Net setting",
    "MODEL.NORMALIZATION": "a U-Net setting",
    "MODEL.KERNEL_SIZE": "a U-Net setting",
    "MODEL.ACTIVATION": "a U-Net setting",
    "MODEL.CONVNEXT_*": "a U-NeXt setting",
    "MODEL.MAE_*": "a masked-autoencoder setting",
    "MODEL.UNETR_*": "a UNETR setting",
    "MODEL.UNET_SR_*": "a super-resolution setting",
    "MODEL.RCAN_*": "a super-resolution setting",
    "MODEL.HRNET*": "an HRNet setting",
    "LOSS.WEIGHTS": "weights of combined segmentation losses",
    "TEST.FULL_IMG": "a segmentation setting",
    "TEST.DET_*": "a detection setting",
    "TEST.MATCHING_STATS*": "an instance segmentation setting",
    "TEST.POST_PROCESSING.*": "a segmentation/detection post-processing setting",
    "TEST.VERBOSE": "progress is always shown",
    "TRAIN.VERBOSE": "progress is always shown",
    "TEST.REDUCE_MEMORY": "inference is batched and holds only one batch at a time",
    "SYSTEM.NUM_GPUS": "the GPUs come from the --gpu flag",
    "LOG.LOG_DIR": "output folders come from --result_dir and --name",
    "LOG.TENSORBOARD_LOG_DIR": "output folders come from --result_dir and --name",
    "LOG.LOG_FILE_PREFIX": "output names come from --name and --run_id",
    "PATHS.RESULT_DIR.*": "output folders come from --result_dir and --name",
    "PATHS.CHARTS": "output folders come from --result_dir and --name",
    "PATHS.DA_SAMPLES": "output folders come from --result_dir and --name",
    "PATHS.GEN_CHECKS": "output folders come from --result_dir and --name",
    "PATHS.GEN_MASK_CHECKS": "output folders come from --result_dir and --name",
    "PATHS.CHECKPOINT": "output folders come from --result_dir and --name",
    "PATHS.PROFILER": "output folders come from --result_dir and --name",
    "PATHS.BMZ_EXPORT_PATH": "output folders come from --result_dir and --name",
    "PATHS.*_INSTANCE_CHANNELS_CHECK": "an instance segmentation setting",
    "PATHS.PROB_MAP_*": "a segmentation setting",
    "PATHS.WATERSHED_DIR": "a segmentation setting",
    "PATHS.MAE_OUT_DIR": "a masked-autoencoder setting",
    "PATHS.FIL_SAMPLES_DIR": "output folders come from --result_dir and --name",
    "AUGMENTOR.COUT_APPLY_TO_MASK": "cutout of segmentation masks; classification has no masks",
    "PATHS.TEST_FULL_GT_H5": "a segmentation setting",
}

# key -> BiaPy's default (the only value accepted). Patterns allowed.
UNSUPPORTED = {
    "SYSTEM.DEVICE": "cpu",
    "DATA.CHECK_GENERATORS": False,
    "DATA.EXTRACT_RANDOM_PATCH": False,
    "DATA.PROBABILITY_MAP": False,
    "DATA.FILTER_BY_IMAGE": False,
    "DATA.SAVE_FILTERED_IMAGES": False,
    "DATA.SAVE_FILTERED_IMAGES_NUM": 3,
    "DATA.PREPROCESS.TRAIN": False,
    "DATA.PREPROCESS.VAL": False,
    "DATA.PREPROCESS.TEST": False,
    "DATA.PREPROCESS.*.ENABLE": False,
    "DATA.PREPROCESS.*": None,  # sub-settings of the above: any value, they act only when enabled
    "DATA.TRAIN.REPLICATE": 0,
    "DATA.*.FILTER_SAMPLES.ENABLE": False,
    "DATA.*.FILTER_SAMPLES.*": None,
    "AUGMENTOR.CUTBLUR": False,
    "AUGMENTOR.CUTMIX": False,
    "AUGMENTOR.CUTNOISE": False,
    "AUGMENTOR.MISALIGNMENT": False,
    "AUGMENTOR.MISSING_SECTIONS": False,
    "AUGMENTOR.GRAYSCALE": False,
    "AUGMENTOR.CHANNEL_SHUFFLE": False,
    "AUGMENTOR.GRIDMASK": False,
    "AUGMENTOR.POISSON_NOISE": False,
    "AUGMENTOR.SALT": False,
    "AUGMENTOR.PEPPER": False,
    "AUGMENTOR.SALT_AND_PEPPER": False,
    # Parameters of the augmentations above: accepted at any value, they act only when enabled.
    "AUGMENTOR.*_RANGE": None,
    "AUGMENTOR.CBLUR_*": None,
    "AUGMENTOR.CMIX_*": None,
    "AUGMENTOR.CNOISE_*": None,
    "AUGMENTOR.MS_*": None,
    "AUGMENTOR.MISSP_*": None,
    "AUGMENTOR.GRID_*": None,
    "AUGMENTOR.*_AMOUNT": None,
    "AUGMENTOR.SALT_AND_PEPPER_PROP": None,
    "MODEL.BMZ.EXPORT.ENABLE": False,
    "MODEL.BMZ.*": None,
    "MODEL.LOAD_CHECKPOINT_ONLY_WEIGHTS": True,
    "MODEL.LOAD_MODEL_FROM_CHECKPOINT": True,
    "MODEL.OUT_CHECKPOINT_FORMAT": "pth",
    "LOSS.IGNORE_INDEX": -1,
    "LOSS.CONTRAST.ENABLE": False,
    "LOSS.CONTRAST.*": None,
    "TEST.ANALIZE_2D_IMGS_AS_3D_STACK": False,
    "TEST.REUSE_PREDICTIONS": False,
    "TEST.BY_CHUNKS.ENABLE": False,
    "TEST.BY_CHUNKS.*": None,
}


def match(table: dict, key: str):
    """(pattern, value) of the first entry of `table` matching `key`, exact names first; else None."""
    if key in table:
        return key, table[key]
    for pattern, value in table.items():
        if "*" in pattern and fnmatchcase(key, pattern):
            return pattern, value
    return None


def same_value(a, b) -> bool:
    """Compare a YAML value with a BiaPy default, treating tuples and lists alike."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    return a == b
