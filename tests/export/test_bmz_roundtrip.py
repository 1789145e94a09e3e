"""BioImage Model Zoo round trip on the digits: train with MODEL.BMZ.EXPORT on, check the zip with
bioimageio.core's own model test for every weights format it holds (2D and 3D), then load it back with
MODEL.SOURCE bmz and get the same predictions; fine-tune it on another class count."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import digits_config, load_script, write_yaml

pytest.importorskip("bioimageio.core")
pytestmark = pytest.mark.slow

EXPORT = {"ENABLE": True, "MODEL_NAME": "Digits classifier", "DESCRIPTION": "Handwritten digits, 10 classes.",
          "AUTHORS": [{"name": "Jane Doe", "github_user": "janedoe"}], "TAGS": ["digits"],
          "CITE": [{"text": "UCI digits", "doi": "10.24432/C50P49"}],
          "DATASET_INFO": [{"name": "UCI digits", "doi": "10.24432/C50P49", "image_modality": "photography"}]}


@pytest.fixture(scope="module")
def digits3d_small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digits3d_bmz")
    assert load_script("make_example_data").main([str(out), "--3d", "--limit", "12"]) == 0
    return out


def run(run_biapy, tmp_path: Path, name: str, cfg: dict) -> str:
    code, out, err = run_biapy("--config", write_yaml(tmp_path / f"{name}.yaml", cfg), "--result_dir", tmp_path,
                               "--name", name)
    assert code == 0, err
    return out


def predictions(tmp_path: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(tmp_path / name / "results" / f"{name}_1" / "predictions.csv")


def core_test(zip_path: Path) -> dict[str, str]:
    """bioimageio.core's model test of the zip, one weights format at a time: format -> status."""
    from bioimageio.core import test_model
    from bioimageio.spec import load_model_description

    from biapy_cls.export.offline import allow_offline, github_users

    allow_offline(github_users(zip_path))  # this machine has no network; bioimageio.spec looks users up online
    descr = load_model_description(zip_path)
    formats = [f for f in ("pytorch_state_dict", "torchscript", "onnx") if getattr(descr.weights, f) is not None]
    return {f: test_model(zip_path, weight_format=f).status for f in formats}


def export_and_reload(tmp_path, run_biapy, data: Path, ndim: str, patch: str, epochs: int) -> tuple[Path, dict]:
    cfg = digits_config(data, PROBLEM={"TYPE": "CLASSIFICATION", "NDIM": ndim},
                        TRAIN={"ENABLE": True, "EPOCHS": epochs, "BATCH_SIZE": 16, "LR": 3e-3, "PATIENCE": -1})
    cfg["DATA"]["PATCH_SIZE"] = patch
    cfg["DATA"]["NORMALIZATION"] = {"TYPE": "zero_mean_unit_variance"}  # per image: a BMZ preprocessing op
    cfg["MODEL"]["BMZ"] = {"EXPORT": EXPORT}
    out = run(run_biapy, tmp_path, "trained", cfg)
    zip_path = tmp_path / "trained" / "bmz" / "Digits_classifier.zip"
    assert f"BioImage Model Zoo package: {zip_path}" in out
    statuses = core_test(zip_path)

    reload = digits_config(data, PROBLEM={"TYPE": "CLASSIFICATION", "NDIM": ndim}, TRAIN={"ENABLE": False},
                           MODEL={"SOURCE": "bmz", "BMZ": {"SOURCE_MODEL_ID": str(zip_path)}})
    del reload["DATA"]["PATCH_SIZE"], reload["DATA"]["NORMALIZATION"]  # both come from the package
    run(run_biapy, tmp_path, "reloaded", reload)
    before, after = predictions(tmp_path, "trained"), predictions(tmp_path, "reloaded")
    assert list(before["filename"]) == list(after["filename"])
    assert (before["class"] == after["class"]).all()
    probs = [c for c in before.columns if c.startswith("prob_")]
    assert np.abs(before[probs].to_numpy() - after[probs].to_numpy()).max() <= 1e-5 + 1e-6  # csv has 6 decimals
    return zip_path, statuses


def test_2d_export_passes_bioimageio_core_and_reloads_with_same_predictions(tmp_path, small_digits_dir, run_biapy):
    zip_path, statuses = export_and_reload(tmp_path, run_biapy, small_digits_dir, "2D", "(32, 32, 1)", epochs=3)
    assert statuses == {"pytorch_state_dict": "passed", "torchscript": "passed", "onnx": "passed"}
    metrics = tmp_path / "trained" / "results" / "trained_1" / "test_metrics.json"
    accuracy = json.loads(metrics.read_text())["accuracy"]
    assert accuracy >= 0.5  # a trained model, so "same classes" compares varied predictions, not one constant class

    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        readme = z.read("README.md").decode()
    assert {"rdf.yaml", "weights.pt", "model.py", "weights_torchscript.pt", "weights.onnx", "test_input.npy",
            "test_output.npy", "cover.png", "README.md"} <= names
    assert rdf["format_version"].startswith("0.5") and rdf["type"] == "model"
    assert [a.get("id", a["type"]) for a in rdf["inputs"][0]["axes"]] == ["batch", "channel", "y", "x"]
    assert [a.get("size") for a in rdf["inputs"][0]["axes"][2:]] == [32, 32]
    assert rdf["outputs"][0]["axes"][1]["channel_names"][:2] == ["0_zero", "1_one"]
    assert [op["id"] for op in rdf["inputs"][0]["preprocessing"]][:2] == ["ensure_dtype", "zero_mean_unit_variance"]
    assert {"digits", "2d", "pytorch", "classification"} <= set(rdf["tags"])
    assert rdf["authors"][0]["github_user"] == "janedoe"
    assert f"{accuracy:.4f}" in readme and "0_zero" in readme


def test_3d_export_passes_bioimageio_core_and_reloads_with_same_predictions(tmp_path, digits3d_small, run_biapy):
    zip_path, statuses = export_and_reload(tmp_path, run_biapy, digits3d_small, "3D", "(16, 32, 32, 1)", epochs=2)
    assert statuses == {"pytorch_state_dict": "passed", "torchscript": "passed", "onnx": "passed"}
    with zipfile.ZipFile(zip_path) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
    assert [a.get("id", a["type"]) for a in rdf["inputs"][0]["axes"]] == ["batch", "channel", "z", "y", "x"]


def test_exported_model_py_rebuilds_without_biapy_cls(tmp_path, small_digits_dir, run_biapy):
    """The pytorch_state_dict weights load through bioimageio.core in a Python where biapy_cls cannot be imported."""
    cfg = digits_config(small_digits_dir, TRAIN={"ENABLE": True, "EPOCHS": 1, "BATCH_SIZE": 32, "PATIENCE": -1},
                        TEST={"ENABLE": False}, MODEL={"ARCHITECTURE": "simple_cnn", "BMZ": {"EXPORT": EXPORT}})
    run(run_biapy, tmp_path, "job", cfg)
    zip_path = tmp_path / "job" / "bmz" / "Digits_classifier.zip"
    script = f"""
import sys
sys.modules["biapy_cls"] = None  # any import of biapy_cls now fails
import numpy as np, torch
from bioimageio.spec._internal import field_validation
field_validation.KNOWN_GITHUB_USERS.add("janedoe")  # offline machine
from bioimageio.spec import load_model_description
from bioimageio.core.backends.pytorch_backend import load_torch_model
descr = load_model_description({str(zip_path)!r})
model = load_torch_model(descr.weights.pytorch_state_dict, devices=["cpu"]).eval()
assert type(model).__module__ != "biapy_cls.export.architecture"
print(type(model).__name__, sum(p.numel() for p in model.parameters()))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("BiapyClsClassifier ")


def test_fine_tune_a_bmz_package_on_another_class_count(tmp_path, small_digits_dir, run_biapy):
    cfg = digits_config(small_digits_dir, TRAIN={"ENABLE": True, "EPOCHS": 2, "BATCH_SIZE": 32, "PATIENCE": -1},
                        TEST={"ENABLE": False}, MODEL={"ARCHITECTURE": "simple_cnn", "BMZ": {"EXPORT": EXPORT}})
    run(run_biapy, tmp_path, "ten", cfg)
    three = tmp_path / "three"
    for split in ("train", "test"):
        for name in ("0_zero", "1_one", "2_two"):
            (three / split).mkdir(parents=True, exist_ok=True)
            (three / split / name).symlink_to(small_digits_dir / split / name)
    package = tmp_path / "ten" / "bmz" / "Digits_classifier.zip"
    tune = digits_config(three, TRAIN={"ENABLE": True, "EPOCHS": 3, "BATCH_SIZE": 16, "LR": 3e-3, "PATIENCE": -1},
                         MODEL={"SOURCE": "bmz", "BMZ": {"SOURCE_MODEL_ID": str(package),
                                                         "EXPORT": {"ENABLE": True, "REUSE_BMZ_CONFIG": True}}})
    del tune["DATA"]["PATCH_SIZE"], tune["DATA"]["NORMALIZATION"]  # both come from the package
    out = run(run_biapy, tmp_path, "tuned", tune)
    assert "10 -> 3 classes" in out
    metrics = json.loads((tmp_path / "tuned" / "results" / "tuned_1" / "test_metrics.json").read_text())
    assert metrics["accuracy"] >= 0.6  # 3 classes: chance is 0.33

    # Its checkpoint is self-contained: a test-only run rebuilds the package's network and predicts the same.
    again = {**tune, "TRAIN": {"ENABLE": False}, "PATHS": {"CHECKPOINT_FILE": str(
        tmp_path / "tuned" / "checkpoints" / "tuned_1-checkpoint-best.pth")}}
    again["MODEL"] = {"SOURCE": "bmz", "BMZ": {"SOURCE_MODEL_ID": str(package)}}
    run(run_biapy, tmp_path, "retest", again)
    assert predictions(tmp_path, "retest").equals(predictions(tmp_path, "tuned"))

    # The fine-tuned model exported again, with the loaded package's name, authors, ...: a valid package.
    tuned = tmp_path / "tuned" / "bmz" / "Digits_classifier.zip"
    assert core_test(tuned) == {"torchscript": "passed", "onnx": "passed"}
    with zipfile.ZipFile(tuned) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["0_zero", "1_one", "2_two"]
    assert rdf["authors"][0]["github_user"] == "janedoe"
