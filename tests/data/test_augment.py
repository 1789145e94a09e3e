"""AUGMENTOR: every accepted key acts, on the right axes, in 2D and 3D; samples; normalisation statistics."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.configure import load_config
from biapy_cls.data.aug_samples import write_aug_samples
from biapy_cls.data.augment import OPS, Augmenter
from biapy_cls.data.transforms import Normalizer
from biapy_cls.engine.checkpoint import load_checkpoint, save_checkpoint
from biapy_cls.errors import ConfigError

SHAPES = {"2D": (6, 2, 24, 24), "3D": (3, 2, 6, 16, 16)}
# AUGMENTOR keys that are not transformations or their parameters.
GENERAL = {"ENABLE", "DA_PROB", "AUG_SAMPLES", "DRAW_GRID", "AUG_NUM_SAMPLES", "SHUFFLE_TRAIN_DATA_EACH_EPOCH",
           "SHUFFLE_VAL_DATA_EACH_EPOCH"}
# Label mixing and the 2D policies: tested in tests/data/test_mixing.py and test_policies.py.
MIXING = {"CUTMIX", "CUTMIX_PROB", "CMIX_SIZE", "MIXUP", "CUTMIX_ALPHA", "MIXUP_PROB", "MIXUP_SWITCH_PROB",
          "RANDAUGMENT", "TRIVIALAUGMENT"}
# parameter key -> (transformation it tunes, another value, dimensionality where the difference shows)
PARAMS = {
    "RANDOM_ROT_RANGE": ("RANDOM_ROT", (10, 20), "2D"),
    "SHEAR_RANGE": ("SHEAR", (30, 40), "2D"),
    "ZOOM_RANGE": ("ZOOM", (0.5, 0.6), "2D"),
    "ZOOM_IN_Z": ("ZOOM", True, "3D"),
    "SHIFT_RANGE": ("SHIFT", (0.3, 0.4), "2D"),
    "AFFINE_MODE": ("RANDOM_ROT", "constant", "2D"),
    "E_ALPHA": ("ELASTIC", (30, 40), "2D"),
    "E_SIGMA": ("ELASTIC", 2.0, "2D"),
    "E_MODE": ("ELASTIC", "reflect", "2D"),
    "G_SIGMA": ("G_BLUR", (3.0, 4.0), "2D"),
    "MB_KERNEL": ("MEDIAN_BLUR", (5, 5), "2D"),
    "MOTB_K_RANGE": ("MOTION_BLUR", (3, 4), "2D"),
    "GC_GAMMA": ("GAMMA_CONTRAST", (0.3, 0.5), "2D"),
    "BRIGHTNESS_FACTOR": ("BRIGHTNESS", (0.3, 0.4), "2D"),
    "BRIGHTNESS_MODE": ("BRIGHTNESS", "2D", "3D"),
    "CONTRAST_FACTOR": ("CONTRAST", (0.5, 0.6), "2D"),
    "CONTRAST_MODE": ("CONTRAST", "2D", "3D"),
    "DROP_RANGE": ("DROPOUT", (0.5, 0.6), "2D"),
    "COUT_NB_ITERATIONS": ("CUTOUT", (3, 3), "2D"),
    "COUT_SIZE": ("CUTOUT", (0.5, 0.6), "2D"),
    "COUT_CVAL": ("CUTOUT", 0.5, "2D"),
    "GAUSSIAN_NOISE_MEAN": ("GAUSSIAN_NOISE", 0.5, "2D"),
    "GAUSSIAN_NOISE_VAR": ("GAUSSIAN_NOISE", 0.2, "2D"),
    "GAUSSIAN_NOISE_USE_INPUT_IMG_MEAN_AND_VAR": ("GAUSSIAN_NOISE", True, "2D"),
    "CBLUR_SIZE": ("CUTBLUR", (0.6, 0.8), "2D"),
    "CBLUR_DOWN_RANGE": ("CUTBLUR", (3, 3), "2D"),
    "CBLUR_INSIDE": ("CUTBLUR", False, "2D"),
    "CNOISE_SCALE": ("CUTNOISE", (0.5, 0.6), "2D"),
    "CNOISE_NB_ITERATIONS": ("CUTNOISE", (3, 3), "2D"),
    "CNOISE_SIZE": ("CUTNOISE", (0.6, 0.8), "2D"),
    "MS_DISPLACEMENT": ("MISALIGNMENT", 4, "2D"),
    "MS_ROTATE_RATIO": ("MISALIGNMENT", 1.0, "2D"),
    "MISSP_CHANNEL_PB": ("MISSING_SECTIONS", 1.0, "2D"),
    "MISSP_ITERATIONS": ("MISSING_SECTIONS", (1, 2), "2D"),
    "GRID_RATIO": ("GRIDMASK", 0.3, "2D"),
    "GRID_D_RANGE": ("GRIDMASK", (0.2, 0.3), "2D"),
    "GRID_ROTATE": ("GRIDMASK", 0.0, "2D"),
    "GRID_INVERT": ("GRIDMASK", True, "2D"),
    "SALT_AMOUNT": ("SALT", 0.5, "2D"),
    "PEPPER_AMOUNT": ("PEPPER", 0.5, "2D"),
    "SALT_AND_PEPPER_AMOUNT": ("SALT_AND_PEPPER", 0.5, "2D"),
    "SALT_AND_PEPPER_PROP": ("SALT_AND_PEPPER", 0.9, "2D"),
}
# Settings that make a random transformation change every image of a small batch.
SURE = {"MISSING_SECTIONS": {"MISSP_CHANNEL_PB": 1.0}}


def make_cfg(ndim: str = "2D", **aug):
    cfg = get_cfg_defaults()
    cfg.PROBLEM.NDIM = ndim
    cfg.AUGMENTOR.ENABLE = True
    for key, value in aug.items():
        cfg.AUGMENTOR[key] = value
    return cfg


def batch(ndim: str) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(SHAPES[ndim])


def run(cfg, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return Augmenter.from_cfg(cfg)(x)


def only(name: str, ndim: str = "2D", **extra):
    return make_cfg(ndim, **{name: True, f"{name}_PROB": 1.0}, **extra)


CASES = [(ndim, name) for ndim in ("2D", "3D") for name in OPS if not (ndim == "2D" and name == "ZFLIP")]


@pytest.mark.parametrize(("ndim", "name"), CASES)
def test_each_transformation_changes_every_image_and_keeps_shape_and_dtype(ndim, name):
    x = batch(ndim)
    before = x.clone()
    y = run(only(name, ndim, **SURE.get(name, {})), x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(x, before), "the input batch must not be modified in place"
    changed = (y - x).flatten(1).abs().amax(1) > 1e-4
    assert changed.all(), f"{name} left images {(~changed).nonzero().flatten().tolist()} unchanged"


def test_augmented_batch_can_train_a_model():
    """The transformations run in inference mode (cheaper); what comes out must still be an ordinary tensor
    that a model can take gradients through."""
    cfg = make_cfg("2D", RANDOM_ROT=True, G_BLUR=True)
    cfg.AUGMENTOR.RANDAUGMENT.ENABLE = True
    y = run(cfg, batch("2D"))
    assert not y.is_inference()
    conv = torch.nn.Conv2d(y.shape[1], 2, 3)
    conv(y).sum().backward()  # an inference tensor saved for backward would raise here
    assert conv.weight.grad is not None


def test_every_augmentor_key_in_defaults_is_a_tested_transformation_or_parameter():
    keys = set(get_cfg_defaults().AUGMENTOR.keys())
    switches = {k for k in keys if isinstance(get_cfg_defaults().AUGMENTOR[k], bool)} - GENERAL - set(PARAMS) - MIXING
    assert switches == set(OPS)
    assert keys == GENERAL | MIXING | set(OPS) | {f"{n}_PROB" for n in OPS} | set(PARAMS)


@pytest.mark.parametrize("key", sorted(PARAMS))
def test_each_parameter_key_changes_the_result(key):
    switch, value, ndim = PARAMS[key]
    x = batch(ndim)
    if switch == "CONTRAST":  # a mean that differs between slices, so per-slice contrast differs
        x = x + torch.arange(x.shape[2]).view(1, 1, -1, *[1] * (x.ndim - 3)) if ndim == "3D" else x
    default = run(only(switch, ndim), x)
    changed = run(only(switch, ndim, **{key: value}), x)
    assert not torch.allclose(default, changed, atol=1e-5), f"AUGMENTOR.{key} has no effect"


def test_probabilities_own_and_da_prob():
    x = batch("2D")
    assert torch.equal(run(make_cfg(VFLIP=True, VFLIP_PROB=0.0, DA_PROB=1.0), x), x)
    assert torch.equal(run(make_cfg(VFLIP=True, VFLIP_PROB=1.0, DA_PROB=0.0), x), x.flip(-2))
    assert torch.equal(run(make_cfg(VFLIP=True, DA_PROB=1.0), x), x.flip(-2))  # VFLIP_PROB -1 = DA_PROB
    assert torch.equal(run(make_cfg(VFLIP=True, DA_PROB=0.0), x), x)
    assert not Augmenter.from_cfg(make_cfg(ENABLE=False, VFLIP=True, VFLIP_PROB=1.0))


def test_flips_and_rot90_are_exact_and_invertible_on_the_right_axes():
    x = batch("3D")
    assert torch.equal(run(only("ZFLIP", "3D"), x), x.flip(2))
    assert torch.equal(run(only("VFLIP", "3D"), x), x.flip(3))
    assert torch.equal(run(only("HFLIP", "3D"), x), x.flip(4))
    assert torch.equal(run(only("VFLIP", "3D"), run(only("VFLIP", "3D"), x)), x)
    for ndim in ("2D", "3D"):
        x = batch(ndim)
        y = run(only("ROT90", ndim), x)
        for orig, rotated in zip(x, y):
            turns = [k for k in (1, 2, 3) if torch.equal(torch.rot90(orig, k, dims=(-2, -1)), rotated)]
            assert len(turns) == 1 and torch.equal(torch.rot90(rotated, -turns[0], dims=(-2, -1)), orig)
    wide = torch.rand(4, 1, 8, 12)
    assert torch.equal(run(only("ROT90"), wide), torch.rot90(wide, 2, dims=(-2, -1)))  # only 180 keeps the shape


def test_3d_in_plane_transformations_leave_z_alone_and_z_keys_act_on_z():
    ramp = torch.arange(6.0).view(1, 1, 6, 1, 1).expand(2, 1, 6, 16, 16).contiguous() / 6  # varies along z only
    for name in ("RANDOM_ROT", "SHEAR", "SHIFT", "ZOOM", "ELASTIC", "MEDIAN_BLUR", "MOTION_BLUR", "ROT90"):
        assert torch.allclose(run(only(name, "3D", E_MODE="edge"), ramp), ramp, atol=1e-5), name
    assert not torch.allclose(run(only("ZOOM", "3D", ZOOM_IN_Z=True, ZOOM_RANGE=(0.5, 0.6)), ramp), ramp, atol=1e-3)
    assert not torch.allclose(run(only("G_BLUR", "3D"), ramp), ramp, atol=1e-3)  # Gaussian blur includes z
    per_volume = run(only("BRIGHTNESS", "3D"), ramp) - ramp
    per_slice = run(only("BRIGHTNESS", "3D", BRIGHTNESS_MODE="2D"), ramp) - ramp
    assert per_volume.flatten(1).std(1).max() < 1e-6 and per_slice.flatten(1).std(1).min() > 1e-3


def test_config_rejects_z_keys_in_2d_and_unimplemented_keys(tmp_path, small_digits_dir):
    from conftest import digits_config, write_yaml

    config = write_yaml(tmp_path / "c.yaml", digits_config(small_digits_dir))
    with pytest.raises(ConfigError, match="ZFLIP"):
        load_config(config, ["AUGMENTOR.ZFLIP", "True"])
    with pytest.raises(ConfigError, match="RANDAUGMENT"):
        load_config(config, ["PROBLEM.NDIM", "3D", "DATA.PATCH_SIZE", "(4, 32, 32, 1)",
                             "AUGMENTOR.RANDAUGMENT.ENABLE", "True"])
    with pytest.raises(ConfigError, match="PERC_CLIP"):
        load_config(config, ["DATA.NORMALIZATION.PERC_CLIP.ENABLE", "True"])
    with pytest.raises(ConfigError, match="MB_KERNEL"):
        load_config(config, ["AUGMENTOR.MB_KERNEL", "(7, 3)"])
    cfg, _ = load_config(
        config,
        [
            "AUGMENTOR.ENABLE",
            "True",
            "AUGMENTOR.ELASTIC",
            "True",
            "AUGMENTOR.E_ALPHA",
            "(20, 30)",
            "TEST.AUGMENTATION",
            "True",
            "TEST.AUGMENTATION_MODE",
            "max",
        ],
    )
    assert cfg.AUGMENTOR.E_ALPHA == (20, 30) and cfg.TEST.AUGMENTATION_MODE == "max"


class TinyDataset(torch.utils.data.Dataset):
    value_range = 255.0

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], torch.tensor(0), i


@pytest.mark.parametrize("ndim", ["2D", "3D"])
def test_samples_are_written(tmp_path, ndim):
    images = torch.randint(0, 256, (5, *SHAPES[ndim][1:]), dtype=torch.uint8)
    augmenter = Augmenter.from_cfg(only("ELASTIC", ndim))
    files = write_aug_samples(augmenter, TinyDataset(images), tmp_path / "aug", "job_1", 3, True)
    sheet = np.asarray(Image.open(tmp_path / "aug" / "job_1_aug_samples.png"))
    assert sheet.ndim == 3 and sheet.shape[1] > 2 * sheet.shape[0] / 3  # 3 rows of 3 tiles
    tifs = sorted(p.name for p in files if p.suffix == ".tif")
    if ndim == "2D":
        assert not tifs
    else:
        assert len(tifs) == 9 and tifffile.imread(files[1]).shape == (6, 2, 16, 16)


def test_dataset_statistics_are_measured_once_and_survive_a_checkpoint(tmp_path):
    images = torch.randint(0, 256, (7, 1, 8, 8), dtype=torch.uint8)
    cfg = get_cfg_defaults()
    cfg.DATA.NORMALIZATION.MEASURE_BY = "dataset"
    cfg.DATA.NORMALIZATION.PERC_CLIP.ENABLE = True
    cfg.DATA.NORMALIZATION.PERC_CLIP.LOWER_PERC, cfg.DATA.NORMALIZATION.PERC_CLIP.UPPER_PERC = 5.0, 95.0
    norm = Normalizer.from_cfg(cfg)
    assert norm.needs_fit
    norm.fit(TinyDataset(images))
    values = images.double().numpy()
    low, high = np.percentile(values, 5), np.percentile(values, 95)
    clipped = np.clip(values, low, high)
    assert (norm.lower_value, norm.upper_value) == pytest.approx((low, high))
    assert (norm.mean, norm.std) == pytest.approx((clipped.mean(), clipped.std()))
    save_checkpoint(tmp_path / "c.pth", {"normalizer": norm.state_dict()})
    restored = Normalizer.from_state_dict(load_checkpoint(tmp_path / "c.pth")["normalizer"])
    assert restored == norm and not restored.needs_fit
    x = images.float() / 255
    assert torch.allclose(
        restored(x, 255.0), torch.from_numpy((clipped - clipped.mean()) / clipped.std()).float(), atol=1e-5
    )


def test_per_image_percentile_clip_and_fixed_values():
    x = torch.linspace(0, 1, 101).view(1, 1, 101, 1).repeat(2, 1, 1, 1)
    x[1] *= 0.5
    norm = Normalizer("div", clip=True, lower_perc=10, upper_perc=90)
    y = norm(x, 1.0)
    assert torch.allclose(y.flatten(1).amin(1), torch.tensor([0.1, 0.05])) and torch.allclose(
        y.flatten(1).amax(1), torch.tensor([0.9, 0.45])
    )
    fixed = Normalizer("div", clip=True, lower_value=51.0, upper_value=102.0)(x, 255.0)
    assert fixed.min() == pytest.approx(0.2) and fixed.max() == pytest.approx(0.4)


def test_affine_geometry_is_in_pixels_whatever_the_aspect_ratio():
    x = torch.rand(4, 1, 12, 20)
    half_turn = run(only("RANDOM_ROT", RANDOM_ROT_RANGE=(180, 180)), x)
    assert torch.allclose(half_turn, torch.rot90(x, 2, dims=(-2, -1)), atol=1e-5)
    quarter = run(only("RANDOM_ROT", RANDOM_ROT_RANGE=(90, 90)), x[..., :12])
    assert any(torch.allclose(quarter, torch.rot90(x[..., :12], k, dims=(-2, -1)), atol=1e-5) for k in (1, 3))
    shifted = run(only("SHIFT", SHIFT_RANGE=(0.25, 0.25), AFFINE_MODE="wrap"), x)  # 3 rows and 5 columns
    for orig, out in zip(x, shifted):
        assert any(
            torch.allclose(out, orig.roll((dy, dx), dims=(-2, -1)), atol=1e-5) for dy in (-3, 3) for dx in (-5, 5)
        )


@pytest.mark.parametrize("size", [(32, 32), (24, 20), (7, 13), (80, 72)])  # 80x72: the FFT path of large images
def test_elastic_field_is_fft_smoothed_uniform_noise(size):
    """ELASTIC's displacements: uniform noise in [-1, 1] smoothed (circularly) by a Gaussian of E_SIGMA
    pixels, times E_ALPHA pixels; computed with circulant matrices, it must equal the FFT definition."""
    import math

    from biapy_cls.data.augment import Augmenter

    cfg = get_cfg_defaults()
    cfg.AUGMENTOR.ENABLE, cfg.AUGMENTOR.ELASTIC, cfg.AUGMENTOR.E_SIGMA = True, True, 3.0
    augmenter = Augmenter.from_cfg(cfg)
    h, w = size
    images = torch.rand(5, 1, h, w)
    torch.manual_seed(0)
    field = augmenter._elastic_field(images)
    torch.manual_seed(0)
    noise = torch.rand(5, 2, h, w) * 2 - 1
    fy, fx = torch.fft.fftfreq(h)[:, None], torch.fft.rfftfreq(w)[None, :]
    smooth = torch.fft.irfft2(torch.fft.rfft2(noise) * torch.exp(-2 * (math.pi * 3.0) ** 2 * (fy**2 + fx**2)), s=(h, w))
    low, high = cfg.AUGMENTOR.E_ALPHA
    alpha = (torch.rand(5) * (high - low) + low).view(5, 1, 1, 1)
    expected = (smooth * alpha).permute(0, 2, 3, 1) * torch.tensor([2.0 / w, 2.0 / h])
    assert torch.allclose(field, expected, atol=1e-6)


@pytest.mark.parametrize("ndim, size", [("2D", (32, 24)), ("2D", (80, 72)), ("3D", (20, 18))])  # 80x72: unfolding
def test_g_blur_is_a_replicate_padded_gaussian_along_every_axis(ndim, size):
    """G_BLUR, computed as products with blur matrices on small images, must equal the definition: each
    image convolved along every spatial axis with its own normalised Gaussian, edges replicated."""
    import torch.nn.functional as F

    from biapy_cls.data.augment_filters import _gaussian_kernels

    shape = (3, 2, *((5,) if ndim == "3D" else ()), *size)
    torch.manual_seed(0)
    x = torch.rand(shape)
    cfg = only("G_BLUR", ndim, G_SIGMA=(1.0, 2.0))
    torch.manual_seed(3)
    got = Augmenter.from_cfg(cfg)(x)
    torch.manual_seed(3)
    torch.rand(1, 3)  # which images get G_BLUR (all, at probability 1)
    sigma = torch.rand(3) * 1.0 + 1.0  # then G_BLUR's own draw: uniform in G_SIGMA
    kernels = _gaussian_kernels(sigma, 2 * 6 + 1)
    for i in range(3):
        ref = x[i:i + 1]
        for axis in range(x.ndim - 2):
            k = kernels[i].view(1, 1, *[1] * axis, -1, *[1] * (x.ndim - 3 - axis)).repeat(2, *[1] * (x.ndim - 1))
            pad = [0, 0] * (x.ndim - 2)
            pad[2 * (x.ndim - 3 - axis)] = pad[2 * (x.ndim - 3 - axis) + 1] = 6
            conv = F.conv3d if ndim == "3D" else F.conv2d
            ref = conv(F.pad(ref, pad, mode="replicate"), k, groups=2)
        assert torch.allclose(got[i:i + 1], ref, atol=1e-5), i
