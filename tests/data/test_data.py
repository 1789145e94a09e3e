"""Class discovery, natural order, readers, axis handling, size policy and in-memory storage."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from biapy_cls.data.dataset import ImageSpec, InMemoryDataset, LazyDataset, load_sample
from biapy_cls.data.discover import discover_labelled, discover_unlabelled, natural_key, stratified_split
from biapy_cls.data.io import read_image
from biapy_cls.errors import DataError


def make_tree(root, classes, n=2, shape=(8, 8), dtype=np.uint8, ext="png"):
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(n):
            arr = (np.random.default_rng(i).random(shape) * 200).astype(dtype)
            path = root / name / f"img{i}.{ext}"
            np.save(path, arr) if ext == "npy" else iio.imwrite(path, arr)
    return root


def test_natural_case_insensitive_order():
    names = ["class_10", "Class_2", "class_1", "b", "A"]
    assert sorted(names, key=natural_key) == ["A", "b", "class_1", "Class_2", "class_10"]


def test_class_folders_in_natural_order_ignoring_litter(tmp_path):
    root = make_tree(tmp_path / "train", ["class_10", "class_2", "class_1"])
    (root / ".DS_Store").write_text("x")
    (root / "__MACOSX").mkdir()
    (root / "class_1" / "Thumbs.db").write_text("x")
    samples, classes = discover_labelled(root, "DATA.TRAIN.PATH", "2D")
    assert classes == ["class_1", "class_2", "class_10"]
    assert list(samples.labels) == [0, 0, 1, 1, 2, 2]


def test_non_image_files_are_skipped_with_a_warning(tmp_path, capsys):
    from biapy_cls.logs import setup_logging

    setup_logging()
    root = make_tree(tmp_path / "train", ["a", "b"])
    (root / "a" / "notes.txt").write_text("x")
    samples, _ = discover_labelled(root, "DATA.TRAIN.PATH", "2D")
    assert len(samples) == 4
    out = capsys.readouterr().out
    assert "WARNING: Skipped 1 file(s)" in out and "a/notes.txt" in out


def test_validation_folders_are_matched_by_name_not_position(tmp_path):
    train = make_tree(tmp_path / "train", ["a", "b", "c"])
    val = make_tree(tmp_path / "val", ["c", "a"])  # b missing, c first on disk
    _, classes = discover_labelled(train, "DATA.TRAIN.PATH", "2D")
    samples, _ = discover_labelled(val, "DATA.VAL.PATH", "2D", classes)
    assert sorted(set(samples.labels.tolist())) == [0, 2]


def test_unknown_test_class_is_an_error_naming_it(tmp_path):
    make_tree(tmp_path / "test", ["a", "zzz"])
    with pytest.raises(DataError, match=r"\['zzz'\]"):
        discover_labelled(tmp_path / "test", "DATA.TEST.PATH", "2D", ["a", "b"])


def test_unlabelled_test_folder_may_be_flat_or_nested(tmp_path):
    make_tree(tmp_path / "t", ["x", "y"])
    iio.imwrite(tmp_path / "t" / "loose.png", np.zeros((8, 8), np.uint8))
    samples = discover_unlabelled(tmp_path / "t", "DATA.TEST.PATH", "2D")
    assert samples.relative_names() == ["loose.png", "x/img0.png", "x/img1.png", "y/img0.png", "y/img1.png"]


def test_missing_and_empty_folders_are_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        discover_labelled(tmp_path / "nope", "DATA.TRAIN.PATH", "2D")
    (tmp_path / "flat").mkdir()
    iio.imwrite(tmp_path / "flat" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="no class sub-folders"):
        discover_labelled(tmp_path / "flat", "DATA.TRAIN.PATH", "2D")
    make_tree(tmp_path / "tr", ["a"])
    (tmp_path / "tr" / "b").mkdir()
    with pytest.raises(DataError, match=r"class folder .*b.* holds no image"):
        discover_labelled(tmp_path / "tr", "DATA.TRAIN.PATH", "2D")


def test_stratified_split_keeps_every_class_and_is_seeded():
    labels = np.repeat(np.arange(3), [10, 20, 2])
    train, val = stratified_split(labels, 0.2, seed=1)
    assert np.bincount(labels[val]).tolist() == [2, 4, 1]
    assert set(train) | set(val) == set(range(len(labels))) and not set(train) & set(val)
    assert np.array_equal(val, stratified_split(labels, 0.2, seed=1)[1])
    assert not np.array_equal(val, stratified_split(labels, 0.2, seed=2)[1])


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp", "tif", "npy"])
def test_readers_give_y_x_c(tmp_path, ext):
    arr = (np.arange(12 * 10) % 250).astype(np.uint8).reshape(12, 10)
    path = tmp_path / f"im.{ext}"
    np.save(path, arr) if ext == "npy" else iio.imwrite(path, arr)
    out = read_image(path, "2D", 1, False)
    assert out.shape == (12, 10, 1) and out.dtype == np.uint8
    if ext != "jpg":
        assert np.array_equal(out[..., 0], arr)


def test_rgb_channels_first_tif_and_rgba_png(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (3, 16, 16), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "cf.tif", rgb)
    assert read_image(tmp_path / "cf.tif", "2D", 3, False).shape == (16, 16, 3)
    rgba = np.random.default_rng(0).integers(0, 255, (16, 16, 4), dtype=np.uint8)
    iio.imwrite(tmp_path / "a.png", rgba)
    assert np.array_equal(read_image(tmp_path / "a.png", "2D", 3, False), rgba[..., :3])


def test_grey_to_rgb_only_with_force_rgb(tmp_path):
    iio.imwrite(tmp_path / "g.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="FORCE_RGB"):
        read_image(tmp_path / "g.png", "2D", 3, False)
    assert read_image(tmp_path / "g.png", "2D", 3, True).shape == (8, 8, 3)


def test_a_volume_in_a_2d_run_is_an_error(tmp_path):
    tifffile.imwrite(tmp_path / "v.tif", np.zeros((16, 32, 32), np.uint8))
    with pytest.raises(DataError, match="PROBLEM.NDIM 3D"):
        read_image(tmp_path / "v.tif", "2D", 1, False)


def test_corrupt_file_is_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="bad.png"):
        read_image(tmp_path / "bad.png", "2D", 1, False)


def test_size_policy_resizes_or_pads_and_keeps_dtype(tmp_path):
    arr = np.full((10, 20), 1000, np.uint16)
    iio.imwrite(tmp_path / "a.png", arr)
    out = load_sample(tmp_path / "a.png", ImageSpec("2D", (32, 32), 1))
    assert out.shape == (1, 32, 32) and out.dtype == np.uint16 and (out == 1000).all()
    padded = load_sample(tmp_path / "a.png", ImageSpec("2D", (16, 24), 1, reflect_pad=True))
    assert padded.shape == (1, 16, 24)


def test_in_memory_storage_is_compact_and_mixed_depths_agree(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    iio.imwrite(tmp_path / "a" / "x8.png", np.full((8, 8), 255, np.uint8))
    iio.imwrite(tmp_path / "b" / "x16.png", np.full((8, 8), 65535, np.uint16))
    samples, _ = discover_labelled(tmp_path, "DATA.TRAIN.PATH", "2D")
    ds = InMemoryDataset(samples, ImageSpec("2D", (8, 8), 1))
    assert ds.images.dtype == np.uint16 and ds.value_range == 65535
    assert ds.nbytes == 2 * 8 * 8 * 2  # exactly the pixels, no float copy
    images, labels, idx = ds.__getitems__([1, 0])
    assert (images.float() / ds.value_range == 1.0).all() and labels.tolist() == [1, 0]
    lazy = LazyDataset(samples, ImageSpec("2D", (8, 8), 1))
    assert all(float(lazy[i][0].max()) / lazy.value_range == 1.0 for i in range(2))


def test_float_images_are_kept_as_float(tmp_path):
    (tmp_path / "a").mkdir()
    tifffile.imwrite(tmp_path / "a" / "f.tif", np.full((8, 8), 0.25, np.float32))
    samples, _ = discover_labelled(tmp_path, "DATA.TRAIN.PATH", "2D")
    ds = InMemoryDataset(samples, ImageSpec("2D", (8, 8), 1))
    assert ds.images.dtype == np.float32 and float(ds.images.max()) == 0.25 and ds.value_range == 1.0
