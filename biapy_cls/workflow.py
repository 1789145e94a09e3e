"""The classification run, wired in one place: config -> data -> model -> training -> test -> files.

Data flows one way. Everything that can be checked before heavy work (config, folders, the first
image of each class, the output folder) is checked before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, replace

import numpy as np
import torch
from yacs.config import CfgNode as CN

from biapy_cls import __version__
from biapy_cls.config import load_config
from biapy_cls.data.aug_samples import write_aug_samples
from biapy_cls.data.augment import Augmenter
from biapy_cls.data.crossval import all_folds, run_all_folds
from biapy_cls.data.dataset import ImageSpec, build_dataset, build_loader, replicate
from biapy_cls.data.plan import (
    DataPlan,
    data_notes,
    describe,
    plan_test_data,
    plan_training_data,
    write_filtered_samples,
)
from biapy_cls.data.preprocess import test_only_preprocessing
from biapy_cls.data.transforms import Normalizer, describe_normalizer, to_unit
from biapy_cls.engine.checkpoint import load_checkpoint
from biapy_cls.engine.checkpoint_match import check_class_names, check_resumable_model
from biapy_cls.engine.inference import predict
from biapy_cls.engine.losses import build_criterion
from biapy_cls.engine.optim import LRSchedule, auto_warmup_steps, build_optimizer, describe_constant
from biapy_cls.engine.resume import check_resume
from biapy_cls.engine.runtime import (
    Runtime,
    amp_dtype,
    barrier,
    run_on_main,
    seed_everything,
    setup_runtime,
    shutdown_runtime,
    unwrap,
)
from biapy_cls.engine.trainer import DEFAULT_METRICS, MONITORS, EarlyStopping, FitSetup, fit, restore_training_state
from biapy_cls.errors import CheckpointError, TrainingInterrupted
from biapy_cls.evaluation.metrics import format_report, test_metrics
from biapy_cls.evaluation.report_html import TestOutcome, write_report
from biapy_cls.evaluation.reports import plot_confusion, write_predictions, write_test_metrics
from biapy_cls.logs import close_logging, setup_logging
from biapy_cls.models import ModelSpec, build_model
from biapy_cls.models.transfer import freeze_matching, load_fine_tune, load_pretrained
from biapy_cls.outputs import RunPaths, atomic_write_text, check_writable, claim_run, write_run_info
from biapy_cls.run_safety import RunGuard, check_result_dir_outside_data
from biapy_cls.signals import exit_code, sigterm_as_interrupt, stop_cause

log = logging.getLogger("biapy_cls")


def command_line(args: argparse.Namespace) -> str:
    return " ".join(shlex.quote(str(a)) for a in ["biapy", *getattr(args, "argv", sys.argv[1:])])


def run_from_args(args: argparse.Namespace) -> None:
    """Everything `biapy ...` does after parsing its flags."""
    setup_logging(None)
    paths = RunPaths.create(args.result_dir, args.name, args.run_id, args.config)
    cfg, notices = load_config(args.config, args.opts)
    paths = replace(paths, test_only=not cfg.TRAIN.ENABLE)
    check_result_dir_outside_data(paths.job_dir, data_folders(cfg))
    check_writable(paths.job_dir)
    runtime = setup_runtime(args.gpu, cfg.SYSTEM.NUM_CPUS)
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
    """One run: plan, lock and claim the run folder, train and/or test. `resume` defaults to --resume."""
    resume = args.resume if resume is None else resume
    guard = RunGuard(paths)  # the run lock and --overwrite's safety copy (run_safety)
    try:
        # Rank 0 reads the folders and claims the output tree; every rank gets its plan, or its error.
        plan, checkpoint = run_on_main(runtime, lambda: plan_data(cfg, paths))
        resume_note = run_on_main(runtime, lambda: claim_run_or_resume(cfg, paths, args, resume, guard, plan))
        setup_logging(paths.log_file, runtime.is_main)
        if runtime.is_main:
            log.info(f"biapy-cls {__version__}: {command_line(args)}")
            for notice in notices:
                log.info(f"Note: {notice}")
            if resume_note:
                log.info(resume_note)
            atomic_write_text(paths.config_file, cfg.dump())
            write_run_info(paths, "running", command=command_line(args), version=__version__,
                           data_notes=data_notes(plan))
            log.info(f"Device: {runtime.device}" + (f", {runtime.world_size} processes" if runtime.distributed else "")
                     + f", {torch.get_num_threads()} CPU thread(s) per process")
            log.info(describe(plan))
            write_filtered_samples(paths, plan)
        try:
            with sigterm_as_interrupt():
                run_classification(cfg, paths, runtime, plan, checkpoint, resume=resume)
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (signals.Terminated)
            if runtime.is_main:
                write_run_info(paths, "interrupted")
                guard.ended(paths.last_checkpoint if cfg.TRAIN.ENABLE else None)
            if not cfg.TRAIN.ENABLE:
                saved = ("Only the test was running and nothing is lost: run the same command again to test:\n  "
                         + command_line(args))
            elif paths.last_checkpoint.exists():
                saved = (f"The last completed epoch is saved in '{paths.last_checkpoint}'. Continue with:\n  "
                         f"{resume_command(args)}")
            else:
                saved = "No epoch had completed, so there is nothing to resume."
            stopped = TrainingInterrupted(f"stopped by {stop_cause(err)}. {saved}")
            stopped.exit_code = exit_code(err, stopped.exit_code)
            raise stopped from None
        except BaseException:
            if runtime.is_main:
                try:  # on a full disk this write fails too: the error to report is the first one
                    write_run_info(paths, "failed")
                except OSError:
                    log.warning(f"Could not record the failure in '{paths.run_info}'.")
                guard.ended(paths.last_checkpoint if cfg.TRAIN.ENABLE else None)
            raise
        if runtime.is_main:
            write_run_info(paths, "finished")
            guard.ended(None, finished=True)
            log.info(f"Done. Outputs are in '{paths.job_dir}'.")
    finally:
        guard.release()


def claim_run_or_resume(cfg: CN, paths: RunPaths, args: argparse.Namespace, resume: bool, guard: RunGuard,
                        plan: DataPlan) -> str | None:
    """Lock and claim the output folder (nothing else written yet); with --resume, check the run can go on."""

    def same_task(checkpoint: dict) -> None:
        source = str(paths.last_checkpoint)
        check_class_names(checkpoint, plan.class_names, source)
        spec = ModelSpec(cfg.MODEL.ARCHITECTURE, plan.spec.ndim, plan.spec.channels, len(plan.class_names),
                         plan.spec.spatial)
        check_resumable_model(checkpoint, spec.to_dict(), cfg.MODEL.dump(), source)

    guard.lock()
    try:
        claim_run(paths, cfg.TRAIN.ENABLE, resume, args.overwrite, set_aside=guard.set_aside)
        note = check_resume(cfg, paths, resume_command(args), same_task) if resume else None
    except BaseException:
        guard.release(refused=True)
        raise
    guard.clean_temporaries()
    return note


def data_folders(cfg: CN) -> dict[str, str]:
    """The folders this run reads images from, by key."""
    folders = {}
    if cfg.TRAIN.ENABLE:
        folders["DATA.TRAIN.PATH"] = cfg.DATA.TRAIN.PATH
        if not cfg.DATA.VAL.FROM_TRAIN:
            folders["DATA.VAL.PATH"] = cfg.DATA.VAL.PATH
    if cfg.TEST.ENABLE and not cfg.DATA.TEST.USE_VAL_AS_TEST:
        folders["DATA.TEST.PATH"] = cfg.DATA.TEST.PATH
    return folders


def resume_command(args: argparse.Namespace) -> str:
    """The command that continues this run: the one typed, with --resume and without --overwrite."""
    argv = [a for a in getattr(args, "argv", sys.argv[1:]) if a not in ("--overwrite", "--resume")]
    return " ".join(shlex.quote(str(a)) for a in ["biapy", *argv, "--resume"])


def plan_data(cfg: CN, paths: RunPaths) -> tuple[DataPlan, dict | None]:
    """The data plan, and the checkpoint a test-only run predicts with (or training starts from)."""
    checkpoint = None
    if cfg.TRAIN.ENABLE:
        plan = plan_training_data(cfg)
        if cfg.MODEL.LOAD_CHECKPOINT:  # fine-tuning: read now, before the run folder may be replaced
            source = checkpoint_to_load(cfg, paths)
            checkpoint = load_checkpoint(source, "checkpoint to start training from")
            check_class_names(checkpoint, plan.class_names, str(source), fine_tune=True,
                              skip_unmatched=cfg.MODEL.SKIP_UNMATCHED_LAYERS)
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
    return paths.best_checkpoint if cfg.MODEL.LOAD_CHECKPOINT_EPOCH == "best_on_val" else paths.last_checkpoint


def make_prepare(normalizer: Normalizer, augmenter: Augmenter | None, runtime: Runtime):
    """The batch function: unit scale -> augmentation (training only) -> normalisation."""

    def prepare(images: torch.Tensor, value_range: float, train: bool) -> torch.Tensor:
        x = to_unit(images, value_range)
        if train and augmenter:
            x = augmenter(x)
        x = normalizer(x, value_range)
        if runtime.cuda and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    return prepare


def num_workers(cfg: CN) -> int:
    """SYSTEM.NUM_WORKERS; -1 = up to 4, within SYSTEM.NUM_CPUS."""
    workers = cfg.SYSTEM.NUM_WORKERS
    cpus = (os.cpu_count() or 1) if cfg.SYSTEM.NUM_CPUS == -1 else cfg.SYSTEM.NUM_CPUS
    return min(4, cpus) if workers == -1 else workers


def run_classification(cfg: CN, paths: RunPaths, runtime: Runtime, plan: DataPlan, checkpoint: dict | None,
                       resume: bool = False) -> None:
    seed_everything(cfg.SYSTEM.SEED)
    n_classes = len(plan.class_names)
    if checkpoint is not None and not cfg.TRAIN.ENABLE:
        model_spec = ModelSpec.from_dict(checkpoint["model_spec"])
        normalizer = Normalizer.from_state_dict(checkpoint["normalizer"])
        model = build_model(model_spec, CN(CN.load_cfg(checkpoint["model_cfg"])))
        model.load_state_dict(checkpoint["model_state"])
    else:
        model_spec = ModelSpec(cfg.MODEL.ARCHITECTURE, plan.spec.ndim, plan.spec.channels, n_classes, plan.spec.spatial)
        normalizer = Normalizer.from_cfg(cfg)
        model = build_model(model_spec, cfg.MODEL)
        if cfg.TRAIN.ENABLE:
            start_weights(cfg, paths, model, model_spec, checkpoint, resume)
    model.to(runtime.device)
    if runtime.cuda:
        model = model.to(memory_format=torch.channels_last) if plan.spec.ndim == "2D" else model
    n_params = sum(p.numel() for p in model.parameters())
    log.info(f"Model: {model_spec.architecture} ({n_params / 1e6:.2f} M parameters); normalisation: "
             f"{describe_normalizer(normalizer)}")

    def payload() -> dict:
        return {"model_spec": model_spec.to_dict(), "model_cfg": cfg.MODEL.dump(), "class_names": plan.class_names,
                "image_spec": asdict(plan.spec), "normalizer": normalizer.state_dict(), "config": cfg.dump(),
                "preprocess": plan.preprocess.state_dict() if plan.preprocess is not None else None}

    if cfg.TRAIN.ENABLE:
        model = train(cfg, paths, runtime, plan, model, normalizer, payload, resume)
    if cfg.TEST.ENABLE:
        test(cfg, paths, runtime, plan, model, normalizer)
    elif runtime.is_main:  # a training-only run still gets its report (config and curves)
        write_report(paths, cfg, plan.class_names)


def scaled_for_world_size(cfg: CN, runtime: Runtime) -> CN:
    """TRAIN.LR_SCALING linear: LR x number of processes, since each step sees that many times more images."""
    batch = cfg.TRAIN.BATCH_SIZE * cfg.TRAIN.ACCUM_ITER  # images per optimizer step, per process
    if not runtime.distributed:
        return cfg
    message = (f"Effective batch size: {batch} per process x {runtime.world_size} processes = "
               f"{batch * runtime.world_size} images per step")
    if cfg.TRAIN.LR_SCALING == "linear":
        cfg = cfg.clone()
        cfg.defrost()
        cfg.TRAIN.LR = cfg.TRAIN.LR * runtime.world_size
        message += f"; TRAIN.LR_SCALING linear: learning rate {cfg.TRAIN.LR:g}"
    log.info(message + ".")
    return cfg


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


def train(cfg: CN, paths: RunPaths, runtime: Runtime, plan: DataPlan, model: torch.nn.Module,
          normalizer: Normalizer, payload, resume: bool) -> torch.nn.Module:
    workers, pin = num_workers(cfg), cfg.SYSTEM.PIN_MEM and runtime.cuda
    batch = cfg.TRAIN.BATCH_SIZE
    train_set = build_dataset(plan.train, plan.spec, cfg.DATA.TRAIN.IN_MEMORY, "Loading training images",
                              preprocess=plan.preprocess_for("TRAIN"))
    train_loader = build_loader(replicate(train_set, cfg.DATA.TRAIN.REPLICATE), batch,
                                cfg.AUGMENTOR.SHUFFLE_TRAIN_DATA_EACH_EPOCH, cfg.SYSTEM.SEED,
                                workers, pin, runtime.rank, runtime.world_size, train=True)
    val_loader = None
    if plan.val is not None:
        val_in_memory = cfg.DATA.TRAIN.IN_MEMORY if cfg.DATA.VAL.FROM_TRAIN else cfg.DATA.VAL.IN_MEMORY
        val_set = build_dataset(plan.val, plan.spec, val_in_memory, "Loading validation images",
                                preprocess=plan.preprocess_for("VAL"))
        val_loader = build_loader(val_set, batch, cfg.AUGMENTOR.SHUFFLE_VAL_DATA_EACH_EPOCH, cfg.SYSTEM.SEED,
                                  workers, pin, runtime.rank, runtime.world_size)
    if normalizer.needs_fit:
        normalizer.fit(train_set)
        log.info(f"Normalisation statistics of the training set: {describe_normalizer(normalizer)}")
    augmenter = Augmenter(cfg)
    log.info(f"Augmentation: {augmenter.describe()}")
    if augmenter and cfg.AUGMENTOR.AUG_SAMPLES and runtime.is_main and not resume:
        files = write_aug_samples(augmenter, train_set, paths.aug_dir, paths.run_name, cfg.AUGMENTOR.AUG_NUM_SAMPLES,
                                  cfg.AUGMENTOR.DRAW_GRID, cfg.SYSTEM.SEED)
        log.info(f"Augmentation samples: {files[0]}")
    if runtime.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[runtime.device.index] if runtime.cuda else None)
    n_classes = len(plan.class_names)
    monitor = cfg.TRAIN.CHECKPOINT_MONITOR if val_loader is not None else "train_loss"
    cfg = scaled_for_world_size(cfg, runtime)
    optimizer = build_optimizer(cfg, model)
    accum = cfg.TRAIN.ACCUM_ITER
    steps_per_epoch = math.ceil(len(train_loader) / accum)
    amp = amp_dtype(cfg.TRAIN.AMP, runtime)
    setup = FitSetup(
        model=model,
        criterion=build_criterion(cfg, plan.train.labels, n_classes).to(runtime.device),
        optimizer=optimizer,
        schedule=LRSchedule(cfg, optimizer, steps_per_epoch, MONITORS[monitor],
                            auto_warmup_steps(cfg, unwrap(model), steps_per_epoch)),
        train_loader=train_loader,
        val_loader=val_loader,
        prepare=make_prepare(normalizer, augmenter, runtime),
        runtime=runtime,
        paths=paths,
        epochs=cfg.TRAIN.EPOCHS,
        n_classes=n_classes,
        early_stopping=EarlyStopping(monitor, cfg.TRAIN.PATIENCE),
        chart_every=cfg.LOG.CHART_CREATION_FREQ,
        checkpoint_payload=payload,
        metrics=tuple(cfg.TRAIN.METRICS) or DEFAULT_METRICS,
        accum_iter=accum,
        clip_norm=cfg.TRAIN.GRADIENT_CLIP_NORM,
        amp_dtype=amp,
        # A gradient scaler only for fp16, whose small range underflows gradients; bf16 needs none.
        scaler=torch.amp.GradScaler("cuda", enabled=amp == torch.float16),
        save_every=cfg.MODEL.SAVE_CKPT_FREQ,
    )
    if resume:
        state = load_checkpoint(paths.last_checkpoint, "checkpoint to resume from")
        layout, ours = int(state["model_spec"].get("layout", 1)), payload()["model_spec"]["layout"]
        if layout != ours:  # a run started before its architecture changed (docs/models.md)
            raise CheckpointError(
                f"'{paths.last_checkpoint}' holds a {cfg.MODEL.ARCHITECTURE} of model layout {layout}, from an older "
                f"biapy-cls; this one builds layout {ours}, so the run cannot be resumed. Test with its best "
                "checkpoint (TRAIN.ENABLE False, MODEL.LOAD_CHECKPOINT True), or start a new run.")
        unwrap(model).load_state_dict(state["model_state"])
        restore_training_state(setup, state["training"])
        log.info(f"Resuming after epoch {setup.start_epoch} of {setup.epochs} from '{paths.last_checkpoint}'.")
    log.info(f"Training for up to {setup.epochs} epochs, {len(train_loader)} batches of {batch} per epoch"
             + (" per process" if runtime.distributed else "")
             + (f", one optimizer step every {accum} batches" if accum > 1 else "")
             + (f", each image {replicas} times (DATA.TRAIN.REPLICATE)" if (replicas := cfg.DATA.TRAIN.REPLICATE) > 1
                else "")
             + f"; {cfg.TRAIN.OPTIMIZER}, lr {cfg.TRAIN.LR:g} "
             + f"({cfg.TRAIN.LR_SCHEDULER.NAME or describe_constant(setup.schedule)})"
             + (f", mixed precision {str(amp).removeprefix('torch.')}" if amp else "")
             + f"; best checkpoint and early stopping on {monitor}")
    start = time.perf_counter()
    fit(setup)
    stopper = setup.early_stopping
    best = (
        f"; best {stopper.monitor} {stopper.best:.4f} at epoch {stopper.best_epoch}" if stopper.best is not None else ""
    )
    log.info(f"Training finished in {time.perf_counter() - start:.1f} s{best}.")
    model = unwrap(model)
    barrier(runtime)  # rank 0 has written the best checkpoint before anyone reads it
    if paths.best_checkpoint.exists():  # test with the best weights, as BiaPy does
        model.load_state_dict(load_checkpoint(paths.best_checkpoint)["model_state"])
    return model


def test(cfg: CN, paths: RunPaths, runtime: Runtime, plan: DataPlan, model: torch.nn.Module,
         normalizer: Normalizer) -> None:
    test_set = build_dataset(plan.test, plan.spec, cfg.DATA.TEST.IN_MEMORY, "Loading test images",
                             preprocess=plan.preprocess_for("VAL" if cfg.DATA.TEST.USE_VAL_AS_TEST else "TEST"))
    loader = build_loader(test_set, max(cfg.TRAIN.BATCH_SIZE, 64), False, cfg.SYSTEM.SEED, num_workers(cfg),
                          cfg.SYSTEM.PIN_MEM and runtime.cuda, runtime.rank, runtime.world_size)
    start = time.perf_counter()
    tta = cfg.TEST.AUGMENTATION
    probs = predict(unwrap(model), loader, make_prepare(normalizer, None, runtime), runtime, tta=tta,
                    tta_mode=cfg.TEST.AUGMENTATION_MODE, amp_dtype=amp_dtype(cfg.TRAIN.AMP, runtime))
    log.info(f"Predicted {len(test_set)} test images in {time.perf_counter() - start:.1f} s"
             + (f" with test-time augmentation ({cfg.TEST.AUGMENTATION_MODE} of flips and rotations)." if tta else "."))
    if not runtime.is_main:
        return
    labels = plan.test.labels if plan.test_has_labels else None
    write_predictions(paths.predictions, plan.test.relative_names(), probs, plan.class_names, labels)
    log.info(f"Predictions: {paths.predictions}")
    if labels is None:
        counts = np.bincount(probs.argmax(1), minlength=len(plan.class_names))
        log.info("Predicted classes: " + ", ".join(f"{n}: {c}" for n, c in zip(plan.class_names, counts)))
        write_report(
            paths, cfg, plan.class_names, TestOutcome(plan.test.paths, plan.test.relative_names(), probs, None, None)
        )
        return
    metrics = test_metrics(labels, probs, plan.class_names)
    write_test_metrics(paths.results_dir, metrics)
    plot_confusion(
        metrics["confusion_matrix"]["matrix"],
        plan.class_names,
        paths.charts_dir / f"{paths.run_name}_confusion_matrix.png",
        f"Test confusion matrix - {paths.run_name}",
    )
    log.info("Test results\n" + format_report(metrics, plan.class_names))
    log.info(test_summary(metrics, cfg.TEST.METRICS))
    write_report(
        paths, cfg, plan.class_names, TestOutcome(plan.test.paths, plan.test.relative_names(), probs, labels, metrics)
    )


def test_summary(metrics: dict, names: list[str]) -> str:
    """The final line, with the TEST.METRICS metrics (macro averages)."""
    keys = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "f1": "f1_macro",
            "precision": "precision_macro", "recall": "recall_macro", "roc_auc": "roc_auc_macro"}
    names = list(names) or ["accuracy", "balanced_accuracy", "f1"]
    values = [
        f"{name.replace('_', ' ')}: {metrics[keys[name]]:.4f}" for name in names if metrics.get(keys[name]) is not None
    ]
    return "Test " + "  ".join(values)
