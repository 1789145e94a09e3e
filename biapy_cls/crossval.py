"""Cross-validation over every fold in one command: DATA.VAL.CROSS_VAL True with DATA.VAL.CROSS_VAL_FOLD -1 ('all').

Fold k runs as BiaPy's CROSS_VAL_FOLD k would, in its own run RUN_fold<k> (its own checkpoints, log and
results/RUN_fold<k>/). Then results/RUN/cross_validation.csv and .json hold each fold's metrics with their
mean and standard deviation, and results/RUN/report.html shows them. With --resume finished folds are kept,
an interrupted fold continues from its last checkpoint and the missing ones are run: fold by fold.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import replace

from yacs.config import CfgNode as CN

from biapy_cls.config.settings import MONITOR_MODES
from biapy_cls.errors import RunStateError
from biapy_cls.outputs import RunPaths, atomic_write_text, read_run_info, write_run_info

log = logging.getLogger("biapy_cls")

# test_metrics.json key -> column; validation columns come from the best epoch of the training log
TEST_COLUMNS = {"accuracy": "test_accuracy", "balanced_accuracy": "test_balanced_accuracy", "f1_macro": "test_f1_macro",
                "precision_macro": "test_precision_macro", "recall_macro": "test_recall_macro",
                "roc_auc_macro": "test_roc_auc_macro"}


def all_folds(cfg: CN) -> bool:
    return bool(cfg.DATA.VAL.CROSS_VAL) and cfg.DATA.VAL.CROSS_VAL_FOLD == -1


def fold_paths(paths: RunPaths, fold: int) -> RunPaths:
    return replace(paths, run_name=f"{paths.run_name}_fold{fold}", config_stem=f"{paths.config_stem}_fold{fold}")


def fold_cfg(cfg: CN, fold: int) -> CN:
    out = cfg.clone()
    out.defrost()
    out.DATA.VAL.CROSS_VAL_FOLD = fold
    out.freeze()
    return out


def _check_earlier_folds(args, folds: list[RunPaths], training: bool) -> None:
    """Without --resume or --overwrite, folds left by an earlier run are an error before anything runs."""
    if args.resume or args.overwrite:
        return
    existing = [p.run_name for p in folds if any(f.exists() for f in p.protected_outputs(training))]
    if existing:
        hint = "Add --resume to keep the finished folds and continue with the others, " if training else "Use "
        raise RunStateError(f"'{folds[0].job_dir}' already holds fold run(s) {', '.join(existing)} of this "
                            f"cross-validation. Nothing was changed. {hint}--overwrite to run every fold again, or "
                            "another --run_id or --name.")


def run_all_folds(args, cfg: CN, notices: list[str], paths: RunPaths, runtime, run_one) -> dict:
    """Run fold 1..CROSS_VAL_NFOLD with `run_one(args, cfg, notices, paths, runtime, resume)`; write the summary."""
    from biapy_cls.logs import setup_logging

    n = cfg.DATA.VAL.CROSS_VAL_NFOLD
    folds = [fold_paths(paths, k) for k in range(1, n + 1)]
    training = bool(cfg.TRAIN.ENABLE)
    _check_earlier_folds(args, folds, training)
    for k, fpaths in enumerate(folds, start=1):
        resume = False
        if training and args.resume:
            if read_run_info(fpaths).get("status") == "finished":
                log.info(f"Cross-validation: fold {k} of {n} ({fpaths.run_name}) has already finished; kept.")
                continue
            resume = fpaths.last_checkpoint.exists()
        log.info(f"Cross-validation: fold {k} of {n}, run {fpaths.run_name}" + (" (resumed)" if resume else ""))
        run_one(args, fold_cfg(cfg, k), notices, fpaths, runtime, resume=resume)
    summary = summarise([fold_result(p, k, cfg) for k, p in enumerate(folds, start=1)])
    if runtime.is_main:
        from biapy_cls.workflow import command_line

        setup_logging(paths.log_file, runtime.is_main)
        write_run_info(paths, "running", command=command_line(args))
        write_summary(paths, cfg, summary)
    return summary


def _best_epoch(history: list[dict], monitor: str) -> dict:
    rows = [r for r in history if r.get(monitor) is not None] or history
    if not rows:
        return {}
    lower_is_better = MONITOR_MODES.get(monitor, "min") == "min"
    key = (lambda r: r.get(monitor, math.inf)) if lower_is_better else (lambda r: -r.get(monitor, -math.inf))
    return min(rows, key=key)


def fold_result(paths: RunPaths, fold: int, cfg: CN) -> dict:
    """One fold's row: the validation metrics of its best epoch and, if it was tested, its test metrics."""
    from biapy_cls.evaluation.reports import read_training_log

    row: dict = {"fold": fold, "run": paths.run_name}
    best = _best_epoch(read_training_log(paths.training_log), str(cfg.TRAIN.CHECKPOINT_MONITOR))
    if best:
        row["best_epoch"] = best.get("epoch")
        row.update({k: v for k, v in best.items() if k.startswith("val_") and isinstance(v, (int, float))})
    try:
        metrics = json.loads((paths.results_dir / "test_metrics.json").read_text())
    except (OSError, ValueError):
        metrics = {}
    row.update({col: metrics[key] for key, col in TEST_COLUMNS.items() if metrics.get(key) is not None})
    return row


def summarise(rows: list[dict]) -> dict:
    """Per-fold rows with the mean and the sample standard deviation (ddof 1) of every metric all folds have."""
    first = rows[0] if rows else {}
    columns = [c for c in first if c not in ("fold", "run", "best_epoch") and all(c in r for r in rows)]
    mean, std = {}, {}
    for c in columns:
        values = [float(r[c]) for r in rows]
        mean[c] = sum(values) / len(values)
        std[c] = math.sqrt(sum((v - mean[c]) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"n_folds": len(rows), "metrics": columns, "folds": rows, "mean": mean, "std": std}


def summary_csv(summary: dict) -> str:
    out = io.StringIO()
    fields = ["fold", "run", "best_epoch", *summary["metrics"]]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary["folds"])
    writer.writerow({"fold": "mean", **summary["mean"]})
    writer.writerow({"fold": "std", **summary["std"]})
    return out.getvalue()


def describe_summary(summary: dict) -> str:
    return "; ".join(f"{c} {summary['mean'][c]:.4f} ± {summary['std'][c]:.4f}" for c in summary["metrics"])


def write_summary(paths: RunPaths, cfg: CN, summary: dict) -> None:
    """results/RUN/cross_validation.csv and .json, the run's report and run_info."""
    from biapy_cls.evaluation.report_html import write_report

    atomic_write_text(paths.results_dir / "cross_validation.json", json.dumps(summary, indent=2))
    atomic_write_text(paths.results_dir / "cross_validation.csv", summary_csv(summary))
    atomic_write_text(paths.config_file, cfg.dump())
    write_run_info(paths, "finished", cross_validation=True, folds=[r["run"] for r in summary["folds"]])
    log.info(f"Cross-validation over {summary['n_folds']} folds (mean ± standard deviation): "
             f"{describe_summary(summary)}")
    log.info(f"Cross-validation results: {paths.results_dir / 'cross_validation.csv'}")
    write_report(paths, cfg, _class_names(paths, summary))


def _class_names(paths: RunPaths, summary: dict) -> list[str]:
    """The classes, from the first fold's checkpoint (the parent run has none of its own)."""
    from biapy_cls.engine.checkpoint import load_checkpoint

    for row in summary["folds"]:
        fold = replace(paths, run_name=row["run"])
        for candidate in (fold.best_checkpoint, fold.last_checkpoint):
            if candidate.exists():
                try:
                    return list(load_checkpoint(candidate)["class_names"])
                except Exception:  # noqa: BLE001 - the report then just lists no classes
                    pass
    return []
