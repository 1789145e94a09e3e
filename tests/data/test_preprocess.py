"""DATA.PREPROCESS: every operation against scikit-image's (or SciPy's) own function on real images."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage import data, exposure, feature, filters, transform
from skimage.color import rgb2gray

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.data.preprocess import Preprocessing, check_preprocess_cfg, match_channel, reference_histogram
from biapy_cls.errors import ConfigError


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    return data.camera()[100:164, 200:264, None]  # (64, 64, 1) uint8: a real photograph


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return data.astronaut()[:64, 100:164]  # (64, 64, 3) uint8


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    cam = data.camera()
    return np.stack([cam[i * 8:i * 8 + 32, 200:232] for i in range(8)])[..., None]  # (8, 32, 32, 1)


def pre(ndim="2D", ops=None, channels=1, **extra) -> Preprocessing:
    """A Preprocessing built from the config keys, as a run would build it."""
    cfg = get_cfg_defaults()
    cfg.PROBLEM.NDIM = ndim
    cfg.DATA.PREPROCESS.TRAIN = True
    for key, value in (ops or {}).items():
        node = cfg.DATA.PREPROCESS
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    errors: list[str] = []
    check_preprocess_cfg(cfg, errors)
    assert not errors, errors
    out = Preprocessing.from_cfg(cfg, channels, **extra)
    assert out is not None
    return out


def test_gaussian_blur_matches_skimage_per_channel(rgb):
    out = pre(ops={"GAUSSIAN_BLUR.ENABLE": True, "GAUSSIAN_BLUR.SIGMA": 1.5}, channels=3)(rgb)
    expected = filters.gaussian(rgb, sigma=1.5, mode="nearest", preserve_range=True, channel_axis=-1)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, np.clip(np.rint(expected), 0, 255).astype(np.uint8))
    # independently: SciPy's filter with no smoothing across channels, within rounding
    scipy_out = ndi.gaussian_filter(rgb.astype(float), sigma=(1.5, 1.5, 0), mode="nearest", truncate=4.0)
    assert np.abs(out.astype(float) - scipy_out).max() <= 0.5 + 1e-6


def test_median_blur_matches_skimage_and_scipy(grey):
    out = pre(ops={"MEDIAN_BLUR.ENABLE": True, "MEDIAN_BLUR.KERNEL_SIZE": (5, 5, 1)})(grey)
    np.testing.assert_array_equal(out, filters.median(grey, footprint=np.ones((5, 5, 1), bool)))
    np.testing.assert_array_equal(out, ndi.median_filter(grey, size=(5, 5, 1), mode="nearest"))


def test_resize_matches_skimage_and_keeps_the_dtype(grey):
    p = pre(ops={"RESIZE.ENABLE": True, "RESIZE.OUTPUT_SHAPE": (40, 48), "RESIZE.ORDER": 3})
    out = p(grey)
    expected = transform.resize(grey, (40, 48), order=3, mode="reflect", preserve_range=True, anti_aliasing=False)
    assert out.shape == (40, 48, 1) and out.dtype == np.uint8 and p.output_spatial((64, 64)) == (40, 48)
    np.testing.assert_array_equal(out, np.clip(np.rint(expected), 0, 255).astype(np.uint8))


def test_resize_without_preserve_range_stays_in_the_dtype_range(grey):
    """BiaPy casts skimage's 0..1 result straight to uint8 (all 0 and 1); the image must keep its range."""
    out = pre(ops={"RESIZE.ENABLE": True, "RESIZE.OUTPUT_SHAPE": (32, 32), "RESIZE.PRESERVE_RANGE": False})(grey)
    expected = transform.resize(grey, (32, 32), order=1, preserve_range=True, anti_aliasing=False)
    assert np.abs(out.astype(float) - expected).max() <= 1.0
    assert out.max() > 100


def test_zoom_matches_skimage_rescale(volume):
    p = pre("3D", ops={"ZOOM.ENABLE": True, "ZOOM.ZOOM_FACTOR": [1, 1, 1, 2, 0.5]})  # BiaPy's T, Z, C, Y, X
    out = p(volume)
    expected = transform.rescale(volume, (1, 2, 0.5), order=1, preserve_range=True, channel_axis=-1)
    assert out.shape == expected.shape == (8, 64, 16, 1) and p.output_spatial((8, 32, 32)) == (8, 64, 16)
    np.testing.assert_array_equal(out, np.clip(np.rint(expected), 0, 255).astype(np.uint8))


def test_clahe_matches_skimage_on_grey_rgb_and_volume(grey, rgb, volume):
    ops = {"CLAHE.ENABLE": True, "CLAHE.CLIP_LIMIT": 0.02}
    for image, ndim, channels in ((grey, "2D", 1), (rgb, "2D", 3), (volume, "3D", 1)):
        out = pre(ndim, ops, channels)(image)
        source = image[..., 0] if channels == 1 else image
        expected = exposure.equalize_adapthist(source, clip_limit=0.02)
        expected = expected[..., None] if channels == 1 else expected
        assert out.dtype == np.uint8 and out.shape == image.shape
        np.testing.assert_array_equal(out, np.rint(expected * 255).astype(np.uint8))
    # it does equalise: the grey patch's histogram gets spread over more of the range
    assert np.std(pre(ops=ops)(grey).astype(float)) > np.std(grey.astype(float))


def test_canny_matches_skimage_on_grey_and_rgb(grey, rgb):
    ops = {"CANNY.ENABLE": True, "CANNY.LOW_THRESHOLD": 0.05, "CANNY.HIGH_THRESHOLD": 0.15}
    out = pre(ops=ops, channels=3)(rgb)
    edges = feature.canny(rgb2gray(rgb), low_threshold=0.05, high_threshold=0.15)
    assert out.dtype == np.uint8 and out.shape == rgb.shape and edges.any()
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], edges.astype(np.uint8) * 255)
    grey_edges = feature.canny(grey[..., 0])
    np.testing.assert_array_equal(pre(ops={"CANNY.ENABLE": True})(grey)[..., 0], grey_edges.astype(np.uint8) * 255)


def test_histogram_matching_equals_skimage_match_histograms(tmp_path, grey, rgb):
    from PIL import Image

    refs = [data.coins()[:48, :48], data.moon()[:40, :56]]
    for i, ref in enumerate(refs):
        Image.fromarray(ref).save(tmp_path / f"ref{i}.png")
    p = pre(ops={"MATCH_HISTOGRAM.ENABLE": True, "MATCH_HISTOGRAM.REFERENCE_PATH": str(tmp_path)})
    pooled = np.concatenate([r.ravel() for r in refs]).reshape(-1, 1)
    # one channel without channel_axis: scikit-image returns floats (per channel it truncates them into uint8)
    expected = exposure.match_histograms(grey[..., 0], pooled)
    np.testing.assert_array_equal(p(grey)[..., 0], np.rint(expected).astype(np.uint8))
    # float images take scikit-image's other branch (np.unique instead of bincount)
    floats = rgb.astype(np.float32) / 255
    ref_float = [data.astronaut()[100:140, 100:150].astype(np.float32) / 255]
    values = reference_histogram(ref_float)
    matched = np.stack([match_channel(floats[..., c], *values[c]) for c in range(3)], -1)
    np.testing.assert_allclose(matched, exposure.match_histograms(floats, ref_float[0], channel_axis=-1), rtol=1e-6)


def test_operations_run_in_biapy_order_and_survive_the_checkpoint(tmp_path, grey):
    import torch
    from PIL import Image

    Image.fromarray(data.coins()[:32, :32]).save(tmp_path / "ref.png")
    p = pre(ops={"CANNY.ENABLE": True, "RESIZE.ENABLE": True, "RESIZE.OUTPUT_SHAPE": (32, 32),
                 "MATCH_HISTOGRAM.ENABLE": True, "MATCH_HISTOGRAM.REFERENCE_PATH": str(tmp_path),
                 "GAUSSIAN_BLUR.ENABLE": True})
    assert [name for name, _ in p.operations] == ["RESIZE", "GAUSSIAN_BLUR", "MATCH_HISTOGRAM", "CANNY"]
    torch.save(p.state_dict(), tmp_path / "state.pth")
    (tmp_path / "ref.png").unlink()  # a test-only run may not have the reference folder
    restored = Preprocessing.from_state_dict(torch.load(tmp_path / "state.pth", weights_only=True))
    np.testing.assert_array_equal(restored(grey), p(grey))
    assert restored.describe() == p.describe()


def test_validation_cut_from_training_follows_the_training_switch():
    cfg = get_cfg_defaults()
    cfg.DATA.PREPROCESS.TRAIN = True
    cfg.DATA.PREPROCESS.CLAHE.ENABLE = True
    p = Preprocessing.from_cfg(cfg, 1)
    assert p.applies_to("TRAIN") and p.applies_to("VAL") and not p.applies_to("TEST")
    cfg.DATA.PREPROCESS.TRAIN = False
    assert Preprocessing.from_cfg(cfg, 1) is None  # switched on nowhere: nothing to do


@pytest.mark.parametrize("ops, ndim, message", [
    ({"MEDIAN_BLUR.ENABLE": True}, "3D", "MEDIAN_BLUR.KERNEL_SIZE"),
    ({"CANNY.ENABLE": True}, "3D", "2D images only"),
    ({"RESIZE.ENABLE": True, "RESIZE.OUTPUT_SHAPE": (32, 32, 32)}, "2D", "RESIZE.OUTPUT_SHAPE"),
    ({"GAUSSIAN_BLUR.ENABLE": True, "GAUSSIAN_BLUR.CHANNEL_AXIS": 0}, "2D", "CHANNEL_AXIS"),
    ({"ZOOM.ENABLE": True, "ZOOM.ZOOM_FACTOR": [1, 2, 1, 1, 1]}, "2D", "ZOOM_FACTOR"),
    ({"CLAHE.ENABLE": True, "CLAHE.KERNEL_SIZE": [8, 8, 8]}, "2D", "CLAHE.KERNEL_SIZE"),
])
def test_bad_settings_name_their_key(ops, ndim, message):
    cfg = get_cfg_defaults()
    cfg.PROBLEM.NDIM = ndim
    cfg.DATA.PREPROCESS.TEST = True
    for key, value in ops.items():
        section, leaf = key.split(".")
        cfg.DATA.PREPROCESS[section][leaf] = value
    errors: list[str] = []
    check_preprocess_cfg(cfg, errors)
    assert len(errors) == 1 and message in errors[0]


def test_3d_resize_takes_biapy_default_as_a_cube():
    cfg = get_cfg_defaults()
    cfg.PROBLEM.NDIM = "3D"
    cfg.DATA.PREPROCESS.TRAIN = True
    cfg.DATA.PREPROCESS.RESIZE.ENABLE = True
    errors: list[str] = []
    check_preprocess_cfg(cfg, errors)
    assert not errors and tuple(cfg.DATA.PREPROCESS.RESIZE.OUTPUT_SHAPE) == (512, 512, 512)


def test_canny_refuses_two_channel_images():
    cfg = get_cfg_defaults()
    cfg.DATA.PREPROCESS.TRAIN = True
    cfg.DATA.PREPROCESS.CANNY.ENABLE = True
    with pytest.raises(ConfigError, match="grey or RGB"):
        Preprocessing.from_cfg(cfg, 2)


def test_in_memory_preprocesses_once_lazy_per_read_and_replicate_repeats(small_digits_dir):
    from biapy_cls.data.dataset import ImageSpec, build_dataset, build_loader, replicate
    from biapy_cls.data.discover import discover_labelled

    samples, _ = discover_labelled(small_digits_dir / "test", "DATA.TEST.PATH", "2D")
    spec = ImageSpec.from_patch_size("2D", (32, 32, 1), False, False)
    blur = pre(ops={"GAUSSIAN_BLUR.ENABLE": True})
    calls = []

    def counted(image):
        calls.append(1)
        return blur(image)

    memory = build_dataset(samples, spec, True, "x", preprocess=counted)
    loader = build_loader(replicate(memory, 3), 16, True, 0, 0, False, train=True)
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        seen = np.concatenate([idx.numpy() for _, _, idx in loader])
        assert np.array_equal(np.bincount(seen), [3] * len(samples))  # every image 3 times per epoch
    assert len(calls) == len(samples)  # preprocessed at loading only, never again per epoch
    # the stored images are the preprocessed ones; lazily each read preprocesses again, to the same values
    lazy = build_dataset(samples, spec, False, "x", preprocess=counted)
    calls.clear()
    assert np.array_equal(lazy[5][0].numpy(), memory[5][0].numpy().astype(np.float32)) and len(calls) == 1
    from biapy_cls.data.io import read_image

    expected = blur(read_image(samples.paths[5], "2D", 1, False))
    assert np.array_equal(memory[5][0].numpy(), np.moveaxis(expected, -1, 0))
