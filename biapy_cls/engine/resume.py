"""Whether a run may continue with --resume: an interrupted run, or a finished one given more epochs.

Checked on the last checkpoint before anything is written, so a refused --resume changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml
from yacs.config import CfgNode as CN

from biapy_cls.engine.checkpoint import load_checkpoint
from biapy_cls.errors import RunStateError
from biapy_cls.outputs import RunPaths, read_run_info

# Schedules planned over the whole of TRAIN.EPOCHS: they cannot be stretched once the run has started.
WHOLE_RUN_SCHEDULES = ("warmupcosine", "onecycle")


def check_resume(cfg: CN, paths: RunPaths, command: str, same_task: Callable[[dict], None] | None = None) -> str:
    """Raise RunStateError if the run cannot continue; else say what resuming will do. `same_task` checks
    that the checkpoint's classes and model are this run's (engine.checkpoint_match)."""
    checkpoint = load_checkpoint(paths.last_checkpoint, "checkpoint to resume from")
    if same_task is not None:
        same_task(checkpoint)
    state = checkpoint["training"]
    done, wanted = state["epoch"] + 1, cfg.TRAIN.EPOCHS
    finished = read_run_info(paths).get("status") == "finished"
    stopper = state["early_stopping"]
    patience = cfg.TRAIN.PATIENCE
    if patience != -1 and stopper["bad_epochs"] >= patience and done < wanted:
        raise RunStateError(
            f"Run {paths.run_name} stopped early after epoch {done}: the monitored value had not improved for "
            f"{stopper['bad_epochs']} epochs (best at epoch {stopper['best_epoch']}), and TRAIN.PATIENCE is still "
            f"{patience}, so it would stop again at once. To train on, raise the patience in the same command: "
            f"{command} TRAIN.PATIENCE -1 (no early stopping) or a value above {stopper['bad_epochs']}."
        )
    if finished and done >= wanted:
        raise RunStateError(
            f"Run {paths.run_name} in '{paths.job_dir}' has already finished its {done} epochs (TRAIN.EPOCHS "
            f"{wanted}), so there is nothing to resume. To train it longer, give a larger count: "
            f"{command} TRAIN.EPOCHS {2 * done}. Or use a new --run_id, or --overwrite to train again from scratch."
        )
    planned = (yaml.safe_load(checkpoint.get("config") or "{}") or {}).get("TRAIN", {}).get("EPOCHS", wanted)
    schedule = cfg.TRAIN.LR_SCHEDULER.NAME
    if planned != wanted and schedule in WHOLE_RUN_SCHEDULES:
        raise RunStateError(
            f"TRAIN.LR_SCHEDULER.NAME is {schedule}, which plans the learning rate over the run's {planned} epochs; it "
            f"cannot be stretched to {wanted} epochs after the start. Resume with TRAIN.EPOCHS {planned}, or start a "
            f"new run (another --run_id) with TRAIN.EPOCHS {wanted}."
        )
    if done >= wanted:
        return f"Resuming run {paths.run_name}: all {done} epochs are trained; testing again."
    return f"Resuming run {paths.run_name} after epoch {done}, up to epoch {wanted}" + (
        f" (it had finished at {done}; extending it)." if finished else ".")
