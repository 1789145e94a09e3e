"""Training-loop hooks, in the manner of detectron2's HookBase: what happens around the loop of
engine/trainer.py without being written into it.

    Trainer.fit()
      before_train()                      open logs; write augmentation samples
      for each epoch:
        before_epoch()                    backbone frozen or not (TRAIN.FREEZE_BACKBONE_EPOCHS)
        for each batch: forward, backward;
          every TRAIN.ACCUM_ITER batches: optimizer step, then
            after_step()                  per-step LR schedules, the weight EMA's update
        validation -> state.metrics (train_*, val_*, lr, seconds), appended to state.history
        after_epoch()                     epoch LR schedule, EMA validation (val-ema_*, the better weights),
                                          monitor/early stopping, log line, JSON log, TensorBoard,
                                          checkpoints, charts
        stop if a hook set state.stop_reason
      after_train()                       (always, also on errors) close TensorBoard, final charts

A hook reaches everything through `self.trainer`: `trainer.setup` (model, optimizer, loaders, runtime:
the inputs), `trainer.state` (epoch, step, history, this epoch's `metrics` row, `improved`,
`stop_reason`, `model_to_save` with its `weights` name and `monitored` value, `notes` for the log line,
`best_checkpoint`: what changes) and `trainer.evaluate(model)` (the validation metrics of any weights).
Hooks run in the order they are registered, so a hook that adds metrics (as engine/ema.py's EmaHook adds
those of the averaged weights) or picks other weights to save (`state.model_to_save`) is registered
before the monitor and the checkpoint hooks that use them. A hook whose state must survive --resume sets
`state_key` and implements `state_dict`/`load_state_dict`: the
checkpoint's `training` dict holds it under that key.

The hooks that record training for people (log lines, the JSON log, TensorBoard, charts) are in
evaluation/training_hooks.py, above the engine. Which hooks a run gets, and in which order, is decided in
one place: `build_hooks` in training.py.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from biapy_cls.config.settings import MONITOR_MODES
from biapy_cls.engine.checkpoint import copy_checkpoint, save_checkpoint
from biapy_cls.engine.optim import LRSchedule
from biapy_cls.engine.runtime import unwrap

if TYPE_CHECKING:
    from biapy_cls.engine.trainer import Trainer

log = logging.getLogger("biapy_cls")


class HookBase:
    """Override any of the five points; each is called with no argument (use `self.trainer`)."""

    trainer: Trainer
    state_key: str | None = None  # this hook's key in a checkpoint's `training` dict, when it has state

    def before_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class LRScheduleHook(HookBase):
    """TRAIN.LR_SCHEDULER: per-step schedules after each optimizer step, reduceonplateau after each epoch."""

    state_key = "schedule"

    def __init__(self, schedule: LRSchedule):
        self.schedule = schedule

    def after_step(self) -> None:
        self.schedule.step_batch()

    def after_epoch(self) -> None:
        self.schedule.step_epoch(self.trainer.state.metrics[self.trainer.setup.monitor])

    def state_dict(self) -> dict:
        return self.schedule.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.schedule.load_state_dict(state)


@dataclass
class EarlyStopping:
    monitor: str = "val_loss"
    patience: int = -1  # -1: never stop early
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record this epoch's value; True when it is the best so far."""
        lower_is_better = MONITOR_MODES[self.monitor] == "min"
        # A NaN or infinite value (e.g. a diverged validation loss) never wins: every comparison with NaN is
        # False, so a NaN first epoch would otherwise stay "best" for the whole run.
        finite = value is not None and math.isfinite(value)
        improved = finite and (self.best is None or (value < self.best if lower_is_better else value > self.best))
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience != -1 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad_epochs = state["best"], state["best_epoch"], state["bad_epochs"]


class EarlyStoppingHook(HookBase):
    """TRAIN.CHECKPOINT_MONITOR and TRAIN.PATIENCE: marks the best epoch (`state.improved`) and stops
    training after PATIENCE epochs without improvement."""

    state_key = "early_stopping"

    def __init__(self, stopper: EarlyStopping):
        self.stopper = stopper

    def after_epoch(self) -> None:
        state, stopper = self.trainer.state, self.stopper
        value = state.monitored if state.monitored is not None else state.metrics[stopper.monitor]
        state.improved = stopper.update(value, state.epoch + 1)
        if stopper.should_stop:
            state.stop_reason = (f"Early stopping: {stopper.monitor} has not improved for {stopper.patience} epochs "
                                 f"(best {stopper.best:.4f} at epoch {stopper.best_epoch}).")

    def state_dict(self) -> dict:
        return self.stopper.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stopper.load_state_dict(state)


@dataclass(frozen=True)
class CheckpointFiles:
    """Where the checkpoint hook writes (RunPaths hands them over; the engine knows no output tree)."""

    last: Path
    best: Path
    every_epoch: Callable[[int], Path]  # epoch (1-based) -> file kept every MODEL.SAVE_CKPT_FREQ epochs


class CheckpointHook(HookBase):
    """The last epoch every epoch, the best one when the monitor improves, and every MODEL.SAVE_CKPT_FREQ
    epochs: self-contained files (`payload` describes the model) that resume training exactly."""

    def __init__(self, files: CheckpointFiles, payload: Callable[[], dict], save_every: int = -1):
        self.files, self.payload, self.save_every = files, payload, save_every

    def before_train(self) -> None:
        self.trainer.state.best_checkpoint = self.files.best

    def after_epoch(self) -> None:
        trainer, files = self.trainer, self.files
        state = trainer.state
        training = trainer.state_dict()
        model = trainer.model
        if state.model_to_save is not None:  # other weights predict better; training goes on from the raw ones
            training["raw_model_state"] = unwrap(trainer.model).state_dict()
            model = state.model_to_save
        save_checkpoint(files.last, {**self.payload(), "model_state": unwrap(model).state_dict(),
                                     "weights": state.weights, "training": training})
        # The same file under other names: linked, not written again.
        if state.improved:
            copy_checkpoint(files.last, files.best)
        epoch = state.epoch + 1
        if self.save_every > 0 and epoch % self.save_every == 0:
            copy_checkpoint(files.last, files.every_epoch(epoch))


class AugSamplesHook(HookBase):
    """AUGMENTOR.AUG_SAMPLES: pictures of augmented training images, once, when a new run starts."""

    def __init__(self, write: Callable[[], list[Path]]):
        self.write = write

    def before_train(self) -> None:
        if self.trainer.state.start_epoch == 0:  # a resumed run wrote them when it started
            files = self.write()
            log.info(f"Augmentation samples: {files[0]}")
