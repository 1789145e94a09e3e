"""Cases of the second hostile pass (docs/hostile_pass.md) that gave a silent wrong result or a misleading
message, each with the exact input and what the user sees now."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from PIL import Image

from biapy_cls.configure import load_config
from biapy_cls.data.plan import plan_test_data, plan_training_data
from tests.conftest import write_yaml


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16), value, np.uint8)).save(path)


@pytest.fixture
def tree(tmp_path):
    for split in ("train", "other"):
        for cls in ("a", "b"):
            for k in range(4):
                _png(tmp_path / split / cls / f"{k}.png", 40 * k)
    return tmp_path


def _cfg(tmp_path, **data):
    cfg = {"DATA": {"PATCH_SIZE": "(16, 16, 1)", "TRAIN": {"PATH": str(tmp_path / "train")},
                    "TEST": {"PATH": str(tmp_path / "other"), "LOAD_GT": True}, **data},
           "TRAIN": {"ENABLE": True, "EPOCHS": 1}, "TEST": {"ENABLE": True}}
    return load_config(write_yaml(tmp_path / "c.yaml", cfg))[0]


def test_test_folder_that_is_the_training_folder_is_said_loudly(tree, caplog):
    cfg = _cfg(tree, TEST={"PATH": str(tree / "train"), "LOAD_GT": True})
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        plan_test_data(cfg, plan_training_data(cfg))
    text = " ".join(caplog.text.split())
    assert "8 of the 8 test images of DATA.TEST.PATH" in text
    assert "are also training or validation images of this run" in text and "memorised" in text


def test_validation_folder_that_is_the_training_folder(tree, caplog):
    cfg = _cfg(tree, VAL={"FROM_TRAIN": False, "PATH": str(tree / "train")})
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        plan_training_data(cfg)
    assert "8 of the 8 validation images of DATA.VAL.PATH" in caplog.text
    assert "also training images (DATA.TRAIN.PATH)" in caplog.text


def test_linked_files_are_the_same_images(tree, caplog):
    os.symlink(tree / "train" / "a" / "0.png", tree / "other" / "a" / "linked.png")
    cfg = _cfg(tree)
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        plan_test_data(cfg, plan_training_data(cfg))
    assert "1 of the 9 test images" in caplog.text and "'linked.png'" in caplog.text


def test_separate_folders_say_nothing(tree, caplog):
    cfg = _cfg(tree)
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        plan_test_data(cfg, plan_training_data(cfg))
    assert "memorised" not in caplog.text


@pytest.mark.parametrize("content, words", [
    (b"", "it is an empty file (0 bytes)"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "a Git LFS pointer, not the image itself: "
                                                                      "fetch the images with 'git lfs pull', or"),
    (b"<html><body>404 Not Found</body></html>", "it is a text file, not an image (it starts with '<html><body>404"),
    (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "The file is corrupt, truncated or not an image"),
])
def test_an_unreadable_image_says_what_the_file_is(tmp_path, content, words):
    """Each was "corrupt, truncated or not an image", which sent the analyst looking for damage."""
    from biapy_cls.data.io import read_file
    from biapy_cls.errors import DataError

    path = tmp_path / "img.png"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_file(path)
    message = str(err.value)
    assert message.startswith(f"Cannot read the image '{path}': ") and words in message
    assert message.endswith("replace or remove it.")


def test_a_png_declaring_billions_of_pixels_is_named_as_such(tmp_path):
    """A PNG header of 60000 x 60000 pixels: not corrupt, too large; said before any decoding."""
    import struct
    import zlib

    from biapy_cls.data.io import read_file
    from biapy_cls.errors import DataError

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    with pytest.raises(DataError) as err:
        read_file(path)
    message = str(err.value)
    assert "its header declares a huge image" in message and "3600000000 pixels" in message
    assert "crop or downscale it" in message and "corrupt" not in message


def test_a_grey_palette_png_is_a_grey_image(tmp_path):
    """ImageJ saves 8-bit images with a LUT as palette PNGs; an inverted grey LUT (index i shows 255 - i) is read
    as the greys shown, one channel (it was RGB: a grey data set then "mixed channel counts")."""
    from biapy_cls.data.io import read_file

    index = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = Image.fromarray(index).convert("P")
    image.putpalette([255 - i for i in range(256) for _ in range(3)])
    image.save(tmp_path / "grey.png")
    arr = read_file(tmp_path / "grey.png")
    assert arr.shape == (16, 16) and np.array_equal(arr, 255 - index)
    image.putpalette([v for i in range(256) for v in (i, 0, 255 - i)])  # a colour LUT stays RGB, as shown
    image.save(tmp_path / "colour.png")
    arr = read_file(tmp_path / "colour.png")
    assert arr.shape == (16, 16, 3) and np.array_equal(arr[..., 0], index) and np.array_equal(arr[..., 2], 255 - index)


def test_colour_test_images_of_a_grey_training_set_are_not_told_to_change_patch_size(tree):
    """The generic advice ("set the last value of DATA.PATCH_SIZE to 3") would break the grey training images."""
    from biapy_cls.errors import DataError

    for cls in ("a", "b"):
        for k in range(4):
            Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tree / "other" / cls / f"{k}.png")
    cfg = _cfg(tree)
    with pytest.raises(DataError) as err:
        plan_test_data(cfg, plan_training_data(cfg))
    message = str(err.value)
    assert message.startswith("The training images have 1 channel(s) (grey), but the test image '")
    assert "has 3: test images must have the channels of the training images, so convert them to grey" in message
    assert "PATCH_SIZE" not in message


def test_an_exif_rotated_jpeg_is_read_as_viewers_show_it(tmp_path):
    """A camera JPEG stored landscape (16 x 24) with EXIF orientation 6 is shown portrait (24 x 16), the bright
    stripe at the top; it was read as stored, rotated against what the analyst sees and labels."""
    from biapy_cls.data.io import read_file

    stored = np.zeros((16, 24), np.uint8)
    stored[:, :4] = 255  # left stripe as stored; orientation 6 = rotate 90 degrees clockwise to view
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "photo.jpg", exif=exif, quality=100)
    arr = read_file(tmp_path / "photo.jpg")
    assert arr.shape == (24, 16)
    assert arr[:4].mean() > 200 and arr[8:].mean() < 50


def _two_channel_tree(tmp_path, suffix):
    """Two classes that differ only in the second channel of (16, 16, 2) images (2-channel microscopy)."""
    import tifffile

    rng = np.random.default_rng(0)
    for cls in (0, 1):
        for k in range(4):
            arr = (rng.random((16, 16, 2)) * 100).astype(np.uint8)
            arr[..., 1] += 100 * cls
            path = tmp_path / "train" / f"c{cls}" / f"{k}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, arr) if suffix == ".npy" else tifffile.imwrite(path, arr)
    return tmp_path


@pytest.mark.parametrize("suffix", [".npy", ".tif"])
def test_a_second_channel_of_microscopy_data_is_never_dropped_as_alpha(tmp_path, suffix):
    """It was taken as grey+alpha: PATCH_SIZE () trained on the first channel alone (the class was in the second),
    and PATCH_SIZE (16, 16, 1) dropped the second channel silently."""
    from biapy_cls.data.dataset import build_dataset
    from biapy_cls.errors import DataError

    data = _two_channel_tree(tmp_path, suffix)
    cfg = _cfg(data, PATCH_SIZE="()")
    plan = plan_training_data(cfg)
    assert plan.spec.channels == 2
    images = build_dataset(plan.train, plan.spec, True, "t").images
    assert images.shape[1] == 2 and images[:, 1].max() >= 100
    with pytest.raises(DataError) as err:
        plan_training_data(_cfg(data, PATCH_SIZE="(16, 16, 1)"))
    message = " ".join(str(err.value).split())
    assert "has 2 channel(s) but DATA.PATCH_SIZE asks for 1. Set the last value of DATA.PATCH_SIZE to 2" in message
    assert f"(in a {suffix} image every channel is image data: none is dropped as transparency)" in message


def test_a_4_channel_tiff_is_not_rgba_but_an_rgba_png_still_is(tmp_path):
    import tifffile

    from biapy_cls.data.io import read_image
    from biapy_cls.errors import DataError

    arr = np.arange(16 * 16 * 4, dtype=np.uint16).reshape(16, 16, 4)
    tifffile.imwrite(tmp_path / "four.tif", arr)
    with pytest.raises(DataError, match="has 4 channel\\(s\\) but DATA.PATCH_SIZE asks for 3"):
        read_image(tmp_path / "four.tif", "2D", 3, False)
    Image.fromarray(np.zeros((16, 16, 4), np.uint8), "RGBA").save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "rgba.png", "2D", 3, False).shape == (16, 16, 3)


def test_a_cmyk_jpeg_is_read_as_its_rgb_colours(tmp_path):
    """A CMYK JPEG (print workflows) came out as 4 channels called RGBA: cyan, magenta, yellow as R, G, B."""
    from biapy_cls.data.io import read_file

    Image.new("RGB", (16, 16), (255, 0, 0)).convert("CMYK").save(tmp_path / "red.jpg", quality=100)
    arr = read_file(tmp_path / "red.jpg")
    assert arr.shape == (16, 16, 3)
    assert arr[..., 0].mean() > 230 and arr[..., 1].mean() < 25 and arr[..., 2].mean() < 25


def test_a_pickled_npy_says_it_holds_python_objects(tmp_path):
    from biapy_cls.data.io import read_file
    from biapy_cls.errors import DataError

    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="it holds Python objects \\(a pickled array\\), which are never loaded"):
        read_file(tmp_path / "o.npy")


def test_float64_values_beyond_float32_are_refused_by_name(tmp_path):
    """1e300 in a float64 .npy became inf in float32 storage: a NaN loss blamed on the learning rate."""
    from biapy_cls.data.io import read_image
    from biapy_cls.errors import DataError

    np.save(tmp_path / "far.npy", np.full((16, 16), 1e300))
    with pytest.raises(DataError, match="far.npy' holds values up to 1e\\+300, beyond what 32-bit floats hold"):
        read_image(tmp_path / "far.npy", "2D", 1, False)
    np.save(tmp_path / "near.npy", np.full((16, 16), 1e30))  # large but representable: read as it is
    assert read_image(tmp_path / "near.npy", "2D", 1, False).max() == 1e30


def test_lazily_read_pngs_are_writable_arrays(tmp_path):
    """Hostile pass: every lazy-loading run printed torch's "The given NumPy array is not writable" warning (Pillow
    hands out read-only arrays), which reads like a fault."""
    from biapy_cls.data.io import read_file

    _png(tmp_path / "a.png")
    assert read_file(tmp_path / "a.png").flags.writeable


def test_a_test_only_run_on_the_checkpoints_training_folder_is_said_loudly(tree, caplog):
    """The "test later" flow: a test-only run has no training images of its own, so the checkpoint's config says
    where it was trained."""
    import yaml

    from biapy_cls.data.discover import discover_labelled
    from biapy_cls.data.plan import warn_trained_on

    trained_on = yaml.safe_dump({"DATA": {"TRAIN": {"PATH": str(tree / "train")}, "VAL": {"PATH": ""}}})
    test, _ = discover_labelled(tree / "train", "DATA.TEST.PATH", "2D", ["a", "b"])
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        warn_trained_on(test, trained_on)
    assert "8 of the 8 test images of DATA.TEST.PATH" in caplog.text and "the checkpoint was trained on" in caplog.text
    caplog.clear()
    import shutil

    shutil.copytree(tree / "other", tree / "train_more")
    other, _ = discover_labelled(tree / "train_more", "DATA.TEST.PATH", "2D", ["a", "b"])
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        warn_trained_on(other, trained_on)  # a sibling folder whose name starts alike ("train_more"): nothing
        warn_trained_on(other, None)  # an old checkpoint without its config
    assert caplog.text == ""


@pytest.mark.parametrize("scale, norm, warned", [(65535.0, "div", True), (1.0, "div", False),
                                                 (65535.0, "zero_mean_unit_variance", False)])
def test_float_images_of_raw_counts_under_div_are_said(tmp_path, caplog, scale, norm, warned):
    """`div` takes float images as they are (BiaPy's rule): float32 raw counts (0-65535) reached the model unscaled
    and trained to chance without a word."""
    import tifffile

    for cls in ("a", "b"):
        for k in range(3):
            path = tmp_path / "train" / cls / f"{k}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, (np.random.default_rng(k).random((16, 16)) * scale).astype(np.float32))
    cfg = load_config(write_yaml(tmp_path / "c.yaml", {
        "DATA": {"PATCH_SIZE": "(16, 16, 1)", "TRAIN": {"PATH": str(tmp_path / "train")},
                 "NORMALIZATION": {"TYPE": norm}},
        "TRAIN": {"ENABLE": True, "EPOCHS": 1}, "TEST": {"ENABLE": False}}))[0]
    with caplog.at_level(logging.WARNING, logger="biapy_cls"):
        plan_training_data(cfg)
    text = " ".join(caplog.text.split())
    assert ("DATA.NORMALIZATION.TYPE is div, which takes floating-point images as they are" in text) == warned
    if warned:
        assert "6 of the 6 float images sampled" in text
        assert "Use DATA.NORMALIZATION.TYPE zero_mean_unit_variance" in text


def test_a_multi_page_tiff_among_grey_images_is_named_as_pages_not_rgb(tmp_path):
    """It was called 'RGB' in the mixed-channels message: a 3-page TIFF is read as (c, y, x) by the axis rule."""
    import tifffile

    from biapy_cls.errors import DataError

    for cls in ("a", "b"):
        for k in range(3):
            _png(tmp_path / "train" / cls / f"{k}.png")
    tifffile.imwrite(tmp_path / "train" / "a" / "pages.tif", np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    with pytest.raises(DataError) as err:
        plan_training_data(_cfg(tmp_path))
    message = " ".join(str(err.value).split())
    assert "'pages.tif' (a 3-page TIFF, read as 3 channels (c, y, x); if its pages are slices of a volume" in message
    assert "'0.png' (grey)" in message
    (tmp_path / "train" / "a" / "pages.tif").unlink()
    tifffile.imwrite(tmp_path / "train" / "a" / "planar.tif", np.zeros((3, 16, 16), np.uint8), photometric="rgb",
                     planarconfig="separate")  # one RGB page, colour planes first
    with pytest.raises(DataError, match="'planar.tif' \\(RGB\\)"):
        plan_training_data(_cfg(tmp_path))
