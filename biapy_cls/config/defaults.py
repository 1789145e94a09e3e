"""Every configuration key biapy-cls understands, with its default and a one-line meaning.

Key names are BiaPy's, so that a BiaPy classification YAML runs unchanged. The comment line right
above a key is its documentation: `scripts/gen_config_docs.py` turns this file into
docs/configuration.md. Accepted values and ranges are checked in `check.py`.
BiaPy keys that are not listed here are handled in `compat.py` (renamed, not used, or unsupported).
"""

from yacs.config import CfgNode as CN

_C = CN()

# ---------------------------------------------------------------------------------------------------
_C.SYSTEM = CN()
# Maximum number of CPU threads for computing; -1 uses every core.
_C.SYSTEM.NUM_CPUS = -1
# DataLoader worker processes that read images when IN_MEMORY is False; -1 = min(4, NUM_CPUS), 0 = none.
_C.SYSTEM.NUM_WORKERS = -1
# Seed of every random number generator (split, shuffling, augmentation, initialisation).
_C.SYSTEM.SEED = 0
# Pin host memory of batches for faster copies to the GPU (CUDA only).
_C.SYSTEM.PIN_MEM = True

# ---------------------------------------------------------------------------------------------------
_C.PROBLEM = CN()
# Workflow; biapy-cls implements BiaPy's CLASSIFICATION workflow only.
_C.PROBLEM.TYPE = "CLASSIFICATION"
# Image dimensionality: 2D images (y, x, c) or 3D volumes (z, y, x, c).
_C.PROBLEM.NDIM = "2D"

# ---------------------------------------------------------------------------------------------------
_C.DATA = CN()
# Size every image is brought to, with channels: (y, x, c) in 2D, (z, y, x, c) in 3D; () = that of the training images.
_C.DATA.PATCH_SIZE = ()
# Number of classes; -1 = the number of class folders in DATA.TRAIN.PATH (a set value must equal it).
_C.DATA.N_CLASSES = -1
# Turn single-channel images into RGB when DATA.PATCH_SIZE has 3 channels.
_C.DATA.FORCE_RGB = False
# Pad images smaller than DATA.PATCH_SIZE by reflection (centred) instead of stretching them.
_C.DATA.REFLECT_TO_COMPLETE_SHAPE = False

_C.DATA.NORMALIZATION = CN()
# Intensity normalisation: div (by the dtype's range, 255 or 65535), scale_range (per-image min-max) or zero_mean_unit_variance.
_C.DATA.NORMALIZATION.TYPE = "zero_mean_unit_variance"
# Statistics of zero_mean_unit_variance and percentile clipping are measured per 'image' (a patch is a whole image here).
_C.DATA.NORMALIZATION.MEASURE_BY = "image"
_C.DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR = CN()
# Mean subtracted by zero_mean_unit_variance, in the images' raw units; -1 = each image's own mean.
_C.DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR.MEAN_VAL = -1.0
# Standard deviation divided by zero_mean_unit_variance, in raw units; -1 = each image's own std.
_C.DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR.STD_VAL = -1.0

_C.DATA.TRAIN = CN()
# Training images: one sub-folder per class, named after the class.
_C.DATA.TRAIN.PATH = ""
# Decode the training images once into memory (fast) instead of reading them from disk every epoch.
_C.DATA.TRAIN.IN_MEMORY = True

_C.DATA.VAL = CN()
# Take the validation set from the training set (stratified split) instead of from DATA.VAL.PATH.
_C.DATA.VAL.FROM_TRAIN = True
# Fraction of each class's training images used for validation when FROM_TRAIN is True.
_C.DATA.VAL.SPLIT_TRAIN = 0.1
# Pick the validation images at random (seeded); False takes the last images of each class.
_C.DATA.VAL.RANDOM = True
# Use k-fold cross-validation on the training set instead of one split (FROM_TRAIN must be True).
_C.DATA.VAL.CROSS_VAL = False
# Number of cross-validation folds.
_C.DATA.VAL.CROSS_VAL_NFOLD = 5
# Fold (1..CROSS_VAL_NFOLD) used for validation.
_C.DATA.VAL.CROSS_VAL_FOLD = 1
# Validation images (one sub-folder per training class) when FROM_TRAIN is False.
_C.DATA.VAL.PATH = ""
# Keep the validation images in memory.
_C.DATA.VAL.IN_MEMORY = True

_C.DATA.TEST = CN()
# Test images: class sub-folders when LOAD_GT is True; otherwise a flat folder or any sub-folders.
_C.DATA.TEST.PATH = ""
# The test images are in class sub-folders, so metrics can be computed.
_C.DATA.TEST.LOAD_GT = False
# Keep the test images in memory.
_C.DATA.TEST.IN_MEMORY = False
# Test on the validation images (with their labels) instead of DATA.TEST.PATH.
_C.DATA.TEST.USE_VAL_AS_TEST = False

# ---------------------------------------------------------------------------------------------------
_C.AUGMENTOR = CN()
# Augment the training images (each transformation below that is switched on).
_C.AUGMENTOR.ENABLE = False
# Probability of applying each switched-on transformation to an image (unless its own *_PROB is set).
_C.AUGMENTOR.DA_PROB = 0.5
# Shuffle the training images every epoch.
_C.AUGMENTOR.SHUFFLE_TRAIN_DATA_EACH_EPOCH = True
# Shuffle the validation images every epoch (changes nothing but the order).
_C.AUGMENTOR.SHUFFLE_VAL_DATA_EACH_EPOCH = False
# Rotate by a random angle from RANDOM_ROT_RANGE (in the y-x plane).
_C.AUGMENTOR.RANDOM_ROT = False
# Range of the random rotation, in degrees.
_C.AUGMENTOR.RANDOM_ROT_RANGE = (-180, 180)
# Probability of RANDOM_ROT; -1 = DA_PROB.
_C.AUGMENTOR.RANDOM_ROT_PROB = -1.0
# Flip vertically (along y).
_C.AUGMENTOR.VFLIP = False
# Probability of VFLIP; -1 = DA_PROB.
_C.AUGMENTOR.VFLIP_PROB = -1.0
# Flip horizontally (along x).
_C.AUGMENTOR.HFLIP = False
# Probability of HFLIP; -1 = DA_PROB.
_C.AUGMENTOR.HFLIP_PROB = -1.0

# ---------------------------------------------------------------------------------------------------
_C.MODEL = CN()
# Network, 2D or 3D: simple_cnn, vit, efficientnet_b0 ... efficientnet_b7 (case-insensitive; EfficientNetB0 too).
_C.MODEL.ARCHITECTURE = "simple_cnn"
# Dropout before the classification head (first value used).
_C.MODEL.DROPOUT_VALUES = [0.2]
# ViT base size: custom (the VIT_* keys below) or the sizes of vit_base_patch16, vit_large_patch16, vit_huge_patch14.
_C.MODEL.VIT_MODEL = "custom"
# ViT token (patch) side in pixels; -1 = auto: chosen for DATA.PATCH_SIZE (e.g. 4 for 32x32) and logged.
_C.MODEL.VIT_TOKEN_SIZE = -1
# ViT embedding width; -1 = auto (128 for patches up to 64 pixels, 256 up to 160, else 384).
_C.MODEL.VIT_EMBED_DIM = -1
# ViT transformer layers; -1 = auto (4, 6 or 8 by patch size).
_C.MODEL.VIT_NUM_LAYERS = -1
# ViT attention heads (must divide VIT_EMBED_DIM); -1 = auto (4 or 6, a divisor of the width).
_C.MODEL.VIT_NUM_HEADS = -1
# ViT MLP width as a multiple of VIT_EMBED_DIM.
_C.MODEL.VIT_MLP_RATIO = 4.0
# Epsilon of the ViT's layer normalisation.
_C.MODEL.VIT_NORM_EPS = 1.0e-6
# Local timm-compatible weights file (.pth/.bin/.safetensors) to start a 2D vit/efficientnet from; first conv adapted to the channels, mismatched head skipped; never downloaded.
_C.MODEL.PRETRAINED_WEIGHTS = ""
# When loading a checkpoint or PRETRAINED_WEIGHTS, skip (and log) tensors whose shape differs, e.g. the head for another class count.
_C.MODEL.SKIP_UNMATCHED_LAYERS = False
# Freeze the parameters whose name matches any of these regular expressions (e.g. ['^features\\.']); they are not trained.
_C.MODEL.FREEZE_LAYERS_MATCHING = []
# Start from a checkpoint: PATHS.CHECKPOINT_FILE, or this job's own (see LOAD_CHECKPOINT_EPOCH); needed to test without training, and fine-tunes with TRAIN.ENABLE.
_C.MODEL.LOAD_CHECKPOINT = False
# Which of this job's checkpoints to load when PATHS.CHECKPOINT_FILE is empty: best_on_val or last_on_train.
_C.MODEL.LOAD_CHECKPOINT_EPOCH = "best_on_val"

# ---------------------------------------------------------------------------------------------------
_C.LOSS = CN()
# Loss: CE (cross-entropy; '' means CE).
_C.LOSS.TYPE = "CE"

# ---------------------------------------------------------------------------------------------------
_C.TRAIN = CN()
# Train a model.
_C.TRAIN.ENABLE = False
# Optimizer: SGD, ADAM or ADAMW.
_C.TRAIN.OPTIMIZER = "ADAMW"
# Learning rate.
_C.TRAIN.LR = 1.0e-3
# Weight decay.
_C.TRAIN.W_DECAY = 0.02
# Betas of ADAM and ADAMW.
_C.TRAIN.OPT_BETAS = (0.9, 0.999)
# Images per batch (per process when training on several GPUs).
_C.TRAIN.BATCH_SIZE = 32
# Maximum number of epochs.
_C.TRAIN.EPOCHS = 100
# Stop after this many epochs without improvement of the validation loss; -1 = never stop early.
_C.TRAIN.PATIENCE = 20

# ---------------------------------------------------------------------------------------------------
_C.TEST = CN()
# Predict the test images (and evaluate them when DATA.TEST.LOAD_GT is True).
_C.TEST.ENABLE = False

# ---------------------------------------------------------------------------------------------------
_C.LOG = CN()
# Redraw the training charts every this many epochs (and always at the end).
_C.LOG.CHART_CREATION_FREQ = 5

# ---------------------------------------------------------------------------------------------------
_C.PATHS = CN()
# A biapy-cls checkpoint (.pth) to test with or start from; empty = this job's own checkpoint.
_C.PATHS.CHECKPOINT_FILE = ""


def get_cfg_defaults() -> CN:
    """A fresh copy of the defaults, safe to modify."""
    return _C.clone()
