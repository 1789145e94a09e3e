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
# Network: simple_cnn (case-insensitive).
_C.MODEL.ARCHITECTURE = "simple_cnn"
# Dropout before the classification head (first value used).
_C.MODEL.DROPOUT_VALUES = [0.2]
# Start from a checkpoint: PATHS.CHECKPOINT_FILE, or this job's own (see LOAD_CHECKPOINT_EPOCH); needed to test without training.
_C.MODEL.LOAD_CHECKPOINT = False
# Which of this job's checkpoints to load when PATHS.CHECKPOINT_FILE is empty: best_on_val or last_on_train.
_C.MODEL.LOAD_CHECKPOINT_EPOCH = "best_on_val"
# Also keep RUN-checkpoint-<epoch>.pth every this many epochs (besides best and last); -1 = never.
_C.MODEL.SAVE_CKPT_FREQ = -1

# ---------------------------------------------------------------------------------------------------
_C.LOSS = CN()
# Loss: CE (cross-entropy; '' means CE).
_C.LOSS.TYPE = "CE"
# Class weights of the loss: none, auto (inverse class frequency in the training set) or manual (LOSS.CLASS_WEIGHTS); BiaPy's False/True mean none/auto.
_C.LOSS.CLASS_REBALANCE = "none"
# One weight per class, in class-index order, used when LOSS.CLASS_REBALANCE is manual.
_C.LOSS.CLASS_WEIGHTS = []
# Label smoothing of the cross-entropy (0 = none, e.g. 0.1).
_C.LOSS.LABEL_SMOOTHING = 0.0

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
# Momentum of SGD (Nesterov momentum when greater than 0).
_C.TRAIN.MOMENTUM = 0.9
# Images per batch (per process when training on several GPUs).
_C.TRAIN.BATCH_SIZE = 32
# Accumulate the gradients of this many batches per optimizer step (effective batch = BATCH_SIZE x ACCUM_ITER x processes).
_C.TRAIN.ACCUM_ITER = 1
# Clip the gradients to this total L2 norm before each optimizer step; 0 = no clipping.
_C.TRAIN.GRADIENT_CLIP_NORM = 0.0
# Mixed precision on CUDA: auto (bf16 where the GPU supports it, else fp16 with a gradient scaler), bf16, fp16 or none; always off on the CPU.
_C.TRAIN.AMP = "auto"
# Maximum number of epochs.
_C.TRAIN.EPOCHS = 100
# With several processes, scale TRAIN.LR: none, or linear (LR x number of processes, for the larger effective batch).
_C.TRAIN.LR_SCALING = "none"
# Stop after this many epochs without improvement of TRAIN.CHECKPOINT_MONITOR; -1 = never stop early.
_C.TRAIN.PATIENCE = 20
# Quantity that picks the best checkpoint and drives early stopping and reduceonplateau: val_loss, val_accuracy or val_f1 (macro).
_C.TRAIN.CHECKPOINT_MONITOR = "val_loss"
# Metrics logged and charted each epoch besides the loss: accuracy, f1 (macro), top-5-accuracy; [] = accuracy and f1.
_C.TRAIN.METRICS = []

_C.TRAIN.LR_SCHEDULER = CN()
# Learning-rate schedule: '' (constant), reduceonplateau, warmupcosine (per-step linear warm-up, then cosine to MIN_LR) or onecycle (PyTorch's OneCycleLR, peak TRAIN.LR).
_C.TRAIN.LR_SCHEDULER.NAME = ""
# Lowest learning rate of reduceonplateau and warmupcosine; -1 = 0.
_C.TRAIN.LR_SCHEDULER.MIN_LR = -1.0
# reduceonplateau multiplies the learning rate by this factor (between 0 and 1) when TRAIN.CHECKPOINT_MONITOR stalls.
_C.TRAIN.LR_SCHEDULER.REDUCEONPLATEAU_FACTOR = 0.5
# Epochs without improvement before reduceonplateau lowers the learning rate (less than TRAIN.PATIENCE); required by reduceonplateau.
_C.TRAIN.LR_SCHEDULER.REDUCEONPLATEAU_PATIENCE = -1
# Warm-up epochs of warmupcosine (the learning rate rises linearly, step by step, to TRAIN.LR); required by warmupcosine.
_C.TRAIN.LR_SCHEDULER.WARMUP_COSINE_DECAY_EPOCHS = -1

# ---------------------------------------------------------------------------------------------------
_C.TEST = CN()
# Predict the test images (and evaluate them when DATA.TEST.LOAD_GT is True).
_C.TEST.ENABLE = False
# Test metrics printed in the summary line (every metric is always written to test_metrics.json): accuracy, balanced_accuracy, f1, precision, recall, roc_auc; [] = accuracy, balanced_accuracy, f1.
_C.TEST.METRICS = []

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
