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
# DataLoader worker processes reading images when IN_MEMORY is False; -1 = min(4, NUM_CPUS), 0 = none; at most the CPUs.
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
# Intensity normalisation: div (by the dtype's range, 255 or 65535), scale_range (per-image min-max) or
# zero_mean_unit_variance.
_C.DATA.NORMALIZATION.TYPE = "zero_mean_unit_variance"
# Where statistics not given below come from: each 'image' ('patch' is the same here), or the whole training set
# ('dataset', computed once and stored in the checkpoint).
_C.DATA.NORMALIZATION.MEASURE_BY = "image"
_C.DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR = CN()
# Mean subtracted by zero_mean_unit_variance, in the images' raw units; -1 = measured (see MEASURE_BY).
_C.DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR.MEAN_VAL = -1.0
# Standard deviation divided by zero_mean_unit_variance, in raw units; -1 = measured (see MEASURE_BY).
_C.DATA.NORMALIZATION.ZERO_MEAN_UNIT_VAR.STD_VAL = -1.0
_C.DATA.NORMALIZATION.PERC_CLIP = CN()
# Clip intensities to percentiles (or fixed values) before normalising.
_C.DATA.NORMALIZATION.PERC_CLIP.ENABLE = False
# Lower percentile (0-100) to clip to, measured as MEASURE_BY says; -1 = use LOWER_VALUE.
_C.DATA.NORMALIZATION.PERC_CLIP.LOWER_PERC = -1.0
# Upper percentile (0-100) to clip to; -1 = use UPPER_VALUE.
_C.DATA.NORMALIZATION.PERC_CLIP.UPPER_PERC = -1.0
# Lower clipping value in raw units; when set (not -1) it is used instead of LOWER_PERC.
_C.DATA.NORMALIZATION.PERC_CLIP.LOWER_VALUE = -1.0
# Upper clipping value in raw units; when set (not -1) it is used instead of UPPER_PERC.
_C.DATA.NORMALIZATION.PERC_CLIP.UPPER_VALUE = -1.0

_C.DATA.TRAIN = CN()
# Training images: one sub-folder per class, named after the class.
_C.DATA.TRAIN.PATH = ""
# Decode the training images once into memory (fast) instead of reading them from disk every epoch.
_C.DATA.TRAIN.IN_MEMORY = True
# Show every training image this many times per epoch (0 or 1 = once), e.g. to make short epochs of a small set longer.
_C.DATA.TRAIN.REPLICATE = 0

_C.DATA.TRAIN.FILTER_SAMPLES = CN()
# Remove training images that meet any group of conditions below (before training; listed in
# results/RUN/filtered_samples.csv).
_C.DATA.TRAIN.FILTER_SAMPLES.ENABLE = False
# Groups of image properties ('mean', 'min', 'max' of the image as read), e.g. [['mean'], ['min', 'max']]; an image
# meeting every condition of any group is removed.
_C.DATA.TRAIN.FILTER_SAMPLES.PROPS = []
# The value each property is compared with, in the same nesting as PROPS, e.g. [[10], [0, 255]].
_C.DATA.TRAIN.FILTER_SAMPLES.VALUES = []
# The comparison of each property with its value: 'gt' (>), 'ge' (>=), 'lt' (<), 'le' (<=), nested as PROPS.
_C.DATA.TRAIN.FILTER_SAMPLES.SIGNS = []
# Measure the properties on the image normalised by DATA.NORMALIZATION (statistics per image) instead of raw values.
_C.DATA.TRAIN.FILTER_SAMPLES.NORM_BEFORE = False

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
# Fold (1..CROSS_VAL_NFOLD) used for validation; -1 (or 'all') trains every fold in turn, each in its own run, and
# summarises them.
_C.DATA.VAL.CROSS_VAL_FOLD = 1
# Validation images (one sub-folder per training class) when FROM_TRAIN is False.
_C.DATA.VAL.PATH = ""
# Keep the validation images in memory.
_C.DATA.VAL.IN_MEMORY = True
_C.DATA.VAL.FILTER_SAMPLES = CN()
# Remove validation images that meet any group of conditions below (before training; listed in
# results/RUN/filtered_samples.csv).
_C.DATA.VAL.FILTER_SAMPLES.ENABLE = False
# Groups of image properties ('mean', 'min', 'max' of the image as read), e.g. [['mean'], ['min', 'max']]; an image
# meeting every condition of any group is removed.
_C.DATA.VAL.FILTER_SAMPLES.PROPS = []
# The value each property is compared with, in the same nesting as PROPS, e.g. [[10], [0, 255]].
_C.DATA.VAL.FILTER_SAMPLES.VALUES = []
# The comparison of each property with its value: 'gt' (>), 'ge' (>=), 'lt' (<), 'le' (<=), nested as PROPS.
_C.DATA.VAL.FILTER_SAMPLES.SIGNS = []
# Measure the properties on the image normalised by DATA.NORMALIZATION (statistics per image) instead of raw values.
_C.DATA.VAL.FILTER_SAMPLES.NORM_BEFORE = False

_C.DATA.TEST = CN()
# Test images: class sub-folders when LOAD_GT is True; otherwise a flat folder or any sub-folders.
_C.DATA.TEST.PATH = ""
# The test images are in class sub-folders, so metrics can be computed.
_C.DATA.TEST.LOAD_GT = False
# Keep the test images in memory.
_C.DATA.TEST.IN_MEMORY = False
# Test on the validation images (with their labels) instead of DATA.TEST.PATH.
_C.DATA.TEST.USE_VAL_AS_TEST = False
_C.DATA.TEST.FILTER_SAMPLES = CN()
# Remove test images that meet any group of conditions below (before training; listed in
# results/RUN/filtered_samples.csv).
_C.DATA.TEST.FILTER_SAMPLES.ENABLE = False
# Groups of image properties ('mean', 'min', 'max' of the image as read), e.g. [['mean'], ['min', 'max']]; an image
# meeting every condition of any group is removed.
_C.DATA.TEST.FILTER_SAMPLES.PROPS = []
# The value each property is compared with, in the same nesting as PROPS, e.g. [[10], [0, 255]].
_C.DATA.TEST.FILTER_SAMPLES.VALUES = []
# The comparison of each property with its value: 'gt' (>), 'ge' (>=), 'lt' (<), 'le' (<=), nested as PROPS.
_C.DATA.TEST.FILTER_SAMPLES.SIGNS = []
# Measure the properties on the image normalised by DATA.NORMALIZATION (statistics per image) instead of raw values.
_C.DATA.TEST.FILTER_SAMPLES.NORM_BEFORE = False

_C.DATA.PREPROCESS = CN()
# Preprocess the training images (once at loading, in the order RESIZE, ZOOM, GAUSSIAN_BLUR, MEDIAN_BLUR,
# MATCH_HISTOGRAM, CLAHE, CANNY).
_C.DATA.PREPROCESS.TRAIN = False
# Preprocess the validation images (a validation set cut from the training set follows DATA.PREPROCESS.TRAIN).
_C.DATA.PREPROCESS.VAL = False
# Preprocess the test images (a test-only run also repeats the preprocessing its checkpoint was trained with).
_C.DATA.PREPROCESS.TEST = False
_C.DATA.PREPROCESS.RESIZE = CN()
# Resize every image to OUTPUT_SHAPE with skimage.transform.resize.
_C.DATA.PREPROCESS.RESIZE.ENABLE = False
# Size after resizing, (y, x) in 2D or (z, y, x) in 3D (BiaPy's 2D default (512, 512) means (512, 512, 512) in 3D).
_C.DATA.PREPROCESS.RESIZE.OUTPUT_SHAPE = (512, 512)
# Interpolation order: 0 nearest, 1 linear, 2 quadratic, 3 cubic, 4, 5.
_C.DATA.PREPROCESS.RESIZE.ORDER = 1
# How points outside the image are filled: constant, edge, symmetric, reflect, wrap.
_C.DATA.PREPROCESS.RESIZE.MODE = "reflect"
# Fill value outside the image when MODE is constant.
_C.DATA.PREPROCESS.RESIZE.CVAL = 0.0
# Clip the result to the range of the input values.
_C.DATA.PREPROCESS.RESIZE.CLIP = True
# Keep the original range of values (the result is stored in the image's own dtype either way).
_C.DATA.PREPROCESS.RESIZE.PRESERVE_RANGE = True
# Smooth with a Gaussian before shrinking, against aliasing.
_C.DATA.PREPROCESS.RESIZE.ANTI_ALIASING = False
_C.DATA.PREPROCESS.ZOOM = CN()
# Rescale every image by ZOOM_FACTOR with skimage.transform.rescale (linear interpolation).
_C.DATA.PREPROCESS.ZOOM.ENABLE = False
# Zoom factors: BiaPy's 5 values in T, Z, C, Y, X order (T and C must be 1), or one per spatial axis, (y, x) or (z, y,
# x).
_C.DATA.PREPROCESS.ZOOM.ZOOM_FACTOR = [1, 1, 1, 1, 1]
_C.DATA.PREPROCESS.GAUSSIAN_BLUR = CN()
# Gaussian blur of every channel (skimage.filters.gaussian).
_C.DATA.PREPROCESS.GAUSSIAN_BLUR.ENABLE = False
# Standard deviation of the Gaussian, in pixels.
_C.DATA.PREPROCESS.GAUSSIAN_BLUR.SIGMA = 1.0
# How the borders are handled: reflect, constant (0), nearest, mirror, wrap.
_C.DATA.PREPROCESS.GAUSSIAN_BLUR.MODE = "nearest"
# Channel axis: None or the last axis (-1); channels are never blurred into each other.
_C.DATA.PREPROCESS.GAUSSIAN_BLUR.CHANNEL_AXIS = None
_C.DATA.PREPROCESS.MEDIAN_BLUR = CN()
# Median filter (skimage.filters.median).
_C.DATA.PREPROCESS.MEDIAN_BLUR.ENABLE = False
# Window size including channels: (y, x, c) in 2D, (z, y, x, c) in 3D; c = 1 filters each channel alone.
_C.DATA.PREPROCESS.MEDIAN_BLUR.KERNEL_SIZE = (3, 3, 1)
_C.DATA.PREPROCESS.MATCH_HISTOGRAM = CN()
# Match every image's histogram (each channel) to that of the reference images, as skimage.exposure.match_histograms
# does.
_C.DATA.PREPROCESS.MATCH_HISTOGRAM.ENABLE = False
# Folder of reference images (same dtype as the data); their pooled histogram is the target, kept in the checkpoint.
_C.DATA.PREPROCESS.MATCH_HISTOGRAM.REFERENCE_PATH = "user_data/test/x"
_C.DATA.PREPROCESS.CLAHE = CN()
# Contrast-limited adaptive histogram equalisation (skimage.exposure.equalize_adapthist); RGB images on their
# brightness.
_C.DATA.PREPROCESS.CLAHE.ENABLE = False
# Size of the contextual regions, one number or one per spatial axis; None = 1/8 of each side.
_C.DATA.PREPROCESS.CLAHE.KERNEL_SIZE = None
# Clipping limit between 0 and 1 (higher gives more contrast).
_C.DATA.PREPROCESS.CLAHE.CLIP_LIMIT = 0.01
_C.DATA.PREPROCESS.CANNY = CN()
# Replace each 2D image by its Canny edges (uint8: 255 on edges, 0 elsewhere), computed on grey (RGB is converted
# first).
_C.DATA.PREPROCESS.CANNY.ENABLE = False
# Lower hysteresis threshold of skimage.feature.canny; None = 10% of the dtype's maximum.
_C.DATA.PREPROCESS.CANNY.LOW_THRESHOLD = None
# Upper hysteresis threshold; None = 20% of the dtype's maximum.
_C.DATA.PREPROCESS.CANNY.HIGH_THRESHOLD = None

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
# Write examples of augmented training images to results/RUN/aug/ when training starts (AUGMENTOR.ENABLE True).
_C.AUGMENTOR.AUG_SAMPLES = True
# Draw a grid on the example images before augmenting them, to show how they are deformed.
_C.AUGMENTOR.DRAW_GRID = True
# Number of example images written by AUG_SAMPLES.
_C.AUGMENTOR.AUG_NUM_SAMPLES = 10
# Rotate by 90, 180 or 270 degrees in the y-x plane (180 only when y and x differ in size).
_C.AUGMENTOR.ROT90 = False
# Probability of ROT90; -1 = DA_PROB.
_C.AUGMENTOR.ROT90_PROB = -1.0
# Rotate by a random angle from RANDOM_ROT_RANGE (in the y-x plane).
_C.AUGMENTOR.RANDOM_ROT = False
# Range of the random rotation, in degrees.
_C.AUGMENTOR.RANDOM_ROT_RANGE = (-180, 180)
# Probability of RANDOM_ROT; -1 = DA_PROB.
_C.AUGMENTOR.RANDOM_ROT_PROB = -1.0
# Shear in the y-x plane (x moves in proportion to y) by an angle from SHEAR_RANGE.
_C.AUGMENTOR.SHEAR = False
# Range of the shear angle, in degrees.
_C.AUGMENTOR.SHEAR_RANGE = (-20, 20)
# Probability of SHEAR; -1 = DA_PROB.
_C.AUGMENTOR.SHEAR_PROB = -1.0
# Zoom by a factor from ZOOM_RANGE (1 = no change, 0.5 = shrink to half the size).
_C.AUGMENTOR.ZOOM = False
# Range of the zoom factor.
_C.AUGMENTOR.ZOOM_RANGE = (0.8, 1.2)
# Zoom along z too (3D only); otherwise only y and x are scaled.
_C.AUGMENTOR.ZOOM_IN_Z = False
# Probability of ZOOM; -1 = DA_PROB.
_C.AUGMENTOR.ZOOM_PROB = -1.0
# Shift along y and x by a fraction of the height and width from SHIFT_RANGE, in a random direction.
_C.AUGMENTOR.SHIFT = False
# Range of the shift, as a fraction of the axis size (0 = none, 0.5 = half the axis).
_C.AUGMENTOR.SHIFT_RANGE = (0.1, 0.2)
# Probability of SHIFT; -1 = DA_PROB.
_C.AUGMENTOR.SHIFT_PROB = -1.0
# How rotation, shear, zoom and shift fill the border: constant (0), reflect, symmetric, wrap, edge.
_C.AUGMENTOR.AFFINE_MODE = "reflect"
# Flip vertically (along y).
_C.AUGMENTOR.VFLIP = False
# Probability of VFLIP; -1 = DA_PROB.
_C.AUGMENTOR.VFLIP_PROB = -1.0
# Flip horizontally (along x).
_C.AUGMENTOR.HFLIP = False
# Probability of HFLIP; -1 = DA_PROB.
_C.AUGMENTOR.HFLIP_PROB = -1.0
# Flip along z (3D only).
_C.AUGMENTOR.ZFLIP = False
# Probability of ZFLIP; -1 = DA_PROB.
_C.AUGMENTOR.ZFLIP_PROB = -1.0
# Elastic deformation in the y-x plane: a smoothed random displacement field.
_C.AUGMENTOR.ELASTIC = False
# Range of the strength of the displacement field (pixels per unit of smoothed noise).
_C.AUGMENTOR.E_ALPHA = (12, 16)
# Standard deviation, in pixels, of the Gaussian that smooths the displacement field.
_C.AUGMENTOR.E_SIGMA = 4.0
# How the elastic deformation fills the border: constant (0), reflect, symmetric, wrap, edge, nearest.
_C.AUGMENTOR.E_MODE = "constant"
# Probability of ELASTIC; -1 = DA_PROB.
_C.AUGMENTOR.ELASTIC_PROB = -1.0
# Gaussian blur (along z too in 3D).
_C.AUGMENTOR.G_BLUR = False
# Range of the standard deviation of the Gaussian blur, in pixels.
_C.AUGMENTOR.G_SIGMA = (1.0, 2.0)
# Probability of G_BLUR; -1 = DA_PROB.
_C.AUGMENTOR.G_BLUR_PROB = -1.0
# Median blur over a k x k window of every y-x plane.
_C.AUGMENTOR.MEDIAN_BLUR = False
# Range of the median window size k (odd sizes in the range are used).
_C.AUGMENTOR.MB_KERNEL = (3, 7)
# Probability of MEDIAN_BLUR; -1 = DA_PROB.
_C.AUGMENTOR.MEDIAN_BLUR_PROB = -1.0
# Motion blur: a line kernel at a random angle in the y-x plane, as if the camera or object moved.
_C.AUGMENTOR.MOTION_BLUR = False
# Range of the length of the motion blur line, in pixels.
_C.AUGMENTOR.MOTB_K_RANGE = (8, 12)
# Probability of MOTION_BLUR; -1 = DA_PROB.
_C.AUGMENTOR.MOTION_BLUR_PROB = -1.0
# Gamma contrast on each image's own intensity range; gamma > 1 darkens.
_C.AUGMENTOR.GAMMA_CONTRAST = False
# Range of the gamma exponent.
_C.AUGMENTOR.GC_GAMMA = (1.25, 1.75)
# Probability of GAMMA_CONTRAST; -1 = DA_PROB.
_C.AUGMENTOR.GAMMA_CONTRAST_PROB = -1.0
# Brightness change: add a value from BRIGHTNESS_FACTOR (1.0 = the dtype's full range).
_C.AUGMENTOR.BRIGHTNESS = False
# Range of the value added.
_C.AUGMENTOR.BRIGHTNESS_FACTOR = (-0.1, 0.1)
# 3D: one value per volume ('3D') or one per z-slice ('2D').
_C.AUGMENTOR.BRIGHTNESS_MODE = "3D"
# Probability of BRIGHTNESS; -1 = DA_PROB.
_C.AUGMENTOR.BRIGHTNESS_PROB = -1.0
# Contrast change: stretch the intensities around their mean by (1 + a value from CONTRAST_FACTOR).
_C.AUGMENTOR.CONTRAST = False
# Range of the contrast change.
_C.AUGMENTOR.CONTRAST_FACTOR = (-0.1, 0.1)
# 3D: one value (and mean) per volume ('3D') or per z-slice ('2D').
_C.AUGMENTOR.CONTRAST_MODE = "3D"
# Probability of CONTRAST; -1 = DA_PROB.
_C.AUGMENTOR.CONTRAST_PROB = -1.0
# Set a random fraction of the pixels (all channels alike) to 0.
_C.AUGMENTOR.DROPOUT = False
# Range of the fraction of pixels set to 0.
_C.AUGMENTOR.DROP_RANGE = (0, 0.2)
# Probability of DROPOUT; -1 = DA_PROB.
_C.AUGMENTOR.DROPOUT_PROB = -1.0
# Cutout: fill random boxes with COUT_CVAL.
_C.AUGMENTOR.CUTOUT = False
# Range of the number of boxes (both ends included).
_C.AUGMENTOR.COUT_NB_ITERATIONS = (1, 3)
# Range of the box size, as a fraction of each axis.
_C.AUGMENTOR.COUT_SIZE = (0.05, 0.3)
# Value the boxes are filled with (1.0 = the dtype's full range).
_C.AUGMENTOR.COUT_CVAL = 0.0
# Probability of CUTOUT; -1 = DA_PROB.
_C.AUGMENTOR.CUTOUT_PROB = -1.0
# Add Gaussian noise.
_C.AUGMENTOR.GAUSSIAN_NOISE = False
# Mean of the noise (1.0 = the dtype's full range).
_C.AUGMENTOR.GAUSSIAN_NOISE_MEAN = 0.0
# Variance of the noise.
_C.AUGMENTOR.GAUSSIAN_NOISE_VAR = 0.05
# Use each image's own mean and variance for the noise instead of GAUSSIAN_NOISE_MEAN/VAR.
_C.AUGMENTOR.GAUSSIAN_NOISE_USE_INPUT_IMG_MEAN_AND_VAR = False
# Probability of GAUSSIAN_NOISE; -1 = DA_PROB.
_C.AUGMENTOR.GAUSSIAN_NOISE_PROB = -1.0
# Grayscale: every channel replaced by the mean of the channels.
_C.AUGMENTOR.GRAYSCALE = False
# Probability of GRAYSCALE; -1 = DA_PROB.
_C.AUGMENTOR.GRAYSCALE_PROB = -1.0
# Shuffle the channels (a random order other than the original).
_C.AUGMENTOR.CHANNEL_SHUFFLE = False
# Probability of CHANNEL_SHUFFLE; -1 = DA_PROB.
_C.AUGMENTOR.CHANNEL_SHUFFLE_PROB = -1.0
# CutBlur: a box replaced by a low-resolution copy of itself.
_C.AUGMENTOR.CUTBLUR = False
# Range of the box size, as a fraction of y and x.
_C.AUGMENTOR.CBLUR_SIZE = (0.2, 0.4)
# Range of the integer downsampling factor (both ends included).
_C.AUGMENTOR.CBLUR_DOWN_RANGE = (2, 8)
# True: only the box is made low-resolution; False: half of the times the rest of the image instead.
_C.AUGMENTOR.CBLUR_INSIDE = True
# Probability of CUTBLUR; -1 = DA_PROB.
_C.AUGMENTOR.CUTBLUR_PROB = -1.0
# BiaPy's CutMix: paste a box of another image of the batch; the labels are mixed by area (see MIXUP).
_C.AUGMENTOR.CUTMIX = False
# Range of the pasted box size, as a fraction of y and x.
_C.AUGMENTOR.CMIX_SIZE = (0.2, 0.4)
# Probability of CUTMIX per image; -1 = DA_PROB.
_C.AUGMENTOR.CUTMIX_PROB = -1.0
# CutNoise: add Gaussian noise inside random boxes.
_C.AUGMENTOR.CUTNOISE = False
# Range of the noise's standard deviation, as a fraction of the image's maximum.
_C.AUGMENTOR.CNOISE_SCALE = (0.05, 0.1)
# Range of the number of boxes (both ends included).
_C.AUGMENTOR.CNOISE_NB_ITERATIONS = (1, 3)
# Range of the box size, as a fraction of every axis.
_C.AUGMENTOR.CNOISE_SIZE = (0.2, 0.4)
# Probability of CUTNOISE; -1 = DA_PROB.
_C.AUGMENTOR.CUTNOISE_PROB = -1.0
# Mis-alignment of sections: rows below a random one (2D) or z-slices (3D) translated or rotated.
_C.AUGMENTOR.MISALIGNMENT = False
# Largest displacement in pixels (y-x plane).
_C.AUGMENTOR.MS_DISPLACEMENT = 16
# Share of the mis-alignments that are rotations (the others are translations).
_C.AUGMENTOR.MS_ROTATE_RATIO = 0.5
# Probability of MISALIGNMENT; -1 = DA_PROB.
_C.AUGMENTOR.MISALIGNMENT_PROB = -1.0
# Missing sections: a thick straight line across a channel (3D: a z-slice) filled with its mean.
_C.AUGMENTOR.MISSING_SECTIONS = False
# Probability that each channel (3D: each z-slice of each channel) gets a line.
_C.AUGMENTOR.MISSP_CHANNEL_PB = 0.5
# Range of the line's thickening (dilations, upper end excluded as in BiaPy).
_C.AUGMENTOR.MISSP_ITERATIONS = (10, 30)
# Probability of MISSING_SECTIONS; -1 = DA_PROB.
_C.AUGMENTOR.MISSING_SECTIONS_PROB = -1.0
# GridMask: zero the squares of a rotated grid.
_C.AUGMENTOR.GRIDMASK = False
# Kept band width as a fraction of the grid period (zeroed share about (1 - GRID_RATIO)^2).
_C.AUGMENTOR.GRID_RATIO = 0.6
# Range of the grid period: from GRID_D_RANGE[0] x height to GRID_D_RANGE[1] x width pixels.
_C.AUGMENTOR.GRID_D_RANGE = (0.4, 1)
# Largest rotation of the grid, as a fraction of 360 degrees (0 to 1).
_C.AUGMENTOR.GRID_ROTATE = 1.0
# Zero the bands instead of the squares.
_C.AUGMENTOR.GRID_INVERT = False
# Probability of GRIDMASK; -1 = DA_PROB.
_C.AUGMENTOR.GRIDMASK_PROB = -1.0
# Poisson noise (skimage's random_noise 'poisson', photon count from the image's number of values).
_C.AUGMENTOR.POISSON_NOISE = False
# Probability of POISSON_NOISE; -1 = DA_PROB.
_C.AUGMENTOR.POISSON_NOISE_PROB = -1.0
# Salt: set a fraction of the values to the maximum (1.0 = the dtype's full range).
_C.AUGMENTOR.SALT = False
# Fraction of the values set to the maximum.
_C.AUGMENTOR.SALT_AMOUNT = 0.05
# Probability of SALT; -1 = DA_PROB.
_C.AUGMENTOR.SALT_PROB = -1.0
# Pepper: set a fraction of the values to 0 (-1 for images with negative values).
_C.AUGMENTOR.PEPPER = False
# Fraction of the values set to 0.
_C.AUGMENTOR.PEPPER_AMOUNT = 0.05
# Probability of PEPPER; -1 = DA_PROB.
_C.AUGMENTOR.PEPPER_PROB = -1.0
# Salt and pepper together.
_C.AUGMENTOR.SALT_AND_PEPPER = False
# Fraction of the values replaced.
_C.AUGMENTOR.SALT_AND_PEPPER_AMOUNT = 0.05
# Share of the replaced values that are salt (the rest pepper).
_C.AUGMENTOR.SALT_AND_PEPPER_PROP = 0.5
# Probability of SALT_AND_PEPPER; -1 = DA_PROB.
_C.AUGMENTOR.SALT_AND_PEPPER_PROB = -1.0
# MixUp (beyond BiaPy): Beta(alpha, alpha) blend of each batch with itself reversed, labels alike; 0 = off.
_C.AUGMENTOR.MIXUP = 0.0
# CutMix (beyond BiaPy, timm's): alpha of the Beta distribution of the kept share; 0 = off.
_C.AUGMENTOR.CUTMIX_ALPHA = 0.0
# Probability that a batch is mixed by MIXUP / CUTMIX_ALPHA.
_C.AUGMENTOR.MIXUP_PROB = 1.0
# With both MIXUP and CUTMIX_ALPHA set: probability of CutMix instead of MixUp for a batch.
_C.AUGMENTOR.MIXUP_SWITCH_PROB = 0.5
_C.AUGMENTOR.RANDAUGMENT = CN()
# RandAugment (2D, beyond BiaPy): N random operations at magnitude M on every image. Not when orientation
# or colour is the label.
_C.AUGMENTOR.RANDAUGMENT.ENABLE = False
# Number of operations per image.
_C.AUGMENTOR.RANDAUGMENT.N = 2
# Magnitude, 0 to 30.
_C.AUGMENTOR.RANDAUGMENT.M = 9
# TrivialAugment (2D, beyond BiaPy): one random operation at a random magnitude on every image.
_C.AUGMENTOR.TRIVIALAUGMENT = False

# ---------------------------------------------------------------------------------------------------
_C.MODEL = CN()
# Where the model comes from: biapy (MODEL.ARCHITECTURE), torchvision (MODEL.TORCHVISION_MODEL_NAME) or timm
# (MODEL.TIMM_MODEL_NAME).
_C.MODEL.SOURCE = "biapy"
# torchvision model when MODEL.SOURCE is torchvision: a classification model (2D, e.g. resnet18) or a video model
# (3D, e.g. r3d_18).
_C.MODEL.TORCHVISION_MODEL_NAME = ""
# Start the torchvision model from its DEFAULT pretrained weights (downloaded once into TORCH_HOME); False = random
# start.
_C.MODEL.TORCHVISION_PRETRAINED = True
# timm model when MODEL.SOURCE is timm: any name of timm.list_models(), optionally with a weights tag (e.g.
# resnet18.a1_in1k); 2D.
_C.MODEL.TIMM_MODEL_NAME = ""
# Start the timm model from its pretrained weights (downloaded once into the Hugging Face cache, HF_HOME); False =
# random start.
_C.MODEL.TIMM_PRETRAINED = True
# Network when MODEL.SOURCE is biapy, 2D or 3D: vit (the default, as in BiaPy), simple_cnn, efficientnet_b0 ...
# efficientnet_b7 (case-insensitive).
_C.MODEL.ARCHITECTURE = "vit"
# Dropout before the classification head (first value used).
_C.MODEL.DROPOUT_VALUES = [0.2]
# ViT base size: custom (the VIT_* keys below) or the sizes of vit_base_patch16, vit_large_patch16, vit_huge_patch14.
_C.MODEL.VIT_MODEL = "custom"
# ViT token (patch) side in pixels; -1 = auto: chosen for DATA.PATCH_SIZE (e.g. 8 for 32x32, a 4x4 token grid) and
# logged.
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
# Local weights file (.pth/.bin/.safetensors) to start from: timm's for a 2D vit/efficientnet or MODEL.SOURCE timm,
# torchvision's for MODEL.SOURCE torchvision (replaces the downloaded weights); first conv adapted, mismatched head
# skipped.
_C.MODEL.PRETRAINED_WEIGHTS = ""
# When loading a checkpoint or PRETRAINED_WEIGHTS, skip (and log) tensors whose shape differs, e.g. the head for
# another class count.
_C.MODEL.SKIP_UNMATCHED_LAYERS = False
# Freeze the parameters whose name matches any of these regular expressions (e.g. ['^features\\.']); they are not
# trained.
_C.MODEL.FREEZE_LAYERS_MATCHING = []
# Start from this job's own checkpoint (see LOAD_CHECKPOINT_EPOCH) when PATHS.CHECKPOINT_FILE is empty; with
# TRAIN.ENABLE it fine-tunes. A test-only run needs it or PATHS.CHECKPOINT_FILE (that alone suffices).
_C.MODEL.LOAD_CHECKPOINT = False
# Which of this job's checkpoints to load when PATHS.CHECKPOINT_FILE is empty: best_on_val or last_on_train.
_C.MODEL.LOAD_CHECKPOINT_EPOCH = "best_on_val"
# Also keep RUN-checkpoint-<epoch>.pth every this many epochs (besides best and last); -1 = never.
_C.MODEL.SAVE_CKPT_FREQ = -1
# Format of the checkpoints written: pth (PyTorch) or safetensors (tensors in a .safetensors file, the rest as JSON
# metadata); both load wherever a checkpoint is accepted.
_C.MODEL.OUT_CHECKPOINT_FORMAT = "pth"
# Where the model comes from: biapy (MODEL.ARCHITECTURE, built here) or bmz (a BioImage Model Zoo package,
# MODEL.BMZ.SOURCE_MODEL_ID).
_C.MODEL.SOURCE = "biapy"

# BioImage Model Zoo (bioimage.io): import (MODEL.SOURCE bmz) and export. Needs `pip install biapy-cls[bmz]`.
_C.MODEL.BMZ = CN()
# With MODEL.SOURCE bmz: the package to load: a folder holding rdf.yaml, an rdf.yaml, a .zip, a URL, or a bioimage.io
# ID or DOI (downloaded once, cached).
_C.MODEL.BMZ.SOURCE_MODEL_ID = ""
_C.MODEL.BMZ.EXPORT = CN()
# At the end of the run (train and/or test), write JOB/bmz/<MODEL_NAME>.zip, checked with bioimageio.core's model test.
_C.MODEL.BMZ.EXPORT.ENABLE = False
# Name of the exported model (required unless REUSE_BMZ_CONFIG), e.g. 'Digit classifier'.
_C.MODEL.BMZ.EXPORT.MODEL_NAME = ""
# One-sentence description of the model (required unless REUSE_BMZ_CONFIG).
_C.MODEL.BMZ.EXPORT.DESCRIPTION = ""
# Authors: a list of dicts with 'name' and 'github_user' (optional: affiliation, email, orcid), e.g. [{'name': 'Ann',
# 'github_user': 'ann'}].
_C.MODEL.BMZ.EXPORT.AUTHORS = []
# SPDX license identifier of the model, e.g. CC-BY-4.0 or MIT.
_C.MODEL.BMZ.EXPORT.LICENSE = "CC-BY-4.0"
# A .md file to use as the package's documentation; empty = generated (training data, metrics, how it was trained).
_C.MODEL.BMZ.EXPORT.DOCUMENTATION = ""
# Tags of the data and objects, e.g. ['fluorescence-light-microscopy', 'cells']; 2d/3d, pytorch, classification and
# the architecture are added.
_C.MODEL.BMZ.EXPORT.TAGS = []
# Citations: a list of dicts with 'text' and 'doi' and/or 'url'.
_C.MODEL.BMZ.EXPORT.CITE = []
# Training data: a list of one dict with 'name', 'doi', 'image_modality' and optionally 'dataset_id' (a bioimage.io
# dataset).
_C.MODEL.BMZ.EXPORT.DATASET_INFO = [{}]
# Version of the exported model (MAJOR.MINOR.PATCH).
_C.MODEL.BMZ.EXPORT.MODEL_VERSION = "0.1.0"
# With MODEL.SOURCE bmz: copy name, description, authors, license, tags and citations from the loaded package instead
# of the keys above.
_C.MODEL.BMZ.EXPORT.REUSE_BMZ_CONFIG = False
_C.MODEL.EMA = CN()
# Keep an exponential moving average of the weights (beyond BiaPy); validated next to the raw weights.
_C.MODEL.EMA.ENABLE = False
# Decay per optimizer step: ema = decay * ema + (1 - decay) * weights.
_C.MODEL.EMA.DECAY = 0.999
# Optimizer steps over which the decay rises linearly from 0 to DECAY (DECAY x step / WARMUP); 0 = no warm-up.
_C.MODEL.EMA.WARMUP = 100

# ---------------------------------------------------------------------------------------------------
_C.LOSS = CN()
# Loss: CE (cross-entropy; '' means CE).
_C.LOSS.TYPE = "CE"
# Class weights of the loss: none, auto (inverse class frequency in the training set) or manual (LOSS.CLASS_WEIGHTS);
# BiaPy's False/True mean none/auto.
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
# Accumulate the gradients of this many batches per optimizer step (effective batch = BATCH_SIZE x ACCUM_ITER x
# processes).
_C.TRAIN.ACCUM_ITER = 1
# Clip the gradients to this total L2 norm before each optimizer step; 0 = no clipping.
_C.TRAIN.GRADIENT_CLIP_NORM = 0.0
# Mixed precision on CUDA: auto (bf16 where the GPU supports it, else fp16 with a gradient scaler), bf16, fp16 or
# none; always off on the CPU.
_C.TRAIN.AMP = "auto"
# Maximum number of epochs.
_C.TRAIN.EPOCHS = 100
# With several processes, scale TRAIN.LR: none, or linear (LR x number of processes, for the larger effective batch).
_C.TRAIN.LR_SCALING = "none"
# Stop after this many epochs without improvement of TRAIN.CHECKPOINT_MONITOR; -1 = never stop early.
_C.TRAIN.PATIENCE = 20
# Quantity that picks the best checkpoint and drives early stopping and reduceonplateau: val_loss, val_accuracy or
# val_f1 (macro).
_C.TRAIN.CHECKPOINT_MONITOR = "val_loss"
# Learning rate of the backbone (all but the classification head) as a multiple of TRAIN.LR; 0 keeps the backbone fixed.
_C.TRAIN.BACKBONE_LR_SCALE = 1.0
# Train only the classification head for this many epochs, then the whole model (0 = from the start).
_C.TRAIN.FREEZE_BACKBONE_EPOCHS = 0
# Metrics logged and charted each epoch besides the loss: accuracy, f1 (macro), top-5-accuracy; [] = accuracy and f1.
_C.TRAIN.METRICS = []

_C.TRAIN.LR_SCHEDULER = CN()
# Learning-rate schedule: '' (constant), reduceonplateau, warmupcosine (per-step linear warm-up, then cosine to
# MIN_LR) or onecycle (PyTorch's OneCycleLR, peak TRAIN.LR).
_C.TRAIN.LR_SCHEDULER.NAME = ""
# Lowest learning rate of reduceonplateau and warmupcosine; -1 = 0.
_C.TRAIN.LR_SCHEDULER.MIN_LR = -1.0
# reduceonplateau multiplies the learning rate by this factor (between 0 and 1) when TRAIN.CHECKPOINT_MONITOR stalls.
_C.TRAIN.LR_SCHEDULER.REDUCEONPLATEAU_FACTOR = 0.5
# Epochs without improvement before reduceonplateau lowers the learning rate (less than TRAIN.PATIENCE); required by
# reduceonplateau.
_C.TRAIN.LR_SCHEDULER.REDUCEONPLATEAU_PATIENCE = -1
# Warm-up epochs of warmupcosine (the learning rate rises linearly, step by step, to TRAIN.LR); required by
# warmupcosine.
_C.TRAIN.LR_SCHEDULER.WARMUP_COSINE_DECAY_EPOCHS = -1

# ---------------------------------------------------------------------------------------------------
_C.TEST = CN()
# Predict the test images (and evaluate them when DATA.TEST.LOAD_GT is True).
_C.TEST.ENABLE = False
# Test metrics printed in the summary line (every metric is always written to test_metrics.json): accuracy,
# balanced_accuracy, f1, precision, recall, roc_auc; [] = accuracy, balanced_accuracy, f1.
_C.TEST.METRICS = []
# Test-time augmentation: predict every image also flipped and rotated by 90 degrees, and combine: 2D 8 views (4 when
# y and x differ: no 90-degree turn), 3D 16 views (8 when y and x differ).
_C.TEST.AUGMENTATION = False
# How the views' class probabilities are combined: mean, max or min (then rescaled to sum to 1).
_C.TEST.AUGMENTATION_MODE = "mean"
# Temperature scaling: fit one temperature on the validation set after training (stored in the checkpoint)
# and apply it to the test probabilities.
_C.TEST.CALIBRATE = False
_C.TEST.EXPLAIN = CN()
# Saliency maps, feature embedding, ROC/PR and reliability charts in results/RUN/ and the report (labelled or not).
_C.TEST.EXPLAIN.ENABLE = True
# Saliency maps of this many of the most confident correct predictions per class (plus the most confident errors).
_C.TEST.EXPLAIN.N_PER_CLASS = 2
# Saliency method: gradcam (last convolutional map, or the ViT's token map) or gradients (|d score / d pixel|).
_C.TEST.EXPLAIN.METHOD = "gradcam"

# ---------------------------------------------------------------------------------------------------
_C.LOG = CN()
# Redraw the training charts every this many epochs (and always at the end).
_C.LOG.CHART_CREATION_FREQ = 5

# ---------------------------------------------------------------------------------------------------
_C.PATHS = CN()
# A biapy-cls checkpoint (.pth) to test with or start from; empty = this job's own checkpoint.
_C.PATHS.CHECKPOINT_FILE = ""

# Words accepted for a key besides values of its type: (key, word) -> value.
VALUE_ALIASES = {("DATA.VAL.CROSS_VAL_FOLD", "all"): -1}


def get_cfg_defaults() -> CN:
    """A fresh copy of the defaults, safe to modify."""
    return _C.clone()
