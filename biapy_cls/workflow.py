"""The classification run's steps: data plan -> model -> training -> calibration -> test -> files.

Data flows one way. The order of a run (checks, claiming the output folder, logs, export) is in
api.py, the one path that both `biapy ...` and the Python API take.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import asdict

import numpy as np
import torch
from yacs.config import CfgNode as CN

from biapy_cls.data.aug_samples import write_aug_samples
from biapy_cls.data.augment import Augmenter
from biapy_cls.data.dataset import ImageSpec, build_dataset, build_loader, replicate
from biapy_cls.data.mixing import Mixer, MixSettings
from biapy_cls.data.plan import (
    DataPlan,
    plan_test_data,
    plan_training_data,
)
from biapy_cls.data.preprocess import test_only_preprocessing
from biapy_cls.data.transforms import Normalizer, describe_normalizer, to_unit
from biapy_cls.engine.checkpoint import load_checkpoint
from biapy_cls.engine.checkpoint_match import check_class_names
from biapy_cls.engine.ema import EmaSettings, ModelEma
from biapy_cls.engine.finetune import BackboneFreezer, FineTuning, backbone_parameters
from biapy_cls.engine.inference import predict
from biapy_cls.engine.losses import build_criterion
from biapy_cls.engine.optim import LRSchedule, auto_warmup_steps, build_optimizer, describe_constant
from biapy_cls.engine.runtime import (
    Runtime,
    amp_dtype,
    barrier,
    seed_everything,
    unwrap,
)
from biapy_cls.engine.trainer import DEFAULT_METRICS, MONITORS, EarlyStopping, FitSetup, fit, restore_training_state
from biapy_cls.errors import CheckpointError
from biapy_cls.evaluation import calibration
from biapy_cls.evaluation.insights import ExplainSettings, analyse
from biapy_cls.evaluation.metrics import format_report, test_metrics
from biapy_cls.evaluation.report_html import TestOutcome, write_report
from biapy_cls.evaluation.reports import plot_confusion, write_predictions, write_test_metrics
from biapy_cls.export import bmz_source as bmz
from biapy_cls.models import ModelSpec, build_model, pretrained_weights
from biapy_cls.models.prepare import prepare_model, run_model_spec, size_warning
from biapy_cls.models.transfer import freeze_matching, load_fine_tune, load_pretrained
from biapy_cls.outputs import RunPaths

log = logging.getLogger("biapy_cls")


def command_line(args: argparse.Namespace) -> str:
    return " ".join(shlex.quote(str(a)) for a in ["biapy", *getattr(args, "argv", sys.argv[1:])])


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


def plan_data(cfg: CN, paths: RunPaths, resume: bool = False) -> tuple[DataPlan, dict | None]:
    """The data plan, and the checkpoint a test-only run predicts with (or training starts from)."""
    checkpoint = None
    if bmz.model_from_package(cfg):  # the model, its classes and its input size come from a BMZ package
        plan = bmz.data_plan(cfg, plan_training_data)
    elif cfg.TRAIN.ENABLE:
        plan = plan_training_data(cfg)
        if cfg.MODEL.LOAD_CHECKPOINT:  # fine-tuning: read now, before the run folder may be replaced
            source = checkpoint_to_load(cfg, paths)
            checkpoint = load_checkpoint(source, "checkpoint to start training from")
            check_class_names(checkpoint, plan.class_names, str(source), fine_tune=True,
                              skip_unmatched=cfg.MODEL.SKIP_UNMATCHED_LAYERS)
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


def model_config(cfg: CN, checkpoint: dict | None) -> CN:
    """What the model is built from: this config's MODEL section, or a test-only run's checkpoint's."""
    if checkpoint is not None and not cfg.TRAIN.ENABLE:
        return CN(CN.load_cfg(checkpoint["model_cfg"]))
    return cfg.MODEL


def build_run_model(cfg: CN, paths: RunPaths, runtime: Runtime, plan: DataPlan, checkpoint: dict | None,
                    resume: bool = False) -> tuple[torch.nn.Module, ModelSpec, Normalizer]:
    """The model a run works with, on its device: rebuilt from the checkpoint for a test-only run,
    otherwise built from the config (any MODEL.SOURCE) with its starting weights for training."""
    seed_everything(cfg.SYSTEM.SEED)
    n_classes = len(plan.class_names)
    if checkpoint is not None and not cfg.TRAIN.ENABLE:
        model_spec = ModelSpec.from_dict(checkpoint["model_spec"])
        normalizer = Normalizer.from_state_dict(checkpoint["normalizer"])
        model_cfg = model_config(cfg, checkpoint)
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
    return model, model_spec, normalizer


def checkpoint_payload(cfg: CN, plan: DataPlan, model_spec: ModelSpec, normalizer: Normalizer):
    """The static part of every checkpoint, as a function: the normaliser's statistics are measured
    at the start of training, after this is built."""

    def payload() -> dict:
        return {"model_spec": model_spec.to_dict(), "model_cfg": cfg.MODEL.dump(), "class_names": plan.class_names,
                "image_spec": asdict(plan.spec), "normalizer": normalizer.state_dict(), "config": cfg.dump(),
                "preprocess": plan.preprocess.state_dict() if plan.preprocess is not None else None}

    return payload


def test_temperature(cfg: CN, checkpoint: dict | None, fitted: float | None) -> float | None:
    """TEST.CALIBRATE: the temperature to divide test logits by (fitted after training, or the checkpoint's)."""
    if not cfg.TEST.CALIBRATE:
        return None
    temperature = fitted if cfg.TRAIN.ENABLE else (checkpoint or {}).get("temperature")
    if temperature is None and not cfg.TRAIN.ENABLE:
        log.warning("TEST.CALIBRATE is True but the checkpoint holds no temperature (it was trained without "
                    "TEST.CALIBRATE): the test probabilities are not calibrated.")
    return temperature


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
    if cfg.TRAIN.BACKBONE_LR_SCALE == 0:
        for param in backbone_parameters(model):
            param.requires_grad_(False)


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
    mixer = Mixer(MixSettings.from_cfg(cfg), len(plan.class_names))
    if mixer:
        log.info(f"Label mixing: {mixer.describe()}.")
    if (augmenter or mixer) and cfg.AUGMENTOR.AUG_SAMPLES and runtime.is_main and not resume:
        files = write_aug_samples(augmenter, train_set, paths.aug_dir, paths.run_name, cfg.AUGMENTOR.AUG_NUM_SAMPLES,
                                  cfg.AUGMENTOR.DRAW_GRID, cfg.SYSTEM.SEED, mixer=mixer)
        log.info(f"Augmentation samples: {files[0]}")
    ema_settings = EmaSettings.from_cfg(cfg)
    ema = ModelEma(model, ema_settings.decay, ema_settings.warmup) if ema_settings.enable else None
    if ema is not None:
        log.info(f"Weight EMA: decay {ema_settings.decay:g}, warm-up {ema_settings.warmup} steps; validated next to "
                 "the raw weights each epoch, the better one checkpointed.")
    tuning = FineTuning.from_cfg(cfg)
    freezer = BackboneFreezer(model, tuning.freeze_backbone_epochs) if tuning.freeze_backbone_epochs else None
    if tuning.active:
        log.info(f"Fine-tuning: {tuning.describe()}.")
    if runtime.distributed:
        # A backbone frozen for the first epochs gets no gradients then: DDP must not wait for them.
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[runtime.device.index] if runtime.cuda else None,
            find_unused_parameters=freezer is not None)
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
        mix=mixer if mixer else None,
        ema=ema,
        epoch_start=freezer,
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
        best_state = load_checkpoint(paths.best_checkpoint)
        model.load_state_dict(best_state["model_state"])
        if ema is not None:
            log.info(f"The best checkpoint holds the {'EMA' if best_state.get('weights') == 'ema' else 'raw'} weights.")
    return model


def calibrate(cfg: CN, paths: RunPaths, runtime: Runtime, plan: DataPlan, model: torch.nn.Module,
              normalizer: Normalizer) -> float | None:
    """TEST.CALIBRATE: fit a temperature on the validation set with the final weights; store it in the checkpoints."""
    if plan.val is None:
        log.warning("TEST.CALIBRATE is True but there is no validation set to fit a temperature on: not calibrated.")
        return None
    in_memory = cfg.DATA.TRAIN.IN_MEMORY if cfg.DATA.VAL.FROM_TRAIN else cfg.DATA.VAL.IN_MEMORY
    val_set = build_dataset(plan.val, plan.spec, in_memory, "Loading validation images",
                            preprocess=plan.preprocess_for("VAL"))
    loader = build_loader(val_set, max(cfg.TRAIN.BATCH_SIZE, 64), False, cfg.SYSTEM.SEED, num_workers(cfg),
                          cfg.SYSTEM.PIN_MEM and runtime.cuda, runtime.rank, runtime.world_size)
    probs = predict(unwrap(model), loader, make_prepare(normalizer, None, runtime), runtime, desc="Calibrating")
    temperature = calibration.fit_temperature(probs, plan.val.labels)
    log.info(f"Temperature scaling (TEST.CALIBRATE): T = {temperature:.3f} fitted on {len(val_set)} validation "
             f"images; validation NLL {calibration.nll(probs, plan.val.labels):.4f} -> "
             f"{calibration.nll(calibration.apply_temperature(probs, temperature), plan.val.labels):.4f}.")
    if temperature in (calibration.T_MIN, calibration.T_MAX):
        log.warning(f"The temperature reached its bound {temperature:g}: the validation set "
                    f"({(probs.argmax(1) != plan.val.labels).sum()} errors in {len(val_set)} images) is too easy or "
                    "too small to calibrate on; more validation images give a trustworthy temperature.")
    if runtime.is_main:
        calibration.store_temperature([paths.best_checkpoint, paths.last_checkpoint], temperature)
    barrier(runtime)
    return temperature


def test(cfg: CN, paths: RunPaths, runtime: Runtime, plan: DataPlan, model: torch.nn.Module,
         normalizer: Normalizer, temperature: float | None = None) -> tuple[np.ndarray, dict | None]:
    """Predict the test set and write predictions, metrics and report; returns (probabilities, metrics)."""
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
        return probs, None
    labels = plan.test.labels if plan.test_has_labels else None
    raw_probs, names = probs, plan.test.relative_names()
    if temperature is not None:
        probs = calibration.apply_temperature(probs, temperature)
    write_predictions(paths.predictions, names, probs, plan.class_names, labels)
    scaled = f" (temperature-scaled, T = {temperature:.3f})" if temperature else ""
    log.info(f"Predictions: {paths.predictions}{scaled}")

    def insights(metrics: dict | None):
        return analyse(unwrap(model), test_set, make_prepare(normalizer, None, runtime), runtime.device, probs, labels,
                       raw_probs, plan.class_names, names, paths, ExplainSettings.from_cfg(cfg), metrics, temperature,
                       cfg.SYSTEM.SEED)

    if labels is None:
        counts = np.bincount(probs.argmax(1), minlength=len(plan.class_names))
        log.info("Predicted classes: " + ", ".join(f"{n}: {c}" for n, c in zip(plan.class_names, counts)))
        outcome = TestOutcome(plan.test.paths, names, probs, None, None, insights(None))
        write_report(paths, cfg, plan.class_names, outcome)
        return probs, None
    metrics = test_metrics(labels, probs, plan.class_names)
    metrics.update(calibration.calibration_metrics(labels, probs, raw_probs, temperature))
    write_test_metrics(paths.results_dir, metrics)
    plot_confusion(
        metrics["confusion_matrix"]["matrix"],
        plan.class_names,
        paths.charts_dir / f"{paths.run_name}_confusion_matrix.png",
        f"Test confusion matrix - {paths.run_name}",
    )
    log.info("Test results\n" + format_report(metrics, plan.class_names))
    log.info(test_summary(metrics, cfg.TEST.METRICS))
    log.info(f"Calibration: expected calibration error {metrics['expected_calibration_error']:.4f}, Brier score "
             f"{metrics['brier_score']:.4f}" + (f" (before temperature scaling: ECE "
             f"{metrics['calibration']['expected_calibration_error_before']:.4f})" if temperature else ""))
    outcome = TestOutcome(plan.test.paths, names, probs, labels, metrics, insights(metrics))
    write_report(paths, cfg, plan.class_names, outcome)
    return probs, metrics


def test_summary(metrics: dict, names: list[str]) -> str:
    """The final line, with the TEST.METRICS metrics (macro averages)."""
    keys = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "f1": "f1_macro",
            "precision": "precision_macro", "recall": "recall_macro", "roc_auc": "roc_auc_macro"}
    names = list(names) or ["accuracy", "balanced_accuracy", "f1"]
    values = [
        f"{name.replace('_', ' ')}: {metrics[keys[name]]:.4f}" for name in names if metrics.get(keys[name]) is not None
    ]
    return "Test " + "  ".join(values)
