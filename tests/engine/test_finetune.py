"""TRAIN.BACKBONE_LR_SCALE and TRAIN.FREEZE_BACKBONE_EPOCHS: what trains, at which learning rate, when."""

from __future__ import annotations

import pytest
import torch

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.engine.finetune import BackboneFreezer, backbone_parameters, head_prefixes
from biapy_cls.engine.optim import LRSchedule, build_optimizer
from biapy_cls.engine.runtime import seed_everything
from biapy_cls.models import ModelSpec, build_model
from conftest import digits_config, write_yaml


def cfg_with(**train):
    cfg = get_cfg_defaults()
    for key, value in train.items():
        cfg.TRAIN[key] = value
    return cfg


def resnet():
    cfg = get_cfg_defaults().MODEL
    cfg.defrost()
    cfg.SOURCE, cfg.TORCHVISION_MODEL_NAME, cfg.TORCHVISION_PRETRAINED = "torchvision", "resnet18", False
    return build_model(ModelSpec("resnet18", "2D", 1, 4, (32, 32), "torchvision"), cfg)


def test_backbone_learning_rate_is_scaled_and_heads_are_found():
    model = resnet()
    assert head_prefixes(model) == ("fc",)
    optimizer = build_optimizer(cfg_with(LR=1e-3, BACKBONE_LR_SCALE=0.1), model)
    head = {id(p) for p in model.fc.parameters()}
    for group in optimizer.param_groups:
        in_head = {id(p) for p in group["params"]} <= head
        assert group["lr"] == pytest.approx(1e-3 if in_head else 1e-4)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    # onecycle peaks each group at its own learning rate
    cycle = cfg_with(LR=1e-3, BACKBONE_LR_SCALE=0.1, EPOCHS=2)
    cycle.TRAIN.LR_SCHEDULER.NAME = "onecycle"
    schedule = LRSchedule(cycle, build_optimizer(cycle, model), 10)
    assert [g["max_lr"] for g in schedule.optimizer.param_groups][-1] == pytest.approx(1e-4)
    # this package's models name their head too
    simple = build_model(ModelSpec("simple_cnn", "2D", 1, 4, (32, 32)), get_cfg_defaults().MODEL)
    assert head_prefixes(simple) == ("head",)


def test_frozen_backbone_does_not_move_until_its_epoch():
    model = resnet()
    freezer = BackboneFreezer(model, epochs=1)
    optimizer = build_optimizer(cfg_with(LR=1e-2), model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(torch.randn(4, 1, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
        optimizer.step()

    freezer(0)
    step()
    assert torch.equal(model.conv1.weight, before["conv1.weight"])
    assert not torch.equal(model.fc.weight, before["fc.weight"])
    freezer(1)
    step()
    assert not torch.equal(model.conv1.weight, before["conv1.weight"])
    assert all(p.requires_grad for p in backbone_parameters(model))


@pytest.mark.slow
def test_freeze_epochs_and_fixed_backbone_from_the_cli(tmp_path, small_digits_dir, run_biapy):
    cfg = digits_config(small_digits_dir, TRAIN={"ENABLE": True, "EPOCHS": 2, "BATCH_SIZE": 32, "LR": 3e-3,
                                                 "PATIENCE": -1, "FREEZE_BACKBONE_EPOCHS": 1}, TEST={"ENABLE": False})
    code, out, err = run_biapy("--config", write_yaml(tmp_path / "a.yaml", cfg), "--result_dir", tmp_path,
                               "--name", "f")
    assert code == 0, err
    assert "Fine-tuning: only the head trains for the first 1 epoch(s), then everything." in out
    assert "Epoch 2: the backbone trains too from now on" in out
    cfg["TRAIN"].update({"FREEZE_BACKBONE_EPOCHS": 0, "BACKBONE_LR_SCALE": 0.0, "EPOCHS": 1})
    code, out, err = run_biapy("--config", write_yaml(tmp_path / "b.yaml", cfg), "--result_dir", tmp_path,
                               "--name", "g")
    assert code == 0, err
    assert "the backbone stays fixed (TRAIN.BACKBONE_LR_SCALE 0)" in out
    fixed = torch.load(tmp_path / "g" / "checkpoints" / "g_1-checkpoint-last.pth", weights_only=True)["model_state"]
    seed_everything(0)  # SYSTEM.SEED: the run's initial weights
    start = build_model(ModelSpec("simple_cnn", "2D", 1, 10, (32, 32)), get_cfg_defaults().MODEL).state_dict()
    backbone = [k for k in start if not k.startswith("head.") and start[k].is_floating_point()]
    assert all(torch.equal(fixed[k], start[k]) for k in backbone if "running" not in k and "num_batches" not in k)
    assert not torch.equal(fixed["head.weight"], start["head.weight"])
