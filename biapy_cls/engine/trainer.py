"""The training loop, readable top to bottom: epochs of training and validation, early stopping,
best and last checkpoints every epoch, logs, charts and TensorBoard.

`fit` resumes exactly from a checkpoint's `training` state: the sampler order depends only on
(seed, epoch) and every RNG state is restored, so an interrupted-then-resumed run on the CPU ends
with the same model as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from biapy_cls.engine.checkpoint import copy_checkpoint, rng_state, save_checkpoint, set_rng_state
from biapy_cls.engine.ema import ModelEma
from biapy_cls.engine.losses import ClassificationLoss
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


# TRAIN.METRICS item -> the row key's suffix (train_<suffix>, val_<suffix>)
METRIC_KEYS = {"accuracy": "accuracy", "f1": "f1", "top-5-accuracy": "top5_accuracy"}
DEFAULT_METRICS = ("accuracy", "f1")


@dataclass
class FitSetup:
    """Everything `fit` works with, built by the workflow."""

    model: nn.Module
    criterion: ClassificationLoss
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
    metrics: tuple[str, ...] = DEFAULT_METRICS  # TRAIN.METRICS items
    accum_iter: int = 1
    clip_norm: float = 0.0  # 0: no clipping
    amp_dtype: torch.dtype | None = None  # None: full precision
    scaler: torch.amp.GradScaler = field(default_factory=lambda: torch.amp.GradScaler("cuda", enabled=False))
    save_every: int = -1  # MODEL.SAVE_CKPT_FREQ
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    # (normalised images, class indices) -> (images, soft targets): MixUp/CutMix (data/mixing.py)
    mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    ema: ModelEma | None = None  # MODEL.EMA (engine/ema.py)
    epoch_start: Callable[[int], None] | None = None  # called before each epoch (TRAIN.FREEZE_BACKBONE_EPOCHS)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.runtime.device.type, dtype=self.amp_dtype)

    @property
    def top5(self) -> bool:
        return "top-5-accuracy" in self.metrics


def _to_device(images: torch.Tensor, labels: torch.Tensor, runtime: Runtime):
    non_blocking = runtime.cuda
    return images.to(runtime.device, non_blocking=non_blocking), labels.to(runtime.device, non_blocking=non_blocking)


def _top5_hits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    return (top == labels[:, None]).any(dim=1).sum()


def _summary(prefix: str, loss_sum, weight_sum, cm, top5_hits, runtime: Runtime) -> dict:
    """Epoch means from sums, added exactly across processes."""
    sums = reduce_sum(torch.stack([loss_sum, torch.as_tensor(weight_sum, dtype=torch.float64, device=runtime.device),
                                   top5_hits.double()]), runtime)
    cm = reduce_sum(cm, runtime)
    summary = summarize_confusion(cm)
    n = max(int(cm.sum()), 1)
    return {f"{prefix}_loss": float(sums[0] / sums[1].clamp_min(1e-12)), f"{prefix}_accuracy": summary["accuracy"],
            f"{prefix}_f1": summary["f1"], f"{prefix}_top5_accuracy": float(sums[2]) / n}


def _optimizer_step(setup: FitSetup) -> None:
    if setup.clip_norm > 0:
        setup.scaler.unscale_(setup.optimizer)  # clip the true gradients, not the fp16-scaled ones
        torch.nn.utils.clip_grad_norm_(setup.model.parameters(), setup.clip_norm)
    setup.scaler.step(setup.optimizer)
    setup.scaler.update()
    setup.optimizer.zero_grad(set_to_none=True)
    setup.schedule.step_batch()


def train_one_epoch(setup: FitSetup, epoch: int) -> dict:
    model, runtime, n_classes = setup.model, setup.runtime, setup.n_classes
    model.train()
    value_range = setup.train_loader.dataset.value_range
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    weight_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    cm = torch.zeros((n_classes, n_classes), dtype=torch.int64, device=runtime.device)
    top5_hits = torch.zeros((), dtype=torch.int64, device=runtime.device)
    n_batches, accum = len(setup.train_loader), setup.accum_iter
    bar = tqdm(setup.train_loader, desc=f"Epoch {epoch + 1}/{setup.epochs}", unit="batch", leave=False,
               disable=not runtime.is_main or None, dynamic_ncols=True)
    setup.optimizer.zero_grad(set_to_none=True)
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
            _optimizer_step(setup)
            if setup.ema is not None:
                setup.ema.update(unwrap(model))
        # Running sums stay on the device: no synchronisation per step.
        loss_sum += total.detach()
        weight_sum += count
        logits = logits.detach()
        cm += confusion_matrix(logits.argmax(1), labels, n_classes)
        if setup.top5:
            top5_hits += _top5_hits(logits, labels)
        if step % 50 == 0:  # one synchronisation every 50 steps, for the progress bar and a NaN check
            running = float(loss_sum / weight_sum)
            if not math.isfinite(running):
                raise TrainingDiverged(_diverged_message(setup, epoch))
            bar.set_postfix(loss=f"{running:.4f}", refresh=False)
    row = _summary("train", loss_sum, weight_sum, cm, top5_hits, runtime)
    if not math.isfinite(row["train_loss"]):
        raise TrainingDiverged(_diverged_message(setup, epoch))
    return row


def _diverged_message(setup: FitSetup, epoch: int) -> str:
    best = setup.paths.best_checkpoint
    kept = f" The best checkpoint so far is kept in '{best}'." if best.exists() else ""
    return (
        f"The training loss became NaN or infinite in epoch {epoch + 1}, so training stopped.{kept} Lower TRAIN.LR "
        "(e.g. by 10x), set TRAIN.GRADIENT_CLIP_NORM (e.g. 1.0), check the images for NaN values, or use another "
        "DATA.NORMALIZATION.TYPE."
    )


@torch.no_grad()
def evaluate(model: nn.Module, criterion: ClassificationLoss, loader: DataLoader, prepare: PrepareFn,
             runtime: Runtime, n_classes: int, autocast=contextlib.nullcontext, top5: bool = False) -> dict:
    """val_loss, val_accuracy, val_f1 and val_top5_accuracy on a labelled loader, summed exactly across processes."""
    model.eval()
    value_range = loader.dataset.value_range
    loss_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    weight_sum = torch.zeros((), dtype=torch.float64, device=runtime.device)
    cm = torch.zeros((n_classes, n_classes), dtype=torch.int64, device=runtime.device)
    top5_hits = torch.zeros((), dtype=torch.int64, device=runtime.device)
    for images, labels, _ in loader:
        images, labels = _to_device(images, labels, runtime)
        with autocast():
            logits = model(prepare(images, value_range, False))
        total, count = criterion.totals(logits, labels)
        loss_sum += total
        weight_sum += count
        cm += confusion_matrix(logits.argmax(1), labels, n_classes)
        if top5:
            top5_hits += _top5_hits(logits, labels)
    return _summary("val", loss_sum, weight_sum, cm, top5_hits, runtime)


def training_state(setup: FitSetup, epoch: int) -> dict:
    """What resuming needs, after `epoch` (0-based) has completed."""
    return {
        "epoch": epoch,
        "optimizer": setup.optimizer.state_dict(),
        "schedule": setup.schedule.state_dict(),
        "scaler": setup.scaler.state_dict(),
        "early_stopping": setup.early_stopping.state_dict(),
        "history": list(setup.history),
        "rng": rng_state(),
        **({"ema": setup.ema.state_dict()} if setup.ema is not None else {}),
    }


def restore_training_state(setup: FitSetup, state: dict) -> None:
    setup.optimizer.load_state_dict(state["optimizer"])
    setup.schedule.load_state_dict(state["schedule"])
    if state.get("scaler"):
        setup.scaler.load_state_dict(state["scaler"])
    setup.early_stopping.load_state_dict(state["early_stopping"])
    setup.history = list(state["history"])
    setup.start_epoch = state["epoch"] + 1
    set_rng_state(state["rng"])
    if setup.ema is not None and "ema" in state:
        setup.ema.load_state_dict(state["ema"])
    if "raw_model_state" in state:  # the checkpoint's model_state is the average: training goes on from the raw
        unwrap(setup.model).load_state_dict(state["raw_model_state"])
    if setup.ema is not None and "ema" not in state:  # EMA switched on for the resumed part: start from here
        setup.ema.module.load_state_dict(unwrap(setup.model).state_dict())


def _report(setup: FitSetup, row: dict) -> dict:
    """The row as logged: losses, the TRAIN.METRICS metrics and the monitored quantity."""
    wanted = {METRIC_KEYS[m] for m in setup.metrics} | {"loss"}
    keep = {k: v for k, v in row.items()
            if k != "epoch" and (k.split("_", 1)[1] in wanted or k == setup.early_stopping.monitor)}
    return {"epoch": row["epoch"], **keep}


def _epoch_line(row: dict, epochs: int, best: bool) -> str:
    values = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds"))
    mark = "  (best)" if best else ""
    return f"Epoch {row['epoch']}/{epochs}  {values} | lr {row['lr']:.2e} | {row['seconds']:.1f} s{mark}"


def _ema_is_better(row: dict, ema_row: dict, monitor: str) -> bool:
    """True when the EMA weights' validation value of the monitored quantity beats the raw weights'."""
    if monitor not in ema_row:  # no validation set (train_loss), or no EMA: the raw weights
        return False
    return ema_row[monitor] < row[monitor] if MONITORS[monitor] == "min" else ema_row[monitor] > row[monitor]


def _weights(setup: FitSetup, use_ema: bool) -> dict:
    """The weights a checkpoint predicts with, and which they are."""
    if use_ema:
        return {"model_state": setup.ema.module.state_dict(), "weights": "ema"}
    return {"model_state": unwrap(setup.model).state_dict(), "weights": "raw"}


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
            if setup.epoch_start is not None:
                setup.epoch_start(epoch)
            setup.train_loader.sampler.set_epoch(epoch)
            row = {"epoch": epoch + 1, **train_one_epoch(setup, epoch)}
            ema_row = {}
            if setup.val_loader is not None:
                setup.val_loader.sampler.set_epoch(epoch)
                row.update(evaluate(setup.model, setup.criterion, setup.val_loader, setup.prepare, runtime,
                                    setup.n_classes, setup.autocast, setup.top5))
                if setup.ema is not None:
                    ema_row = evaluate(setup.ema.module, setup.criterion, setup.val_loader, setup.prepare, runtime,
                                       setup.n_classes, setup.autocast, setup.top5)
            row = _report(setup, row)
            use_ema = _ema_is_better(row, ema_row, monitor)
            row.update({f"val-ema_{k.split('_', 1)[1]}": v for k, v in ema_row.items() if k in row})
            row["lr"] = setup.schedule.lr
            setup.schedule.step_epoch(row[monitor])
            row["seconds"] = round(time.perf_counter() - start, 3)
            setup.history.append(row)
            improved = stopper.update(ema_row[monitor] if use_ema else row[monitor], epoch + 1)
            if main:
                log.info(_epoch_line(row, setup.epochs, improved) + ("  [EMA weights better]" if use_ema else ""))
                training_log.append(row)
                board.epoch(row)
                payload = {**setup.checkpoint_payload(), **_weights(setup, use_ema),
                           "training": training_state(setup, epoch)}
                if use_ema:
                    payload["training"]["raw_model_state"] = unwrap(setup.model).state_dict()
                save_checkpoint(paths.last_checkpoint, payload)
                # The same file under other names: linked, not written again.
                if improved:
                    copy_checkpoint(paths.last_checkpoint, paths.best_checkpoint)
                if setup.save_every > 0 and (epoch + 1) % setup.save_every == 0:
                    copy_checkpoint(paths.last_checkpoint, paths.epoch_checkpoint(epoch + 1))
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

