"""The training engine piece by piece: optimizers, LR schedules, loss weights, checkpoints, runtime."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.config.settings import TrainSettings
from biapy_cls.configure import load_config
from biapy_cls.data.plan import check_against_data
from biapy_cls.engine.checkpoint import copy_checkpoint, load_checkpoint, save_checkpoint
from biapy_cls.engine.hooks import EarlyStopping
from biapy_cls.engine.losses import build_criterion
from biapy_cls.engine.optim import LRSchedule, build_optimizer
from biapy_cls.engine.runtime import Runtime, amp_dtype, set_threads
from biapy_cls.errors import ConfigError
from conftest import digits_config, write_yaml

LR, MIN_LR = 1e-2, 1e-4


def schedule_cfg(name: str, epochs: int = 5, **keys):
    cfg = get_cfg_defaults()
    cfg.TRAIN.LR, cfg.TRAIN.EPOCHS = LR, epochs
    cfg.TRAIN.LR_SCHEDULER.NAME = name
    for key, value in keys.items():
        cfg.TRAIN.LR_SCHEDULER[key] = value
    return cfg


def schedule_for(cfg, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> LRSchedule:
    return LRSchedule(TrainSettings.from_cfg(cfg), optimizer, steps_per_epoch)


def lr_per_step(schedule: LRSchedule, steps: int) -> list[float]:
    """The learning rate each optimizer step uses."""
    lrs = []
    for _ in range(steps):
        lrs.append(schedule.lr)
        schedule.optimizer.step()
        schedule.step_batch()
    return lrs


def sgd(lr: float = LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=lr)


def test_warmupcosine_warms_up_per_step_then_decays_to_min_lr():
    steps_per_epoch, epochs, warmup_epochs = 4, 5, 1
    cfg = schedule_cfg("warmupcosine", epochs, MIN_LR=MIN_LR, WARMUP_COSINE_DECAY_EPOCHS=warmup_epochs)
    lrs = lr_per_step(schedule_for(cfg, sgd(), steps_per_epoch), steps_per_epoch * epochs)
    warmup = steps_per_epoch * warmup_epochs
    # Warm-up: a linear rise, one step at a time, from a small LR to TRAIN.LR.
    assert lrs[:warmup] == pytest.approx([LR * (i + 1) / warmup for i in range(warmup)])
    # Then half a cosine from TRAIN.LR down to MIN_LR, which the last step reaches.
    decay = lrs[warmup:]
    expected = [
        MIN_LR + (LR - MIN_LR) * 0.5 * (1 + math.cos(math.pi * i / (len(decay) - 1))) for i in range(len(decay))
    ]
    assert decay == pytest.approx(expected)
    assert decay[0] == pytest.approx(LR) and decay[-1] == pytest.approx(MIN_LR)
    assert all(a > b for a, b in zip(decay, decay[1:]))


def test_onecycle_follows_pytorch_one_cycle_definition():
    steps = 40
    lrs = lr_per_step(schedule_for(schedule_cfg("onecycle", epochs=4), sgd(), 10), steps)
    # OneCycleLR: start at max_lr / 25, peak at TRAIN.LR after 30% of the steps, end at start / 1e4.
    assert lrs[0] == pytest.approx(LR / 25)
    peak = int(np.argmax(lrs))
    assert lrs[peak] == pytest.approx(LR) and peak == pytest.approx(0.3 * steps, abs=1)
    assert lrs[-1] == pytest.approx(LR / 25 / 1e4, rel=0.2)


def test_reduceonplateau_lowers_lr_after_patience_and_stops_at_min_lr():
    cfg = schedule_cfg("reduceonplateau", MIN_LR=LR / 5, REDUCEONPLATEAU_PATIENCE=1, REDUCEONPLATEAU_FACTOR=0.5)
    schedule = schedule_for(cfg, sgd(), 10)
    lrs = []
    for val_loss in [1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]:
        schedule.step_batch()  # no effect per step
        schedule.step_epoch(val_loss)
        lrs.append(schedule.lr)
    # PyTorch's definition: more than `patience` epochs without improvement -> lr * factor, floored at MIN_LR.
    assert lrs == pytest.approx([LR, LR, LR, LR / 2, LR / 2, LR / 4, LR / 4, LR / 5])


def test_constant_schedule_and_resumed_schedule():
    assert set(lr_per_step(schedule_for(schedule_cfg(""), sgd(), 5), 12)) == {LR}
    cfg = schedule_cfg("warmupcosine", MIN_LR=MIN_LR, WARMUP_COSINE_DECAY_EPOCHS=2)
    full = lr_per_step(schedule_for(cfg, sgd(), 4), 20)
    first = schedule_for(cfg, sgd(), 4)
    head = lr_per_step(first, 7)
    state = first.state_dict()
    optimizer = sgd()
    optimizer.load_state_dict(first.optimizer.state_dict())
    resumed = schedule_for(cfg, optimizer, 4)
    resumed.load_state_dict(state)
    assert head + lr_per_step(resumed, 13) == pytest.approx(full)


@pytest.mark.parametrize("keys, message", [
    ({"TRAIN.LR_SCHEDULER.NAME": "warmupcosine", "TRAIN.LR_SCHEDULER.WARMUP_COSINE_DECAY_EPOCHS": 1,
      "TRAIN.LR_SCHEDULER.MIN_LR": 0.01, "TRAIN.LR": 0.001}, "must be lower than TRAIN.LR"),
    ({"TRAIN.LR_SCHEDULER.NAME": "warmupcosine", "TRAIN.LR_SCHEDULER.WARMUP_COSINE_DECAY_EPOCHS": 5,
      "TRAIN.EPOCHS": 3}, "more than TRAIN.EPOCHS"),
    ({"TRAIN.LR_SCHEDULER.NAME": "warmupcosine"}, "set TRAIN.LR_SCHEDULER.WARMUP_COSINE_DECAY_EPOCHS"),
    ({"TRAIN.LR_SCHEDULER.NAME": "reduceonplateau"}, "set TRAIN.LR_SCHEDULER.REDUCEONPLATEAU_PATIENCE"),
    ({"TRAIN.LR_SCHEDULER.NAME": "reduceonplateau", "TRAIN.LR_SCHEDULER.REDUCEONPLATEAU_PATIENCE": 5,
      "TRAIN.PATIENCE": 5}, "must be less than TRAIN.PATIENCE"),
    ({"TRAIN.LR_SCHEDULER.NAME": "cosine"}, "accepted values"),
    ({"LOSS.CLASS_REBALANCE": "manual"}, "LOSS.CLASS_WEIGHTS must list one weight"),
    ({"LOSS.CLASS_WEIGHTS": [1.0, 2.0]}, "Set LOSS.CLASS_REBALANCE: manual"),
    ({"TRAIN.CHECKPOINT_MONITOR": "val_iou"}, "accepted values"),
    ({"TRAIN.METRICS": ["accuracy", "iou"]}, "'iou' not known"),
])
def test_bad_training_settings_are_config_errors(tmp_path, keys, message):
    config = write_yaml(tmp_path / "c.yaml", digits_config(tmp_path))
    overrides = [str(x) for key, value in keys.items() for x in (key, value)]
    with pytest.raises(ConfigError, match=message):
        load_config(config, overrides)


def test_biapy_class_rebalance_switch_is_accepted(tmp_path):
    config = write_yaml(tmp_path / "c.yaml", digits_config(tmp_path, LOSS={"CLASS_REBALANCE": False}))
    cfg, notices = load_config(config)
    assert cfg.LOSS.CLASS_REBALANCE == "none"
    cfg, notices = load_config(config, ["LOSS.CLASS_REBALANCE", "True", "TRAIN.METRICS", "['Accuracy']"])
    assert cfg.LOSS.CLASS_REBALANCE == "auto" and any("'auto'" in n for n in notices)
    assert list(cfg.TRAIN.METRICS) == ["accuracy"]


def test_class_weights_change_the_loss():
    cfg = get_cfg_defaults()
    labels = np.array([0] * 30 + [1] * 10)  # class 1 is three times rarer
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.5], [0.5, -1.0]])
    targets = torch.tensor([0, 1, 1, 0])
    plain = build_criterion(cfg, labels, 2)(logits, targets)
    cfg.LOSS.CLASS_REBALANCE = "auto"
    auto = build_criterion(cfg, labels, 2)
    assert auto.weight.tolist() == pytest.approx([40 / (2 * 30), 40 / (2 * 10)])
    per_image = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    w = auto.weight[targets]
    assert auto(logits, targets) == pytest.approx(float((w * per_image).sum() / w.sum()))
    assert abs(float(auto(logits, targets)) - float(plain)) > 1e-3
    assert float(plain) == pytest.approx(float(per_image.mean()))
    cfg.LOSS.CLASS_REBALANCE, cfg.LOSS.CLASS_WEIGHTS = "manual", [1.0, 0.0]  # only class 0 counts
    manual = build_criterion(cfg, labels, 2)
    assert manual(logits, targets) == pytest.approx(float(per_image[targets == 0].mean()))
    cfg.LOSS.CLASS_WEIGHTS = [1.0, 2.0, 3.0]
    with pytest.raises(ConfigError, match=r"3 weights but the training data has 2 classes \(a, b\)"):
        check_against_data(cfg, ["a", "b"], None)


def test_label_smoothing_changes_the_loss():
    cfg = get_cfg_defaults()
    logits, targets = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([0])
    sharp = build_criterion(cfg, np.array([0, 1, 2]), 3)(logits, targets)
    cfg.LOSS.LABEL_SMOOTHING = 0.3
    smooth = build_criterion(cfg, np.array([0, 1, 2]), 3)(logits, targets)
    expected = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.3)
    assert float(smooth) == pytest.approx(float(expected)) and float(smooth) > float(sharp)


def test_optimizers_from_config():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    cfg = get_cfg_defaults()
    cfg.TRAIN.OPTIMIZER, cfg.TRAIN.MOMENTUM, cfg.TRAIN.W_DECAY = "SGD", 0.8, 0.01
    opt = build_optimizer(TrainSettings.from_cfg(cfg), model)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.8 and opt.defaults["nesterov"]
    # no weight decay on biases and norm layers
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    cfg.TRAIN.OPTIMIZER, cfg.TRAIN.OPT_BETAS = "ADAM", (0.8, 0.99)
    opt = build_optimizer(TrainSettings.from_cfg(cfg), model)
    assert type(opt) is torch.optim.Adam and opt.defaults["betas"] == (0.8, 0.99)
    cfg.TRAIN.OPTIMIZER = "ADAMW"
    assert type(build_optimizer(TrainSettings.from_cfg(cfg), model)) is torch.optim.AdamW


def test_early_stopping_on_a_metric_to_maximise():
    stopper = EarlyStopping("val_f1", patience=2)
    improved = [stopper.update(v, e) for e, v in enumerate([0.5, 0.7, 0.6, 0.7], start=1)]
    assert improved == [True, True, False, False] and stopper.should_stop
    assert (stopper.best, stopper.best_epoch) == (0.7, 2)
    never = EarlyStopping("val_loss", patience=-1)
    for epoch in range(10):
        never.update(1.0, epoch)
    assert not never.should_stop


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "run-checkpoint-last.pth"
    save_checkpoint(path, {"epoch": 1, "weights": torch.ones(3)})

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half a checkpoint")  # the disk fills up half-way
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"epoch": 2, "weights": torch.zeros(3)})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    best = tmp_path / "run-checkpoint-best.pth"
    copy_checkpoint(path, best)  # best = last, without writing it twice
    save_checkpoint(path, {"epoch": 3})  # replacing last leaves best as it was
    assert load_checkpoint(best)["epoch"] == 1 and load_checkpoint(path)["epoch"] == 3


def test_runtime_threads_and_precision():
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    cpu = Runtime(torch.device("cpu"))
    assert all(amp_dtype(choice, cpu) is None for choice in ("auto", "bf16", "fp16", "none"))


def test_workers_and_the_summary_line_follow_the_config(monkeypatch):
    from biapy_cls.config.settings import SystemSettings
    from biapy_cls.evaluation.metrics import summary_line

    monkeypatch.setattr("os.cpu_count", lambda: 8)  # workers are capped at the machine's CPU count
    cfg = get_cfg_defaults()
    cfg.SYSTEM.NUM_CPUS, cfg.SYSTEM.NUM_WORKERS = 2, -1
    assert SystemSettings.from_cfg(cfg).num_workers == 2  # automatic: up to 4, within SYSTEM.NUM_CPUS
    cfg.SYSTEM.NUM_WORKERS = 3
    assert SystemSettings.from_cfg(cfg).num_workers == 3
    metrics = {"accuracy": 0.5, "balanced_accuracy": 0.25, "f1_macro": 0.125, "roc_auc_macro": None}
    assert summary_line(metrics, []) == "Test accuracy: 0.5000  balanced accuracy: 0.2500  f1: 0.1250"
    assert summary_line(metrics, ["f1", "roc_auc"]) == "Test f1: 0.1250"


def test_mixed_precision_step_with_scaler_clipping_and_accumulation(tmp_path):
    """The CUDA-only path (autocast, GradScaler, unscale before clipping, ACCUM_ITER) run on the CPU,
    where PyTorch offers the same API: every optimizer step must still update the weights."""
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from biapy_cls.engine.hooks import LRScheduleHook
    from biapy_cls.engine.losses import ClassificationLoss
    from biapy_cls.engine.trainer import FitSetup, Trainer, train_one_epoch

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(24, 8), torch.randint(0, 3, (24,)), torch.arange(24))
    data.value_range = 1.0
    loader = DataLoader(data, batch_size=4, sampler=DistributedSampler(data, 1, 0, shuffle=False))
    model = torch.nn.Linear(8, 3)
    cfg = get_cfg_defaults()
    optimizer = build_optimizer(TrainSettings.from_cfg(cfg), model)
    steps = []
    optimizer.register_step_post_hook(lambda *args: steps.append(1))
    setup = FitSetup(model=model, criterion=ClassificationLoss(), optimizer=optimizer, train_loader=loader,
                     val_loader=None, prepare=lambda x, value_range, train: x, runtime=Runtime(torch.device("cpu")),
                     epochs=1, n_classes=3, accum_iter=2, clip_norm=0.5, amp_dtype=torch.bfloat16,
                     scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))
    schedule = schedule_for(cfg, optimizer, 3)
    trainer = Trainer(setup, [LRScheduleHook(schedule)])
    before = model.weight.detach().clone()
    row = train_one_epoch(trainer, 0)
    assert len(steps) == 3 and schedule.steps == 3  # 6 batches, one optimizer step (and LR step) every 2
    assert math.isfinite(row["train_loss"]) and not torch.equal(model.weight, before)
