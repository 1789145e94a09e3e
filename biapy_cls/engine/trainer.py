"""The training loop, readable top to bottom: epochs of training and validation; everything else
(LR schedule, early stopping, checkpoints, logs, charts, TensorBoard) is a hook (engine/hooks.py).

    trainer = Trainer(setup, hooks)      # FitSetup: what is trained, on what, how
    trainer.load_state_dict(training)    # optional: resume from a checkpoint's `training` state
    trainer.fit()

`fit` resumes exactly from a checkpoint's `training` state: the sampler order depends only on
(seed, epoch) and every RNG state is restored, so an interrupted-then-resumed run on the CPU ends
with the same model as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from biapy_cls.config.settings import DEFAULT_TRAIN_METRICS, TRAIN_METRICS
from biapy_cls.engine.checkpoint import rng_state, set_rng_state
from biapy_cls.engine.losses import ClassificationLoss
from biapy_cls.engine.runtime import Runtime, reduce_sum, unwrap
from biapy_cls.errors import TrainingDiverged
from biapy_cls.evaluation.metrics import confusion_matrix, summarize_confusion

if TYPE_CHECKING:
    from biapy_cls.engine.hooks import HookBase

PrepareFn = Callable[[torch.Tensor, float, bool], torch.Tensor]  # (stored images, value range, train) -> input


@dataclass
class FitSetup:
    """What is trained, on what data, and how one optimizer step is taken: inputs, built by the workflow."""

    model: nn.Module
    criterion: ClassificationLoss
    optimizer: torch.optim.Optimizer
    train_loader: DataLoader
    val_loader: DataLoader | None
    prepare: PrepareFn
    runtime: Runtime
    epochs: int
    n_classes: int
    metrics: tuple[str, ...] = DEFAULT_TRAIN_METRICS  # TRAIN.METRICS items
    monitor: str = "val_loss"  # kept in every epoch's row, whatever TRAIN.METRICS says
    accum_iter: int = 1
    clip_norm: float = 0.0  # 0: no clipping
    amp_dtype: torch.dtype | None = None  # None: full precision
    scaler: torch.amp.GradScaler = field(default_factory=lambda: torch.amp.GradScaler("cuda", enabled=False))
    # (normalised images, class indices) -> (images, soft targets): MixUp/CutMix (data/mixing.py), a step-level
    # transform of the batch, not a hook
    mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.runtime.device.type, dtype=self.amp_dtype)

    @property
    def top5(self) -> bool:
        return "top-5-accuracy" in self.metrics


@dataclass
class TrainState:
    """What changes while training; hooks read it and may change the fields marked so."""

    epoch: int = 0  # 0-based epoch being trained (in after_epoch: the one just finished)
    start_epoch: int = 0  # first epoch of this run (> 0 when resumed)
    step: int = 0  # optimizer steps taken in the current epoch
    history: list[dict] = field(default_factory=list)  # one row per finished epoch (the training log)
    metrics: dict = field(default_factory=dict)  # this epoch's row; hooks may add keys (e.g. EMA's val metrics)
    improved: bool = False  # set by the monitor hook: this epoch is the best so far
    stop_reason: str = ""  # set by a hook to end training after this epoch; logged
    model_to_save: nn.Module | None = None  # hooks may set other weights (e.g. EMA's) for the checkpoints
    weights: str = "raw"  # what the checkpoints hold: "raw" (the trained weights) or model_to_save's name ("ema")
    monitored: float | None = None  # a hook that picks other weights sets their monitored value (else the row's)
    notes: list[str] = field(default_factory=list)  # appended to this epoch's log line (emptied every epoch)
    best_checkpoint: Path | None = None  # set by the checkpoint hook: named when training diverges


def _to_device(images: torch.Tensor, labels: torch.Tensor, runtime: Runtime):
    non_blocking = runtime.cuda
    return images.to(runtime.device, non_blocking=non_blocking), labels.to(runtime.device, non_blocking=non_blocking)


def _top5_hits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    return (top == labels[:, None]).any(dim=1).sum()


class EpochTotals:
    """Loss, confusion matrix and top-5 hits summed over an epoch, on the device (no synchronisation per
    step), then turned into means added exactly across processes."""

    def __init__(self, n_classes: int, runtime: Runtime, top5: bool):
        device = runtime.device
        self.runtime, self.top5, self.n_classes = runtime, top5, n_classes
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.weight_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.cm = torch.zeros((n_classes, n_classes), dtype=torch.int64, device=device)
        self.top5_hits = torch.zeros((), dtype=torch.int64, device=device)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, total: torch.Tensor, count) -> None:
        self.loss_sum += total
        self.weight_sum += count
        self.cm += confusion_matrix(logits.argmax(1), labels, self.n_classes)
        if self.top5:
            self.top5_hits += _top5_hits(logits, labels)

    @property
    def running_loss(self) -> float:
        return float(self.loss_sum / self.weight_sum)

    def summary(self, prefix: str) -> dict:
        runtime = self.runtime
        weight = torch.as_tensor(self.weight_sum, dtype=torch.float64, device=runtime.device)
        sums = reduce_sum(torch.stack([self.loss_sum, weight, self.top5_hits.double()]), runtime)
        cm = reduce_sum(self.cm, runtime)
        summary = summarize_confusion(cm)
        n = max(int(cm.sum()), 1)
        return {f"{prefix}_loss": float(sums[0] / sums[1].clamp_min(1e-12)), f"{prefix}_accuracy": summary["accuracy"],
                f"{prefix}_f1": summary["f1"], f"{prefix}_top5_accuracy": float(sums[2]) / n}


def _optimizer_step(trainer: Trainer) -> None:
    setup = trainer.setup
    if setup.clip_norm > 0:
        setup.scaler.unscale_(setup.optimizer)  # clip the true gradients, not the fp16-scaled ones
        torch.nn.utils.clip_grad_norm_(setup.model.parameters(), setup.clip_norm)
    setup.scaler.step(setup.optimizer)
    setup.scaler.update()
    setup.optimizer.zero_grad(set_to_none=True)
    trainer.state.step += 1
    trainer.call("after_step")


def train_one_epoch(trainer: Trainer, epoch: int) -> dict:
    """One pass over the training data; returns train_loss, train_accuracy, train_f1, train_top5_accuracy."""
    setup = trainer.setup
    model, runtime = setup.model, setup.runtime
    model.train()
    value_range = setup.train_loader.dataset.value_range
    totals = EpochTotals(setup.n_classes, runtime, setup.top5)
    n_batches, accum = len(setup.train_loader), setup.accum_iter
    bar = tqdm(setup.train_loader, desc=f"Epoch {epoch + 1}/{setup.epochs}", unit="batch", leave=False,
               disable=not runtime.is_main or None, dynamic_ncols=True)
    setup.optimizer.zero_grad(set_to_none=True)
    trainer.state.step = 0
    for step, (images, labels, _) in enumerate(bar):
        images, labels = _to_device(images, labels, runtime)
        inputs, targets = setup.prepare(images, value_range, True), labels
        if setup.mix is not None:
            inputs, targets = setup.mix(inputs, labels)
            labels = targets.argmax(1)  # mixed images count against their dominant label
        with setup.autocast():
            logits = model(inputs)
        total, count = setup.criterion.totals(logits, targets)
        loss = total / count
        setup.scaler.scale(loss / accum if accum > 1 else loss).backward()
        if (step + 1) % accum == 0 or step + 1 == n_batches:
            _optimizer_step(trainer)
        totals.add(logits.detach(), labels, total.detach(), count)
        if step % 50 == 0:  # one synchronisation every 50 steps, for the progress bar and a NaN check
            running = totals.running_loss
            if not math.isfinite(running):
                raise TrainingDiverged(trainer.diverged_message(epoch))
            bar.set_postfix(loss=f"{running:.4f}", refresh=False)
    row = totals.summary("train")
    if not math.isfinite(row["train_loss"]):
        raise TrainingDiverged(trainer.diverged_message(epoch))
    return row


@torch.no_grad()
def evaluate(model: nn.Module, criterion: ClassificationLoss, loader: DataLoader, prepare: PrepareFn,
             runtime: Runtime, n_classes: int, autocast=contextlib.nullcontext, top5: bool = False) -> dict:
    """val_loss, val_accuracy, val_f1 and val_top5_accuracy on a labelled loader, summed exactly across processes."""
    model.eval()
    value_range = loader.dataset.value_range
    totals = EpochTotals(n_classes, runtime, top5)
    for images, labels, _ in loader:
        images, labels = _to_device(images, labels, runtime)
        with autocast():
            logits = model(prepare(images, value_range, False))
        total, count = criterion.totals(logits, labels)
        totals.add(logits, labels, total, count)
    return totals.summary("val")


class Trainer:
    """Runs the epochs of a FitSetup and calls its hooks at their points (see engine/hooks.py)."""

    def __init__(self, setup: FitSetup, hooks: list[HookBase] | None = None):
        self.setup = setup
        self.state = TrainState()
        self.hooks: list[HookBase] = []
        for hook in hooks or []:
            self.register(hook)

    def register(self, hook: HookBase) -> None:
        """Add a hook after those already registered: hooks run in registration order."""
        hook.trainer = self
        self.hooks.append(hook)

    @property
    def model(self) -> nn.Module:
        return self.setup.model

    def call(self, point: str) -> None:
        for hook in self.hooks:
            getattr(hook, point)()

    def evaluate(self, model: nn.Module | None = None) -> dict:
        """The validation metrics (val_loss, val_accuracy, ...) of `model` (default: the trained one), so
        that a hook can evaluate other weights (e.g. an average of them) on the same data."""
        setup = self.setup
        return evaluate(model if model is not None else setup.model, setup.criterion, setup.val_loader,
                        setup.prepare, setup.runtime, setup.n_classes, setup.autocast, setup.top5)

    def fit(self) -> dict:
        """Train from `state.start_epoch` to `setup.epochs` or until a hook stops it; return the last row."""
        setup, state = self.setup, self.state
        self.call("before_train")
        try:
            for epoch in range(state.start_epoch, setup.epochs):
                state.epoch, state.improved = epoch, False
                state.notes = []
                start = time.perf_counter()
                self.call("before_epoch")
                setup.train_loader.sampler.set_epoch(epoch)
                row = {"epoch": epoch + 1, **train_one_epoch(self, epoch)}
                if setup.val_loader is not None:
                    setup.val_loader.sampler.set_epoch(epoch)
                    row.update(self.evaluate())
                row = self._reported(row)
                row["lr"] = float(setup.optimizer.param_groups[0]["lr"])  # the LR of the epoch's last step
                row["seconds"] = round(time.perf_counter() - start, 3)
                state.metrics = row
                state.history.append(row)
                self.call("after_epoch")
                if state.stop_reason:
                    break
        finally:
            self.call("after_train")
        return state.history[-1] if state.history else {}

    def _reported(self, row: dict) -> dict:
        """The row as logged: losses, the TRAIN.METRICS metrics and the monitored quantity."""
        wanted = {TRAIN_METRICS[m] for m in self.setup.metrics} | {"loss"}
        keep = {k: v for k, v in row.items()
                if k != "epoch" and (k.split("_", 1)[1] in wanted or k == self.setup.monitor)}
        return {"epoch": row["epoch"], **keep}

    def diverged_message(self, epoch: int) -> str:
        best = self.state.best_checkpoint
        kept = f" The best checkpoint so far is kept in '{best}'." if best is not None and best.exists() else ""
        return (
            f"The training loss became NaN or infinite in epoch {epoch + 1}, so training stopped.{kept} Lower TRAIN.LR "
            "(e.g. by 10x), set TRAIN.GRADIENT_CLIP_NORM (e.g. 1.0), check the images for NaN values, or use another "
            "DATA.NORMALIZATION.TYPE."
        )

    # -- resuming -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What resuming needs, after `state.epoch` (0-based) has completed: the loop's own state and that
        of every hook with a `state_key` (the LR schedule, early stopping, ...), each under its key."""
        setup, state = self.setup, self.state
        training = {"epoch": state.epoch, "optimizer": setup.optimizer.state_dict()}
        for hook in self.hooks:
            if hook.state_key:
                training[hook.state_key] = hook.state_dict()
        training.update(scaler=setup.scaler.state_dict(), history=list(state.history), rng=rng_state())
        return training

    def load_state_dict(self, training: dict) -> None:
        setup, state = self.setup, self.state
        setup.optimizer.load_state_dict(training["optimizer"])
        for hook in self.hooks:
            if hook.state_key and hook.state_key in training:
                hook.load_state_dict(training[hook.state_key])
        if training.get("scaler"):
            setup.scaler.load_state_dict(training["scaler"])
        state.history = list(training["history"])
        state.start_epoch = training["epoch"] + 1
        set_rng_state(training["rng"])
        if "raw_model_state" in training:  # the checkpoint's model_state is other weights (EMA's): go on from the raw
            unwrap(setup.model).load_state_dict(training["raw_model_state"])
