"""The classification run, wired in one place: config -> data -> model -> training -> test -> files.

Data flows one way. Everything that can be checked before heavy work (config, folders, the first
image of each class, the output folder) is checked before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from dataclasses import asdict

import numpy as np
import torch
from yacs.config import CfgNode as CN

from biapy_cls import __version__
from biapy_cls.config import load_config
from biapy_cls.config.settings import SystemSettings
from biapy_cls.data.crossval import all_folds, run_all_folds
from biapy_cls.data.dataset import ImageSpec, build_dataset, build_loader
from biapy_cls.data.io import read_file
from biapy_cls.data.plan import (
    DataPlan,
    data_notes,
    describe,
    plan_test_data,
    plan_training_data,
    write_filtered_samples,
)
from biapy_cls.data.preprocess import test_only_preprocessing
from biapy_cls.data.transforms import Normalizer, describe_normalizer, make_prepare
from biapy_cls.engine.checkpoint import load_checkpoint
from biapy_cls.engine.finetune import backbone_parameters
from biapy_cls.engine.inference import predict
from biapy_cls.engine.resume import check_resume
from biapy_cls.engine.runtime import (
    Runtime,
    amp_dtype,
    run_on_main,
    seed_everything,
    setup_runtime,
    shutdown_runtime,
    unwrap,
)
from biapy_cls.errors import CheckpointError, TrainingInterrupted
from biapy_cls.evaluation.metrics import classification_metrics, format_report, summary_line
from biapy_cls.evaluation.report_html import Predictions, write_report
from biapy_cls.evaluation.reports import plot_confusion, write_predictions, write_test_metrics
from biapy_cls.export import bmz_source as bmz
from biapy_cls.export.bmz import export_run
from biapy_cls.logs import close_logging, setup_logging
from biapy_cls.models import ModelSpec, build_model, pretrained_weights
from biapy_cls.models.prepare import prepare_model, run_model_spec, size_warning
from biapy_cls.models.transfer import freeze_matching, load_fine_tune, load_pretrained
from biapy_cls.outputs import RunPaths, atomic_write_text, check_writable, claim_run, write_run_info
from biapy_cls.training import train

log = logging.getLogger("biapy_cls")


def command_line(args: argparse.Namespace) -> str:
    return " ".join(shlex.quote(str(a)) for a in ["biapy", *getattr(args, "argv", sys.argv[1:])])


def run_from_args(args: argparse.Namespace) -> None:
    """Everything `biapy ...` does after parsing its flags."""
    setup_logging(None)
    paths = RunPaths.create(args.result_dir, args.name, args.run_id, args.config)
    cfg, notices = load_config(args.config, args.opts)
    paths = paths.with_checkpoint_format(cfg.MODEL.OUT_CHECKPOINT_FORMAT)
    check_writable(paths.job_dir)
    runtime = setup_runtime(args.gpu, SystemSettings.from_cfg(cfg).num_cpus)
    try:
        if all_folds(cfg):  # DATA.VAL.CROSS_VAL_FOLD -1: one run per fold, then their summary
            run_all_folds(args, cfg, notices, paths, runtime, run_one)
        else:
            run_one(args, cfg, notices, paths, runtime)
    finally:
        close_logging()
        shutdown_runtime(runtime)


def run_one(args: argparse.Namespace, cfg: CN, notices: list[str], paths: RunPaths, runtime: Runtime,
            resume: bool | None = None) -> None:
    """One run: plan, claim the run folder, train and/or test. `resume` defaults to --resume."""
    resume = args.resume if resume is None else resume
    # Rank 0 reads the folders and claims the output tree; every rank gets its plan, or its error.
    plan, checkpoint = run_on_main(runtime, lambda: plan_data(cfg, paths, resume))
    resume_note = run_on_main(runtime, lambda: claim_run_or_resume(cfg, paths, args, resume))
    setup_logging(paths.log_file, runtime.is_main)
    if runtime.is_main:
        log.info(f"biapy-cls {__version__}: {command_line(args)}")
        for notice in notices:
            log.info(f"Note: {notice}")
        if resume_note:
            log.info(resume_note)
        atomic_write_text(paths.config_file, cfg.dump())
        write_run_info(paths, "running", command=command_line(args), version=__version__, data_notes=data_notes(plan))
        log.info(f"Device: {runtime.device}" + (f", {runtime.world_size} processes" if runtime.distributed else "")
                 + f", {torch.get_num_threads()} CPU thread(s) per process")
        log.info(describe(plan))
        write_filtered_samples(paths, plan)
    try:
        run_classification(cfg, paths, runtime, plan, checkpoint, resume=resume)
    except KeyboardInterrupt:
        if runtime.is_main:
            write_run_info(paths, "interrupted")
        saved = (f"The last completed epoch is saved in '{paths.last_checkpoint}'. Continue with:\n  "
                 f"{resume_command(args)}" if paths.last_checkpoint.exists()
                 else "No epoch had completed, so there is nothing to resume.")
        raise TrainingInterrupted(f"stopped by the user (Ctrl-C). {saved}") from None
    except BaseException:
        if runtime.is_main:
            write_run_info(paths, "failed")
        raise
    if runtime.is_main:
        write_run_info(paths, "finished")
        log.info(f"Done. Outputs are in '{paths.job_dir}'.")


def claim_run_or_resume(cfg: CN, paths: RunPaths, args: argparse.Namespace, resume: bool) -> str | None:
    """Claim the output folder (nothing written yet); with --resume, check the run can go on."""
    claim_run(paths, cfg.TRAIN.ENABLE, resume, args.overwrite)
    if resume:
        return check_resume(cfg, paths, resume_command(args))
    return None


def resume_command(args: argparse.Namespace) -> str:
    """The command that continues this run: the one typed, with --resume and without --overwrite."""
    argv = [a for a in getattr(args, "argv", sys.argv[1:]) if a not in ("--overwrite", "--resume")]
    return " ".join(shlex.quote(str(a)) for a in ["biapy", *argv, "--resume"])


def plan_data(cfg: CN, paths: RunPaths, resume: bool = False) -> tuple[DataPlan, dict | None]:
    """The data plan, and the checkpoint a test-only run predicts with (or training starts from)."""
    checkpoint = None
    if bmz.model_from_package(cfg):  # the model, its classes and its input size come from a BMZ package
        plan = bmz.data_plan(cfg, plan_training_data)
    elif cfg.TRAIN.ENABLE:
        plan = plan_training_data(cfg)
        if cfg.MODEL.LOAD_CHECKPOINT:  # fine-tuning: read now, before the run folder may be replaced
            checkpoint = load_checkpoint(checkpoint_to_load(cfg, paths), "checkpoint to start training from")
        if not resume:  # the model fits the patch and its pretrained weights are here (or stop: nothing written)
            spec = run_model_spec(cfg.MODEL, plan.spec.ndim, plan.spec.channels, plan.spec.spatial,
                                  len(plan.class_names))
            prepare_model(spec, cfg.MODEL, fetch=checkpoint is None)
    else:
        checkpoint = load_checkpoint(checkpoint_to_load(cfg, paths), "checkpoint to test with")
        spec = ImageSpec(**{**checkpoint["image_spec"], "spatial": tuple(checkpoint["image_spec"]["spatial"])})
        if cfg.DATA.PATCH_SIZE and tuple(cfg.DATA.PATCH_SIZE) != (*spec.spatial, spec.channels):
            log.warning(f"DATA.PATCH_SIZE {tuple(cfg.DATA.PATCH_SIZE)} differs from the checkpoint's "
                        f"{(*spec.spatial, spec.channels)}; the checkpoint's size is used.")
        preprocess = test_only_preprocessing(cfg, checkpoint.get("preprocess"), spec.channels, spec.force_rgb)
        plan = DataPlan(list(checkpoint["class_names"]), spec, preprocess=preprocess)
    if cfg.TEST.ENABLE:
        plan = plan_test_data(cfg, plan)
    return plan, checkpoint


def checkpoint_to_load(cfg: CN, paths: RunPaths):
    if cfg.PATHS.CHECKPOINT_FILE:
        return cfg.PATHS.CHECKPOINT_FILE
    if not cfg.MODEL.LOAD_CHECKPOINT:
        raise CheckpointError(
            "TRAIN.ENABLE is False, so the model to test must come from a checkpoint: set MODEL.LOAD_CHECKPOINT "
            "True (uses this job's own checkpoint) and/or PATHS.CHECKPOINT_FILE to a .pth file."
        )
    path = paths.best_checkpoint if cfg.MODEL.LOAD_CHECKPOINT_EPOCH == "best_on_val" else paths.last_checkpoint
    # The job may have been trained with the other MODEL.OUT_CHECKPOINT_FORMAT.
    return next((p for p in (path, path.with_suffix(".pth"), path.with_suffix(".safetensors")) if p.exists()), path)


def run_classification(cfg: CN, paths: RunPaths, runtime: Runtime, plan: DataPlan, checkpoint: dict | None,
                       resume: bool = False) -> None:
    seed_everything(cfg.SYSTEM.SEED)
    n_classes = len(plan.class_names)
    model_cfg = cfg.MODEL  # what the model is built from: this config, or the checkpoint's
    if checkpoint is not None and not cfg.TRAIN.ENABLE:
        model_spec = ModelSpec.from_dict(checkpoint["model_spec"])
        normalizer = Normalizer.from_state_dict(checkpoint["normalizer"])
        model_cfg = CN(CN.load_cfg(checkpoint["model_cfg"]))
        is_bmz = bmz.is_bmz(model_spec)
        model = bmz.model_for(model_cfg, plan, model_spec) if is_bmz else build_model(model_spec, model_cfg)
        model.load_state_dict(checkpoint["model_state"])
    elif cfg.MODEL.SOURCE == "bmz":  # a BioImage Model Zoo package; its own preprocessing is inside the model
        model_spec = bmz.model_spec(plan)
        normalizer = Normalizer(kind="div")
        model = bmz.model_for(cfg.MODEL, plan, model_spec)
        if cfg.TRAIN.ENABLE:
            start_weights(cfg, paths, model, model_spec, checkpoint, resume)
    else:
        model_spec = run_model_spec(cfg.MODEL, plan.spec.ndim, plan.spec.channels, plan.spec.spatial, n_classes)
        # Pretrained library weights bring their own normalisation, kept whether they are loaded now or not.
        weights = pretrained_weights(model_spec, cfg.MODEL)
        normalizer = Normalizer.for_weights(weights.mean, weights.std) if weights else Normalizer.from_cfg(cfg)
        if weights and cfg.TRAIN.ENABLE:
            log.info(f"Pretrained weights {weights.name}: their normalisation replaces DATA.NORMALIZATION.")
            if size_warning(model_spec, weights):
                log.warning(size_warning(model_spec, weights))
        start = cfg.TRAIN.ENABLE and not resume and checkpoint is None and weights is not None
        model = build_model(model_spec, cfg.MODEL, pretrained=start)
        if cfg.TRAIN.ENABLE:
            start_weights(cfg, paths, model, model_spec, checkpoint, resume)
    model.to(runtime.device)
    if runtime.cuda:
        model = model.to(memory_format=torch.channels_last) if plan.spec.ndim == "2D" else model
    n_params = sum(p.numel() for p in model.parameters())
    log.info(f"Model: {model_spec.label} ({n_params / 1e6:.2f} M parameters); normalisation: "
             f"{describe_normalizer(normalizer)}")

    def payload() -> dict:
        return {"model_spec": model_spec.to_dict(), "model_cfg": cfg.MODEL.dump(), "class_names": plan.class_names,
                "image_spec": asdict(plan.spec), "normalizer": normalizer.state_dict(), "config": cfg.dump(),
                "preprocess": plan.preprocess.state_dict() if plan.preprocess is not None else None}

    history: list[dict] = []
    if cfg.TRAIN.ENABLE:
        model, history = train(cfg, paths, runtime, plan, model, normalizer, payload, resume)
    if cfg.TEST.ENABLE:
        test(cfg, paths, runtime, plan, model, normalizer, history)
    elif runtime.is_main:  # a training-only run still gets its report (config and curves)
        write_report(paths, cfg, plan.class_names, history=history)
    if cfg.MODEL.BMZ.EXPORT.ENABLE and runtime.is_main:
        export_run(cfg, paths, plan, unwrap(model), model_spec, model_cfg, normalizer)


def start_weights(cfg: CN, paths: RunPaths, model: torch.nn.Module, model_spec: ModelSpec, checkpoint: dict | None,
                  resume: bool) -> None:
    """Initial weights for training (a checkpoint to fine-tune, or timm weights), then frozen layers.
    A resumed run gets its weights from its last checkpoint instead, but the same layers frozen."""
    if not resume and checkpoint is not None:
        load_fine_tune(
            model, checkpoint, model_spec, str(checkpoint_to_load(cfg, paths)), cfg.MODEL.SKIP_UNMATCHED_LAYERS
        )
    elif not resume and cfg.MODEL.PRETRAINED_WEIGHTS:
        load_pretrained(model, cfg.MODEL.PRETRAINED_WEIGHTS)
    freeze_matching(model, list(cfg.MODEL.FREEZE_LAYERS_MATCHING))
    if cfg.TRAIN.BACKBONE_LR_SCALE == 0:
        for param in backbone_parameters(model):
            param.requires_grad_(False)


def test(cfg: CN, paths: RunPaths, runtime: Runtime, plan: DataPlan, model: torch.nn.Module,
         normalizer: Normalizer, history: list[dict]) -> None:
    """Predict the test images; write predictions.csv, the test metrics (with labels) and the report."""
    test_set = build_dataset(plan.test, plan.spec, cfg.DATA.TEST.IN_MEMORY, "Loading test images",
                             preprocess=plan.preprocess_for("VAL" if cfg.DATA.TEST.USE_VAL_AS_TEST else "TEST"))
    system = SystemSettings.from_cfg(cfg)
    loader = build_loader(test_set, max(cfg.TRAIN.BATCH_SIZE, 64), False, system.seed, system.num_workers,
                          system.pin_memory and runtime.cuda, runtime.rank, runtime.world_size)
    start = time.perf_counter()
    tta = cfg.TEST.AUGMENTATION
    probs = predict(unwrap(model), loader, make_prepare(normalizer, None, runtime.cuda), runtime, tta=tta,
                    tta_mode=cfg.TEST.AUGMENTATION_MODE, amp_dtype=amp_dtype(cfg.TRAIN.AMP, runtime))
    log.info(f"Predicted {len(test_set)} test images in {time.perf_counter() - start:.1f} s"
             + (f" with test-time augmentation ({cfg.TEST.AUGMENTATION_MODE} of flips and rotations)." if tta else "."))
    if not runtime.is_main:
        return
    labels = plan.test.labels if plan.has_test_labels else None
    write_predictions(paths.predictions, plan.test.relative_names(), probs, plan.class_names, labels)
    log.info(f"Predictions: {paths.predictions}")
    if labels is None:
        counts = np.bincount(probs.argmax(1), minlength=len(plan.class_names))
        log.info("Predicted classes: " + ", ".join(f"{n}: {c}" for n, c in zip(plan.class_names, counts)))
        predictions = Predictions(plan.test.paths, plan.test.relative_names(), probs, None, None, read_file)
        write_report(paths, cfg, plan.class_names, predictions, history)
        return
    metrics = classification_metrics(labels, probs, plan.class_names)
    write_test_metrics(paths.results_dir, metrics)
    plot_confusion(
        metrics["confusion_matrix"]["matrix"],
        plan.class_names,
        paths.charts_dir / f"{paths.run_name}_confusion_matrix.png",
        f"Test confusion matrix - {paths.run_name}",
    )
    log.info("Test results\n" + format_report(metrics, plan.class_names))
    log.info(summary_line(metrics, cfg.TEST.METRICS))
    predictions = Predictions(plan.test.paths, plan.test.relative_names(), probs, labels, metrics, read_file)
    write_report(paths, cfg, plan.class_names, predictions, history)
