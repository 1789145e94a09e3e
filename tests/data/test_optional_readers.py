"""An optional reader that is not installed is reported before any output is written."""

from __future__ import annotations

import importlib.util

import numpy as np

from conftest import write_yaml


def test_nifti_without_nibabel_fails_before_writing(run_biapy, tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / "train" / name).mkdir(parents=True)
        np.save(tmp_path / "train" / name / "v.npy", np.zeros((4, 8, 8), np.uint8))
    (tmp_path / "train" / "b" / "w.nii.gz").write_bytes(b"not read: the check comes first")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nibabel" else real(name, *a))
    cfg = {"PROBLEM": {"NDIM": "3D"},
           "DATA": {"PATCH_SIZE": "(4, 8, 8, 1)", "TRAIN": {"PATH": str(tmp_path / "train")}},
           "TRAIN": {"ENABLE": True, "EPOCHS": 1}, "TEST": {"ENABLE": False}}
    code, out, err = run_biapy("--config", write_yaml(tmp_path / "c.yaml", cfg), "--result_dir", tmp_path / "out",
                               "--name", "job")
    message = " ".join(err.split())
    assert code == 2 and "Traceback" not in err
    assert "w.nii.gz" in message and "pip install 'biapy-cls[nifti]'" in message
    assert not (tmp_path / "out").exists()
