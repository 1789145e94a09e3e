"""The data-preparation scripts: --help, the trees they write, and the errors a user sees."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import ROOT, load_script

SCRIPTS = ["from_class_csv_to_folders", "medmnist_npz_to_folders", "make_example_data", "gen_config_docs"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_has_help(name):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{name}.py"), "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout and len(result.stdout) > 300


# ------------------------------------------------------------------------------ CSV -> folders
def write_images(folder, names):
    for i, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8), i * 20, np.uint8)).save(path)


@pytest.fixture
def csv_data(tmp_path):
    images = tmp_path / "images"
    write_images(images, ["a.png", "b.png", "c.png", "p1/d.png", "p2/d.png"])
    csv = tmp_path / "labels.csv"
    csv.write_text("id,filename,class\n1,a.png,healthy\n2,b.png,tumour\n3,c.png,healthy\n"
                   "4,p1/d.png,tumour\n5,p2/d.png,tumour\n")
    return csv, images


@pytest.mark.parametrize("mode", ["copy", "hardlink", "symlink"])
def test_csv_to_folders_builds_the_class_tree(csv_data, tmp_path, mode):
    csv, images = csv_data
    out = tmp_path / "train"
    script = load_script("from_class_csv_to_folders")
    assert script.main([str(csv), str(images), str(out), "--mode", mode]) == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert files == ["healthy/a.png", "healthy/c.png", "tumour/b.png", "tumour/p1_d.png", "tumour/p2_d.png"]
    assert (out / "tumour/p2_d.png").read_bytes() == (images / "p2/d.png").read_bytes()
    assert (out / "healthy/a.png").is_symlink() == (mode == "symlink")
    if mode == "hardlink":
        assert (out / "healthy/a.png").stat().st_ino == (images / "a.png").stat().st_ino

    from biapy_cls.data.discover import discover_labelled

    samples, classes = discover_labelled(out, "DATA.TRAIN.PATH", "2D")
    assert classes == ["healthy", "tumour"]


def test_csv_to_folders_names_missing_files_and_writes_nothing(csv_data, tmp_path, capsys):
    csv, images = csv_data
    csv.write_text(csv.read_text() + "6,gone.png,healthy\n7,also_gone.png,tumour\n")
    out = tmp_path / "train"
    assert load_script("from_class_csv_to_folders").main([str(csv), str(images), str(out)]) == 2
    err = capsys.readouterr().err
    assert "gone.png" in err and "also_gone.png" in err and "2 file(s)" in err
    assert not out.exists()


def test_csv_to_folders_wrong_header_and_conflicting_class(csv_data, tmp_path, capsys):
    csv, images = csv_data
    script = load_script("from_class_csv_to_folders")
    assert script.main([str(csv), str(images), str(tmp_path / "o"), "--class-column", "label"]) == 2
    assert "--class-column" in capsys.readouterr().err
    csv.write_text("a.png,healthy\na.png,tumour\n")
    assert script.main([str(csv), str(images), str(tmp_path / "o"), "--no-header"]) == 2
    assert "two classes" in capsys.readouterr().err


def test_csv_to_folders_refuses_to_overwrite(csv_data, tmp_path, capsys):
    csv, images = csv_data
    script = load_script("from_class_csv_to_folders")
    out = tmp_path / "train"
    assert script.main([str(csv), str(images), str(out)]) == 0
    assert script.main([str(csv), str(images), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert script.main([str(csv), str(images), str(out), "--overwrite"]) == 0


# ------------------------------------------------------------------------------ MedMNIST .npz
def write_npz(path, shape, n_classes=3, per_split=(12, 4, 6), seed=0):
    """A synthetic MedMNIST file: same array names, dtypes and shapes (labels (N, 1) uint8)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), per_split):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % n_classes).astype(np.uint8)[:, None]
    np.savez(path, **arrays)
    return arrays


def test_medmnist_2d_grayscale_with_names_from_json(tmp_path):
    arrays = write_npz(tmp_path / "m.npz", (28, 28))
    names = tmp_path / "labels.json"
    names.write_text(json.dumps({"0": "adipose", "1": "smooth muscle", "2": "debris"}))
    out = tmp_path / "out"
    assert (
        load_script("medmnist_npz_to_folders").main([str(tmp_path / "m.npz"), str(out), "--labels-json", str(names)])
        == 0
    )
    assert sorted(p.name for p in (out / "train").iterdir()) == ["0_adipose", "1_smooth_muscle", "2_debris"]
    for split, n in (("train", 12), ("val", 4), ("test", 6)):
        assert len(list((out / split).rglob("*.png"))) == n
    # image 4 of the test split has label 4 % 3 = 1
    written = np.asarray(Image.open(out / "test" / "1_smooth_muscle" / "test_000004.png"))
    assert np.array_equal(written, arrays["test_images"][4])


def test_medmnist_2d_rgb_as_tif_with_labels_option(tmp_path):
    arrays = write_npz(tmp_path / "m.npz", (28, 28, 3), n_classes=2)
    out = tmp_path / "out"
    script = load_script("medmnist_npz_to_folders")
    assert script.main([str(tmp_path / "m.npz"), str(out), "--labels", "benign, malignant", "--format", "tif"]) == 0
    written = tifffile.imread(out / "val" / "1_malignant" / "val_000003.tif")
    assert written.shape == (28, 28, 3) and np.array_equal(written, arrays["val_images"][3])


def test_medmnist_3d_volumes_and_default_names(tmp_path):
    arrays = write_npz(tmp_path / "m.npz", (8, 16, 16))
    out = tmp_path / "out"
    script = load_script("medmnist_npz_to_folders")
    assert script.main([str(tmp_path / "m.npz"), str(out)]) == 0
    assert sorted(p.name for p in (out / "test").iterdir()) == ["0", "1", "2"]
    written = tifffile.imread(out / "train" / "2" / "train_000005.tif")
    assert written.shape == (8, 16, 16) and np.array_equal(written, arrays["train_images"][5])


def test_medmnist_errors(tmp_path, capsys):
    script = load_script("medmnist_npz_to_folders")
    write_npz(tmp_path / "m3.npz", (8, 16, 16))
    assert script.main([str(tmp_path / "m3.npz"), str(tmp_path / "o"), "--format", "png"]) == 2
    assert "--format tif" in capsys.readouterr().err
    write_npz(tmp_path / "m.npz", (28, 28))
    assert script.main([str(tmp_path / "m.npz"), str(tmp_path / "o"), "--labels", "a,b"]) == 2
    assert "give 3 names" in capsys.readouterr().err
    np.savez(
        tmp_path / "multi.npz", train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.zeros((4, 14), np.uint8)
    )
    assert script.main([str(tmp_path / "multi.npz"), str(tmp_path / "o")]) == 2
    assert "multi-label" in capsys.readouterr().err
