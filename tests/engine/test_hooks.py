"""The hook API of the training loop: the points and their order, what a hook can see and change
(metrics of other weights, early stop, the weights to save) and hook state across --resume."""

from __future__ import annotations

import copy

import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from biapy_cls.engine.checkpoint import load_checkpoint
from biapy_cls.engine.ema import EmaHook, ModelEma
from biapy_cls.engine.hooks import CheckpointFiles, CheckpointHook, EarlyStopping, EarlyStoppingHook, HookBase
from biapy_cls.engine.losses import ClassificationLoss
from biapy_cls.engine.runtime import Runtime
from biapy_cls.engine.trainer import FitSetup, Trainer


def loader(n: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(n, 8, generator=generator), torch.randint(0, 3, (n,), generator=generator),
                         torch.arange(n))
    data.value_range = 1.0
    return DataLoader(data, batch_size=4, sampler=DistributedSampler(data, 1, 0, shuffle=False))


def tiny_setup(epochs: int = 5) -> FitSetup:
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3)
    return FitSetup(model=model, criterion=ClassificationLoss(), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    train_loader=loader(12, 0), val_loader=loader(8, 1), prepare=lambda x, value_range, train: x,
                    runtime=Runtime(torch.device("cpu")), epochs=epochs, n_classes=3)


class Recorder(HookBase):
    """Logs every call, evaluates a frozen copy of the first weights next to the trained ones, stops after 2."""

    def __init__(self):
        self.calls: list[str] = []
        self.frozen = None

    def before_train(self):
        self.calls.append("before_train")
        self.frozen = copy.deepcopy(self.trainer.model)

    def before_epoch(self):
        self.calls.append(f"before_epoch {self.trainer.state.epoch}")

    def after_step(self):
        self.calls.append(f"step {self.trainer.state.step}")

    def after_epoch(self):
        state = self.trainer.state
        self.calls.append(f"after_epoch {state.epoch}")
        state.metrics.update({f"frozen_{k}": v for k, v in self.trainer.evaluate(self.frozen).items()})
        if state.epoch == 1:
            state.stop_reason = "enough"

    def after_train(self):
        self.calls.append("after_train")


def test_hook_points_run_in_order_and_a_hook_adds_metrics_and_stops_training():
    recorder = Recorder()
    trainer = Trainer(tiny_setup(), [recorder])
    last = trainer.fit()
    epoch = ["step 1", "step 2", "step 3"]  # 12 images in batches of 4: one optimizer step each
    assert recorder.calls == ["before_train", "before_epoch 0", *epoch, "after_epoch 0",
                              "before_epoch 1", *epoch, "after_epoch 1", "after_train"]
    assert [row["epoch"] for row in trainer.state.history] == [1, 2]  # stopped after epoch 2 of 5
    assert last is trainer.state.history[-1] and trainer.state.stop_reason == "enough"
    # the frozen copy's metrics sit next to the trained model's, and differ from them
    assert {"val_loss", "frozen_val_loss", "frozen_val_accuracy"} <= set(last)
    assert last["frozen_val_loss"] != last["val_loss"]


class StepCounter(HookBase):
    state_key = "step_counter"

    def __init__(self):
        self.steps = 0

    def after_step(self):
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]


class SaveZeros(HookBase):
    """Chooses other weights for the checkpoints, as an EMA hook would."""

    def before_train(self):
        self.zeros = copy.deepcopy(self.trainer.model)
        torch.nn.init.zeros_(self.zeros.weight)
        self.trainer.state.model_to_save = self.zeros


def test_checkpoints_hold_the_chosen_weights_and_hook_state_resumes(tmp_path):
    files = CheckpointFiles(tmp_path / "last.pth", tmp_path / "best.pth", lambda e: tmp_path / f"{e}.pth")
    counter = StepCounter()
    hooks = [counter, SaveZeros(), EarlyStoppingHook(EarlyStopping("val_loss")),
             CheckpointHook(files, lambda: {"model_spec": "tiny"}, save_every=2)]
    trainer = Trainer(tiny_setup(epochs=3), hooks)
    trainer.fit()
    saved = load_checkpoint(files.last)
    assert saved["model_spec"] == "tiny" and torch.count_nonzero(saved["model_state"]["weight"]) == 0
    assert saved["training"]["step_counter"] == {"steps": 9} and saved["training"]["epoch"] == 2
    assert files.best.exists() and (tmp_path / "2.pth").exists() and not (tmp_path / "1.pth").exists()

    resumed_counter = StepCounter()
    resumed = Trainer(tiny_setup(epochs=3), [resumed_counter, EarlyStoppingHook(EarlyStopping("val_loss"))])
    resumed.load_state_dict(saved["training"])
    assert resumed_counter.steps == 9 and resumed.state.start_epoch == 3
    assert len(resumed.state.history) == 3


def test_ema_hook_checkpoints_the_better_weights_and_early_stopping_judges_them(tmp_path):
    """An average that never moves (DECAY 1) holds the starting weights: worse than the trained ones at a
    sane learning rate, better at one that wrecks the training. Either way the checkpoint, its 'weights'
    name and early stopping follow the better one, and --resume goes on from the raw weights."""
    for lr, winner in ((0.1, "raw"), (5.0, "ema")):
        files = CheckpointFiles(tmp_path / f"{winner}-last.pth", tmp_path / f"{winner}-best.pth", lambda e: tmp_path)
        setup = tiny_setup(epochs=3)
        for group in setup.optimizer.param_groups:
            group["lr"] = lr
        start = copy.deepcopy(setup.model.state_dict())
        ema = EmaHook(ModelEma(setup.model, decay=1.0, warmup=0))
        stopper = EarlyStopping("val_loss")
        trainer = Trainer(setup, [ema, EarlyStoppingHook(stopper), CheckpointHook(files, lambda: {})])
        trainer.fit()
        rows = trainer.state.history
        assert all({"val-ema_loss", "val-ema_accuracy", "val-ema_f1"} <= set(row) for row in rows)
        better = [(row["val-ema_loss"] < row["val_loss"]) == (winner == "ema") for row in rows]
        assert all(better), rows
        saved = load_checkpoint(files.last)
        assert saved["weights"] == winner and saved["training"]["ema"]["updates"] == 9
        trained = setup.model.state_dict()
        if winner == "ema":  # the starting weights are saved; training resumes from the trained ones
            assert torch.equal(saved["model_state"]["weight"], start["weight"])
            assert torch.equal(saved["training"]["raw_model_state"]["weight"], trained["weight"])
            assert stopper.best == min(row["val-ema_loss"] for row in rows)
        else:
            assert torch.equal(saved["model_state"]["weight"], trained["weight"])
            assert "raw_model_state" not in saved["training"]
            assert stopper.best == min(row["val_loss"] for row in rows)

        resumed_setup = tiny_setup(epochs=3)
        resumed_ema = EmaHook(ModelEma(resumed_setup.model, decay=1.0, warmup=0))
        resumed = Trainer(resumed_setup, [resumed_ema, EarlyStoppingHook(EarlyStopping("val_loss"))])
        resumed_setup.model.load_state_dict(saved["model_state"])  # as training.resume_from does
        resumed.load_state_dict(saved["training"])
        assert torch.equal(resumed_setup.model.weight, trained["weight"])
        assert resumed_ema.ema.updates == 9 and torch.equal(resumed_ema.ema.module.weight, start["weight"])
