"""Hooks that record training for people: one log line per epoch and the JSON training log, TensorBoard
scalars, and the charts of every logged quantity (engine/hooks.py explains the hook points)."""

from __future__ import annotations

import logging
from pathlib import Path

from biapy_cls.engine.hooks import HookBase
from biapy_cls.evaluation.reports import TensorBoard, TrainingLog, plot_history

log = logging.getLogger("biapy_cls")


def epoch_line(row: dict, epochs: int, best: bool) -> str:
    values = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "lr", "seconds"))
    mark = "  (best)" if best else ""
    return f"Epoch {row['epoch']}/{epochs}  {values} | lr {row['lr']:.2e} | {row['seconds']:.1f} s{mark}"


class EpochLogHook(HookBase):
    """One line per epoch in the log, one JSON object per epoch in RUN_training_log.json, and the
    reason training stopped early."""

    def __init__(self, training_log: Path):
        self.path = training_log
        self.log = None

    def before_train(self) -> None:
        self.log = TrainingLog(self.path, self.trainer.state.history)

    def after_epoch(self) -> None:
        state = self.trainer.state
        log.info(epoch_line(state.metrics, self.trainer.setup.epochs, state.improved) + "".join(
            f"  [{note}]" for note in state.notes))
        self.log.append(state.metrics)

    def after_train(self) -> None:
        if self.trainer.state.stop_reason:
            log.info(self.trainer.state.stop_reason)


class TensorBoardHook(HookBase):
    """Every number of every epoch's row as a TensorBoard scalar."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.board = None

    def before_train(self) -> None:
        self.board = TensorBoard(self.log_dir)

    def after_epoch(self) -> None:
        self.board.epoch(self.trainer.state.metrics)

    def after_train(self) -> None:
        if self.board is not None:
            self.board.close()


class ChartsHook(HookBase):
    """RUN_<quantity>.png under charts/ every LOG.CHART_CREATION_FREQ epochs and at the end."""

    def __init__(self, charts_dir: Path, run_name: str, every: int = 1):
        self.charts_dir, self.run_name, self.every = charts_dir, run_name, every

    def _draw(self) -> None:
        plot_history(self.trainer.state.history, self.charts_dir, self.run_name)

    def after_epoch(self) -> None:
        if (self.trainer.state.epoch + 1) % self.every == 0:
            self._draw()

    def after_train(self) -> None:
        self._draw()
