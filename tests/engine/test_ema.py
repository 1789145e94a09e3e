"""MODEL.EMA (engine/ema.py): the closed form on a toy parameter sequence, buffers, state round trip, and
in training: both weights validated, the better checkpointed, exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from biapy_cls.engine.ema import ModelEma
from conftest import digits_config, interrupt_at_epoch, write_yaml


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("stat", torch.zeros(3))


@pytest.mark.parametrize("warmup", [0, 4])
def test_ema_equals_its_closed_form(warmup):
    model, decay = Toy(), 0.9
    ema = ModelEma(model, decay, warmup)
    expected = torch.zeros(3)
    for t in range(1, 11):
        with torch.no_grad():
            model.w.copy_(torch.tensor([t, t**2, -t], dtype=torch.float32))
            model.stat.fill_(t)
            model.count += 1
        ema.update(model)
        d = decay * min(1.0, (t - 1) / warmup) if warmup else decay
        expected = d * expected + (1 - d) * model.w.detach()
        assert torch.allclose(ema.module.w, expected, atol=1e-5), t
    # the warm-up's first update copies the weights; buffers are copied, never averaged
    assert ema.updates == 10 and ema.module.count.item() == 10 and torch.equal(ema.module.stat, model.stat)
    assert not ema.module.w.requires_grad and not ema.module.training
    closed = sum((1 - decay) * decay ** (10 - t) * torch.tensor([t, t**2, -t], dtype=torch.float32)
                 for t in range(1, 11))
    if warmup == 0:  # from zeros: ema_T = sum_t (1 - d) d^(T - t) p_t
        assert torch.allclose(ema.module.w, closed, atol=1e-4)


def test_state_dict_round_trip_continues_identically():
    model = Toy()
    a = ModelEma(model, 0.8, 3)
    for t in range(4):
        model.w.data += t
        a.update(model)
    b = ModelEma(Toy(), 0.8, 3)
    b.load_state_dict(a.state_dict())
    for t in range(3):
        model.w.data *= 1.5
        a.update(model)
        b.update(model)
    assert torch.equal(a.module.w, b.module.w) and a.updates == b.updates == 7


def ema_config(tmp_path, data):
    cfg = digits_config(data, TRAIN={"EPOCHS": 3, "BATCH_SIZE": 32, "LR": 3e-3, "PATIENCE": -1, "OPTIMIZER": "ADAMW"},
                        AUGMENTOR={"ENABLE": True, "MIXUP": 0.2, "CUTMIX_ALPHA": 1.0, "CUTMIX": True},
                        MODEL={"ARCHITECTURE": "simple_cnn", "EMA": {"ENABLE": True, "DECAY": 0.9, "WARMUP": 5}})
    cfg["DATA"]["PATCH_SIZE"] = "(16, 16, 1)"
    return write_yaml(tmp_path / "ema.yaml", cfg)


@pytest.mark.slow
def test_training_with_ema_and_mixing_resumes_exactly(tmp_path, small_digits_dir, run_biapy, monkeypatch):
    config = ema_config(tmp_path, small_digits_dir)
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "a")
    assert code == 0, err
    assert "Weight EMA: decay 0.9" in out and "dominant label" in out
    rows = [json.loads(line) for line in (tmp_path / "a" / "logs" / "a_1_training_log.json").read_text().splitlines()]
    assert all({"val_loss", "val-ema_loss", "val-ema_accuracy"} <= set(row) for row in rows)
    best = torch.load(tmp_path / "a" / "checkpoints" / "a_1-checkpoint-best.pth", weights_only=True)
    assert best["weights"] in ("ema", "raw") and best["training"]["ema"]["updates"] > 0
    assert f"The best checkpoint holds the {'EMA' if best['weights'] == 'ema' else 'raw'} weights" in out

    resume_normally = interrupt_at_epoch(monkeypatch, 2)
    code, _, _ = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "c")
    assert code == 130
    resume_normally()
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "c", "--resume")
    assert code == 0, err
    last = {n: torch.load(tmp_path / n / "checkpoints" / f"{n}_1-checkpoint-last.pth", weights_only=True)
            for n in ("a", "c")}
    for key, value in last["a"]["model_state"].items():
        assert torch.equal(value, last["c"]["model_state"][key]), key
    for key, value in last["a"]["training"]["ema"]["model_state"].items():
        assert torch.equal(value, last["c"]["training"]["ema"]["model_state"][key]), key
    assert (tmp_path / "a" / "results" / "a_1" / "predictions.csv").read_bytes() == \
        (tmp_path / "c" / "results" / "c_1" / "predictions.csv").read_bytes()
