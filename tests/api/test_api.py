"""The Python API (BiaPy's names): the same run as the CLI, results as objects, in-memory prediction equal
to a test run on the same images as files, and the CLI's errors raised as exceptions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from PIL import Image

from conftest import digits_config, write_yaml


def tree(root):
    """Every file under `root`, relative, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def names(root) -> list[str]:
    """The output tree's file names; TensorBoard's event files are named after the time and host."""
    return sorted(name.rsplit("/", 1)[0] + "/events" if "/tensorboard/" in name else name for name in tree(root))


def test_import_is_light_and_gives_biapys_names():
    code = ("import sys, biapy_cls\nfrom biapy_cls import build_config\nassert 'torch' not in sys.modules\n"
            "from biapy_cls import BiaPy\nprint(BiaPy.__name__, callable(BiaPy.load_workflow_from_model))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["BiaPy", "True"]


def test_build_config_maps_biapys_arguments():
    from biapy_cls import build_config
    from biapy_cls.errors import ConfigError

    cfg = build_config("classification", "3d", phase="test", patch_size=(8, 16, 16, 1), model={"architecture": "vit"},
                       test_data={"path": "t", "load_gt": True},
                       extra_config={"TRAIN.EPOCHS": 3, "DATA": {"N_CLASSES": 2}})
    assert cfg == {"PROBLEM": {"TYPE": "CLASSIFICATION", "NDIM": "3D"}, "TRAIN": {"ENABLE": False, "EPOCHS": 3},
                   "TEST": {"ENABLE": True}, "MODEL": {"ARCHITECTURE": "vit"},
                   "DATA": {"PATCH_SIZE": (8, 16, 16, 1), "TEST": {"PATH": "t", "LOAD_GT": True}, "N_CLASSES": 2}}
    with pytest.raises(ConfigError, match="CLASSIFICATION only"):
        build_config("SEMANTIC_SEG", "2D")
    with pytest.raises(ConfigError, match="phase"):
        build_config("CLASSIFICATION", "2D", phase="predict")


# ------------------------------------------------------------------------------ one trained job, shared
@pytest.fixture(scope="module")
def api_job(tmp_path_factory, digits_dir):
    """The digits trained through the API from a YAML file (3 epochs), and the same YAML for the CLI."""
    from biapy_cls import BiaPy

    root = tmp_path_factory.mktemp("api_job")
    cfg = digits_config(digits_dir, TRAIN={"ENABLE": True, "EPOCHS": 3, "BATCH_SIZE": 32, "LR": 3e-3, "PATIENCE": -1})
    config = write_yaml(root / "digits.yaml", cfg)
    biapy = BiaPy(str(config), result_dir=str(root / "api"), name="job", run_id=1)
    history = biapy.train()
    results = biapy.test()
    biapy.close()
    return {"root": root, "config": config, "biapy": biapy, "history": history, "results": results,
            "job": root / "api" / "job"}


@pytest.mark.slow
def test_api_run_equals_cli_run(api_job, run_biapy):
    code, _, err = run_biapy("--config", api_job["config"], "--result_dir", api_job["root"] / "cli", "--name", "job")
    assert code == 0, err
    api, cli = tree(api_job["job"]), tree(api_job["root"] / "cli" / "job")
    assert names(api_job["job"]) == names(api_job["root"] / "cli" / "job")  # the same output tree
    run = "results/job_1"
    assert api[f"{run}/predictions.csv"] == cli[f"{run}/predictions.csv"]  # identical predictions, same seed
    assert api[f"{run}/test_metrics.json"] == cli[f"{run}/test_metrics.json"]
    assert api["logs/job_1_training_log.json"].count(b"\n") == 3


@pytest.mark.slow
def test_train_and_test_return_what_the_files_hold(api_job):
    history, results, job = api_job["history"], api_job["results"], api_job["job"]
    assert [row["epoch"] for row in history.history] == [1, 2, 3]
    frame = history.to_frame()
    assert list(frame.index) == [1, 2, 3] and {"train_loss", "val_loss", "val_accuracy", "lr"} <= set(frame.columns)
    assert history.monitor == "val_loss"
    assert history.best_value == pytest.approx(frame["val_loss"].min())
    assert history.best_epoch == int(frame["val_loss"].idxmin())
    assert history.best_checkpoint == job / "checkpoints" / "job_1-checkpoint-best.pth"
    assert history.plot().data.startswith(b"\x89PNG")

    csv = pd.read_csv(job / "results" / "job_1" / "predictions.csv")
    assert results.accuracy >= 0.85  # the digits are learnt
    assert list(results.predictions.columns) == list(csv.columns)
    assert (results.predictions["filename"] == csv["filename"]).all()
    assert (results.predictions["class"] == csv["class"]).all()
    probs = [c for c in csv.columns if c.startswith("prob_")]
    np.testing.assert_allclose(results.predictions[probs].to_numpy(), csv[probs].to_numpy(), atol=1e-6)
    assert results.accuracy == pytest.approx((csv["class"] == csv["true_class"]).mean())
    cm = results.confusion_matrix
    assert list(cm.index) == results.class_names
    assert np.trace(cm.to_numpy()) == (csv["class"] == csv["true_class"]).sum()
    assert results.per_class.loc["3_three", "support"] == (csv["true_class_name"] == "3_three").sum()
    assert len(results.misclassified()) == (csv["class"] != csv["true_class"]).sum()
    assert results.plot_confusion_matrix().data.startswith(b"\x89PNG")


def _variants(test_dir):
    """Test digits turned into arrays of other dtypes, sizes and layouts, as a user might hold them."""
    files = sorted(test_dir.rglob("*.png"))[::37][:8]
    arrays = []
    for i, path in enumerate(files):
        image = np.asarray(Image.open(path))
        kind = i % 4
        if kind == 1:
            image = np.kron(image.astype(np.uint16) * 257, np.ones((2, 2), np.uint16))  # uint16, 64x64: resized
        elif kind == 2:
            image = (image[2:30, 1:31, None] / 255.0).astype(np.float32)  # float (y, x, 1), 28x30
        elif kind == 3:
            image = image.astype(np.int32)[..., None]  # int32, any integer type
        arrays.append(image)
    return arrays


def _save(arrays, folder):
    """Each array as a file the tool reads, in the same order as the names sort."""
    folder.mkdir(parents=True)
    for i, image in enumerate(arrays):
        path = folder / f"img_{i:02d}.{_ext(image)}"
        if path.suffix == ".png":
            Image.fromarray(image).save(path)
        elif path.suffix == ".tif":
            tifffile.imwrite(path, image)
        else:
            np.save(path, image)


@pytest.mark.slow
def test_predict_on_arrays_equals_predictions_csv_of_the_same_images_as_files(api_job, tmp_path):
    from biapy_cls import BiaPy

    arrays = _variants(_test_dir(api_job))
    _save(arrays, tmp_path / "new_images")
    best = api_job["history"].best_checkpoint
    model = BiaPy.load_workflow_from_model(str(best), result_dir=str(tmp_path / "out"), name="pred")
    model.update_config({"DATA.TEST.PATH": str(tmp_path / "new_images"), "TEST.AUGMENTATION": True})
    before = tree(tmp_path)
    predicted = model.predict(arrays)
    assert tree(tmp_path) == before  # predict writes nothing
    result = model.test()
    csv = pd.read_csv(tmp_path / "out" / "pred" / "results" / "pred_1" / "predictions.csv")
    assert list(csv["filename"]) == [f"img_{i:02d}.{ext}" for i, ext in enumerate(_exts(arrays))]
    probs = csv[[c for c in csv.columns if c.startswith("prob_")]].to_numpy()
    np.testing.assert_allclose(predicted.probabilities, probs, atol=2e-6)
    assert list(predicted.class_index) == list(csv["class"])
    assert predicted.class_name == list(csv["class_name"]) and predicted.classes == result.class_names
    one = model.predict(arrays[1])  # one image, not a batch
    assert len(one) == 1 and one.class_name[0] == csv["class_name"][1]
    np.testing.assert_allclose(one.probabilities[0], probs[1], atol=2e-6)
    batch = model.predict(np.stack([a for a in arrays if a.shape == (32, 32)]))  # (n, y, x): a batch
    assert len(batch) == sum(a.shape == (32, 32) for a in arrays)
    assert list(model.predict(arrays).to_frame().columns) == list(csv.columns[1:])


def _test_dir(api_job) -> Path:
    return Path(yaml.safe_load(api_job["config"].read_text())["DATA"]["TEST"]["PATH"])


def _ext(image: np.ndarray) -> str:
    if image.dtype == np.uint8 and image.ndim == 2:
        return "png"
    return "tif" if image.dtype in (np.uint8, np.uint16) else "npy"


def _exts(arrays):
    return [_ext(a) for a in arrays]


@pytest.mark.slow
def test_predict_3d_volumes_equals_predictions_csv(tmp_path):
    """3D: volumes of other sizes and dtypes, TTA on, against a test run on the same volumes as files."""
    from biapy_cls import BiaPy, build_config

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for k, name in enumerate(("blob", "bar")):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(n):
                volume = rng.integers(0, 60, (8, 16, 16), dtype=np.uint8)
                volume[2:6, 4:12, 4:12] += 150 if k == 0 else 0
                volume[:, 7:9, :] += 0 if k == 0 else 150
                tifffile.imwrite(tmp_path / split / name / f"v{i}.tif", volume)
    cfg = build_config("CLASSIFICATION", "3D", patch_size=(8, 16, 16, 1), model={"architecture": "simple_cnn"},
                       train_data={"path": str(tmp_path / "train")}, test_data={"path": str(tmp_path / "test"),
                                                                                "load_gt": True},
                       extra_config={"TRAIN": {"EPOCHS": 1, "BATCH_SIZE": 8}, "TEST": {"AUGMENTATION": True}})
    biapy = BiaPy(cfg, result_dir=str(tmp_path / "out"), name="vol")
    biapy.train()
    volumes = [np.asarray(tifffile.imread(p)) for p in sorted((tmp_path / "test" / "bar").glob("*.tif"))]
    volumes[1] = np.repeat(volumes[1], 2, axis=0).astype(np.uint16) * 257  # (16, 16, 16) uint16: resized
    volumes[2] = (volumes[2] / 255.0).astype(np.float64)[..., None]  # float64 (z, y, x, 1)
    _save(volumes, tmp_path / "as_files")
    predicted = biapy.predict(volumes)
    biapy.update_config({"DATA.TEST.PATH": str(tmp_path / "as_files"), "DATA.TEST.LOAD_GT": False})
    biapy.test()
    csv = pd.read_csv(tmp_path / "out" / "vol" / "results" / "vol_1" / "predictions.csv")
    np.testing.assert_allclose(predicted.probabilities, csv[["prob_bar", "prob_blob"]].to_numpy(), atol=2e-6)


# ------------------------------------------------------------------------------ errors, as exceptions
def _flat(text: str) -> str:
    return " ".join(text.split())


def test_errors_are_the_clis_messages_as_exceptions(tmp_path, run_biapy):
    from biapy_cls import BiaPy
    from biapy_cls.errors import ConfigError, DataError, UserError

    typo = write_yaml(tmp_path / "typo.yaml", {"TRAIN": {"ENABLE": True, "EPOCS": 3}})
    missing = write_yaml(tmp_path / "missing.yaml", digits_config(tmp_path / "nowhere"))
    for config, error in ((typo, ConfigError), (missing, DataError)):
        code, _, err = run_biapy("--config", config, "--result_dir", tmp_path / "cli")
        with pytest.raises(error) as raised:
            BiaPy(str(config), result_dir=str(tmp_path / "api"))
        assert code == 2 and _flat(str(raised.value)) in _flat(err)
    assert not (tmp_path / "api").exists()  # nothing written
    with pytest.raises(ConfigError, match="Did you mean TRAIN.EPOCHS"):
        BiaPy({"TRAIN.EPOCS": 3})
    with pytest.raises(UserError, match="config must be"):
        BiaPy(42)


def test_update_config_checks_like_construction(tmp_path, small_digits_dir):
    from biapy_cls import BiaPy
    from biapy_cls.errors import ConfigError, DataError, UserError

    biapy = BiaPy(digits_config(small_digits_dir))  # no result_dir: nothing may be written
    assert biapy.update_config(TRAIN__EPOCHS=7).TRAIN.EPOCHS == 7
    with pytest.raises(ConfigError, match="SYSTEM"):
        biapy.update_config({"SYSTEM.SEED": 3})
    with pytest.raises(ConfigError, match=r"TRAIN.LR \(in update_config\) must be a number"):
        biapy.update_config({"TRAIN.LR": "fast"})
    with pytest.raises(DataError, match="DATA.TEST.PATH"):
        biapy.update_config({"DATA.TEST.PATH": str(tmp_path / "none")})
    with pytest.raises(UserError, match="result_dir"):
        biapy.train()
    with pytest.raises(UserError, match="needs a trained model"):
        biapy.predict(np.zeros((32, 32), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_finished_run_is_not_replaced_and_resume_is_the_clis(api_job):
    from biapy_cls import BiaPy
    from biapy_cls.errors import RunStateError

    before = tree(api_job["job"])
    again = BiaPy(str(api_job["config"]), result_dir=str(api_job["job"].parent), name="job")
    with pytest.raises(RunStateError, match="Nothing was changed"):
        again.train()
    assert tree(api_job["job"]) == before


def test_export_without_the_exporter_names_the_missing_piece(small_digits_dir, monkeypatch):
    from biapy_cls import BiaPy
    from biapy_cls.errors import UserError

    monkeypatch.setitem(sys.modules, "biapy_cls.export", None)  # as if the package had no exporter
    with pytest.raises(UserError, match="biapy_cls.export"):
        BiaPy(digits_config(small_digits_dir)).export_model_to_bmz("bmz", {"description": "x"})


def test_predict_input_rules():
    from biapy_cls.api_predict import split_images
    from biapy_cls.errors import DataError

    assert [a.shape for a in split_images(np.zeros((5, 32, 32)), "2D", 1)[0]] == [(32, 32)] * 5
    assert split_images(np.zeros((32, 32, 1)), "2D", 1)[1] is True
    assert split_images(np.zeros((32, 32, 3)), "2D", 3)[1] is True
    assert split_images(np.zeros((32, 32, 4)), "2D", 3)[1] is True  # RGBA: one image
    assert len(split_images(np.zeros((2, 32, 32, 3)), "2D", 3)[0]) == 2
    assert len(split_images([np.zeros((8, 8)), np.zeros((9, 9))], "2D", 1)[0]) == 2
    assert split_images(np.zeros((8, 16, 16)), "3D", 1)[1] is True
    assert len(split_images(np.zeros((3, 8, 16, 16)), "3D", 1)[0]) == 3
    with pytest.raises(DataError, match="shape"):
        split_images(np.zeros(5), "2D", 1)


@pytest.mark.slow
def test_export_model_to_bmz_passes_biapys_bmz_cfg_to_the_exporter(api_job, tmp_path, monkeypatch):
    """BiaPy's bmz_cfg keys become MODEL.BMZ.EXPORT.* for the exporter; the package lands in building_dir."""
    import types

    from biapy_cls import BiaPy
    from biapy_cls.config.defaults import get_cfg_defaults

    if "BMZ" not in get_cfg_defaults().MODEL:
        pytest.skip("this version has no BioImage Model Zoo exporter (MODEL.BMZ.EXPORT)")
    seen = {}

    def export_run(cfg, paths, plan, model, spec, model_cfg, normalizer):
        seen.update(cfg=cfg, classes=plan.class_names, spec=spec)
        out = paths.job_dir / "bmz" / f"{cfg.MODEL.BMZ.EXPORT.MODEL_NAME}.zip"
        out.parent.mkdir(parents=True)
        out.write_bytes(b"zip")
        return out

    monkeypatch.setitem(sys.modules, "biapy_cls.export.bmz", types.SimpleNamespace(export_run=export_run))
    model = BiaPy.load_workflow_from_model(api_job["history"].best_checkpoint, result_dir=str(tmp_path), name="x")
    bmz_cfg = {"model_name": "digits", "description": "Digits", "authors": [{"name": "Ana", "github_user": "ana"}],
               "license": "MIT", "tags": ["digits"], "data": {"name": "digits"}}
    path = model.export_model_to_bmz(tmp_path / "package", bmz_cfg)
    assert path == tmp_path / "package" / "digits.zip" and path.read_bytes() == b"zip"
    export = seen["cfg"].MODEL.BMZ.EXPORT
    assert (export.MODEL_NAME, export.LICENSE, list(export.TAGS)) == ("digits", "MIT", ["digits"])
    assert seen["classes"][3] == "3_three" and seen["spec"].n_classes == 10
