"""The training loop, readable top to bottom: epochs of training and validation, early stopping,
best and last checkpoints every epoch, logs, charts and TensorBoard.

`fit` resumes exactly from a checkpoint's `training` state: the sampler order depends only on
(seed, epoch) and every RNG state is restored, so an interrupted-then-resumed run on the CPU ends
with the same model as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from biapy_cls.engine.checkpoint import rng_state, save_checkpoint, set_rng_state
from biapy_cls.engine.optim import LRSchedule
from biapy_cls.engine.runtime import Runtime, reduce_sum, unwrap
from biapy_cls.errors import TrainingDiverged
from biapy_cls.evaluation.metrics import confusion_matrix, summarize_confusion
from biapy_cls.evaluation.reports import TensorBoard, TrainingLog, plot_history
from biapy_cls.outputs import RunPaths

log = logging.getLogger("biapy_cls")

# Quantity watched for early stopping and the best checkpoint, and whether lower is better.
MONITORS = {"val_loss": "min", "val_accuracy": "max", "val_f1": "max", "train_loss": "min"}

PrepareFn = Callable[[torch.Tensor, float, bool], torch.Tensor]  # (stored images, value range, train) -> input


@dataclass
class EarlyStopping:
    monitor: str = "val_loss"
    patience: int = -1  # -1: never stop early
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record this epoch's value; True when it is the best so far."""
        lower_is_better = MONITORS[self.monitor] == "min"
        improved = self.best is None or (value < self.best if lower_is_better else value > self.best)
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


@dataclass
class FitSetup:
    """Everything `fit` works with, built by the workflow."""

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    train_loader: DataLoader
    val_loader: DataLoader | None
    prepare: PrepareFn
    runtime: Runtime
    paths: RunPaths
    epochs: int
    n_classes: int
    early_stopping: EarlyStopping
    chart_every: int
    checkpoint_payload: Callable[[], dict]  # model description, class names, ...: the static part
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0


def _to_device(images: torch.Tensor, labels: torch.Tensor, runtime: Runtime):
    non_blocking = runtime.cuda
    return images.to(runtime.device, non_blocking=non_blocking), labels.to(runtime.device, non_blocking=non_blocking)


def train_one_epoch(setup: FitSetup, epoch: int) -> dict:
    model, runtime = setup.model, setup.runtime
    model.train()
    value_range = setup.train_loader.dataset.value_range
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    correct = torch.zeros((), dtype=torch.int64, device=runtime.device)
    seen = torch.zeros((), dtype=torch.int64, device=runtime.device)
    bar = tqdm(setup.train_loader, desc=f"Epoch {epoch + 1}/{setup.epochs}", unit="batch", leave=False,
               disable=not runtime.is_main or None, dynamic_ncols=True)
    for step, (images, labels, _) in enumerate(bar):
        images, labels = _to_device(images, labels, runtime)
        inputs = setup.prepare(images, value_range, True)
        logits = model(inputs)
        loss = setup.criterion(logits, labels)
        setup.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        setup.optimizer.step()
        setup.schedule.step_batch()
        n = labels.shape[0]
        loss_sum += loss.detach().double() * n
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += n
        if step % 20 == 0:
            running = (loss_sum / seen).item()
            if not math.isfinite(running):
                raise TrainingDiverged(_diverged_message(setup, epoch))
            bar.set_postfix(loss=f"{running:.4f}")
    totals = reduce_sum(torch.stack([loss_sum, correct.double(), seen.double()]), runtime)
    train_loss = float(totals[0] / totals[2])
    if not math.isfinite(train_loss):
        raise TrainingDiverged(_diverged_message(setup, epoch))
    return {"train_loss": train_loss, "train_accuracy": float(totals[1] / totals[2])}


def _diverged_message(setup: FitSetup, epoch: int) -> str:
    best = setup.paths.best_checkpoint
    kept = f" The best checkpoint so far is kept in '{best}'." if best.exists() else ""
    return (
        f"The training loss became NaN or infinite in epoch {epoch + 1}, so training stopped.{kept} Lower TRAIN.LR "
        "(e.g. by 10x), check the images for NaN values, or use another DATA.NORMALIZATION.TYPE."
    )


@torch.no_grad()
def evaluate(model: nn.Module, criterion: nn.Module, loader: DataLoader, prepare: PrepareFn, runtime: Runtime,
             n_classes: int) -> dict:
    """Loss, accuracy and macro F1 on a labelled loader, summed exactly across processes."""
    model.eval()
    value_range = loader.dataset.value_range
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    cm = torch.zeros((n_classes, n_classes), dtype=torch.int64, device=runtime.device)
    for images, labels, _ in loader:
        images, labels = _to_device(images, labels, runtime)
        logits = model(prepare(images, value_range, False))
        loss_sum += criterion(logits, labels).double() * labels.shape[0]
        cm += confusion_matrix(logits.argmax(1), labels, n_classes)
    loss_sum = reduce_sum(loss_sum, runtime)
    cm = reduce_sum(cm, runtime)
    summary = summarize_confusion(cm)
    return {"val_loss": float(loss_sum / cm.sum().clamp_min(1)), "val_accuracy": summary["accuracy"], "val_f1": summary["f1"]}


def training_state(setup: FitSetup, epoch: int) -> dict:
    """What resuming needs, after `epoch` (0-based) has completed."""
    return {
        "epoch": epoch,
        "optimizer": setup.optimizer.state_dict(),
        "schedule": setup.schedule.state_dict(),
        "early_stopping": setup.early_stopping.state_dict(),
        "history": list(setup.history),
        "rng": rng_state(),
    }


def restore_training_state(setup: FitSetup, state: dict) -> None:
    setup.optimizer.load_state_dict(state["optimizer"])
    setup.schedule.load_state_dict(state["schedule"])
    setup.early_stopping.load_state_dict(state["early_stopping"])
    setup.history = list(state["history"])
    setup.start_epoch = state["epoch"] + 1
    set_rng_state(state["rng"])


def _epoch_line(row: dict, epochs: int, best: bool) -> str:
    val = (f" | val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f} f1 {row['val_f1']:.4f}"
           if "val_loss" in row else "")
    return (f"Epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}"
            f"{val} | lr {row['lr']:.2e} | {row['seconds']:.1f} s{'  (best)' if best else ''}")


def fit(setup: FitSetup) -> dict:
    """Train from `setup.start_epoch` to `setup.epochs` or early stop; return the final history row."""
    runtime, paths = setup.runtime, setup.paths
    main = runtime.is_main
    training_log = TrainingLog(paths.training_log, setup.history) if main else None
    board = TensorBoard(paths.tensorboard_dir, enabled=main)
    stopper = setup.early_stopping
    monitor = stopper.monitor
    try:
        for epoch in range(setup.start_epoch, setup.epochs):
            start = time.perf_counter()
            setup.train_loader.sampler.set_epoch(epoch)
            row = {"epoch": epoch + 1, **train_one_epoch(setup, epoch)}
            if setup.val_loader is not None:
                setup.val_loader.sampler.set_epoch(epoch)
                row.update(evaluate(setup.model, setup.criterion, setup.val_loader, setup.prepare, runtime, setup.n_classes))
            row["lr"] = setup.schedule.lr
            setup.schedule.step_epoch(row[monitor])
            row["seconds"] = round(time.perf_counter() - start, 3)
            setup.history.append(row)
            improved = stopper.update(row[monitor], epoch + 1)
            if main:
                log.info(_epoch_line(row, setup.epochs, improved))
                training_log.append(row)
                board.epoch(row)
                payload = {**setup.checkpoint_payload(), "model_state": unwrap(setup.model).state_dict(),
                           "training": training_state(setup, epoch)}
                if improved:
                    save_checkpoint(paths.best_checkpoint, payload)
                save_checkpoint(paths.last_checkpoint, payload)
                if (epoch + 1) % setup.chart_every == 0:
                    plot_history(setup.history, paths.charts_dir, paths.run_name)
            if stopper.should_stop:
                if main:
                    log.info(f"Early stopping: {monitor} has not improved for {stopper.patience} epochs "
                             f"(best {stopper.best:.4f} at epoch {stopper.best_epoch}).")
                break
    finally:
        board.close()
        if main:
            plot_history(setup.history, paths.charts_dir, paths.run_name)
    return setup.history[-1] if setup.history else {}

