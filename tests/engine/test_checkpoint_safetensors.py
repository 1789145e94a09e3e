"""MODEL.OUT_CHECKPOINT_FORMAT safetensors: the whole checkpoint reads back exactly (optimizer state with
integer keys, RNG states, tuples), and such a checkpoint is accepted wherever a .pth one is."""

from __future__ import annotations

import pytest
import torch

from biapy_cls.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint
from biapy_cls.errors import CheckpointError
from conftest import digits_config, write_yaml


def assert_same(a, b):
    """Equal values of the same types (a state dict's OrderedDict reads back as a plain dict: the same to torch)."""
    assert type(a) is type(b) or isinstance(a, dict) and isinstance(b, dict), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def test_safetensors_checkpoint_reads_back_like_pth(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    model[0].weight.data = model[0].weight.data.t().contiguous().t()  # a non-contiguous parameter
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    state = {"model_state": model.state_dict(), "class_names": ["a", "b", "c"], "spatial": (32, 32),
             "training": {"optimizer": opt.state_dict(), "rng": rng_state(), "best": None, "epoch": 3,
                          "history": [{"loss": 0.5, "lr": 1e-3}], "inf": float("inf")}}
    save_checkpoint(tmp_path / "c.pth", state)
    save_checkpoint(tmp_path / "c.safetensors", state)
    assert_same(load_checkpoint(tmp_path / "c.safetensors"), load_checkpoint(tmp_path / "c.pth"))


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "weights.safetensors")


@pytest.mark.slow
def test_training_writes_safetensors_checkpoints_that_test_only_runs_load(tmp_path, small_digits_dir, run_biapy):
    cfg = digits_config(small_digits_dir, TRAIN={"ENABLE": True, "EPOCHS": 1, "BATCH_SIZE": 32, "PATIENCE": -1})
    cfg["MODEL"]["OUT_CHECKPOINT_FORMAT"] = "safetensors"
    code, _, err = run_biapy("--config", write_yaml(tmp_path / "a.yaml", cfg), "--result_dir", tmp_path, "--name", "st")
    assert code == 0, err
    best = tmp_path / "st" / "checkpoints" / "st_1-checkpoint-best.safetensors"
    assert best.exists() and not list((tmp_path / "st" / "checkpoints").glob("*.pth"))
    cfg["TRAIN"]["ENABLE"] = False
    cfg["PATHS"] = {"CHECKPOINT_FILE": str(best)}
    code, _, err = run_biapy("--config", write_yaml(tmp_path / "b.yaml", cfg), "--result_dir", tmp_path, "--name", "t")
    assert code == 0, err
    first = (tmp_path / "st" / "results" / "st_1" / "predictions.csv").read_text()
    assert (tmp_path / "t" / "results" / "t_1" / "predictions.csv").read_text() == first
