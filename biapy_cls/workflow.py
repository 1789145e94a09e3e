"""The classification run's steps: data plan -> model -> training -> calibration -> test -> files.

Data flows one way. The order of a run (checks, claiming the output folder, logs, export) is in
api.py, the one path that both `biapy ...` and the Python API take.
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

from biapy_cls.config.settings import SystemSettings
from biapy_cls.data.dataset import ImageSpec, build_dataset, build_loader
from biapy_cls.data.io import read_file
from biapy_cls.data.plan import (
    DataPlan,
    plan_test_data,
    plan_training_data,
    warn_trained_on,
)
from biapy_cls.data.preprocess import test_only_preprocessing
from biapy_cls.data.transforms import Normalizer, describe_normalizer, make_prepare
from biapy_cls.engine.checkpoint import load_checkpoint
from biapy_cls.engine.checkpoint_match import check_class_names
from biapy_cls.engine.finetune import backbone_parameters
from biapy_cls.engine.inference import predict
from biapy_cls.engine.runtime import (
    Runtime,
    amp_dtype,
    barrier,
    seed_everything,
    unwrap,
)
from biapy_cls.errors import CheckpointError
from biapy_cls.evaluation import calibration
from biapy_cls.evaluation.insights import ExplainSettings, ValidationImages, analyse
from biapy_cls.evaluation.metrics import classification_metrics, format_report, summary_line
from biapy_cls.evaluation.report_html import Predictions, write_report
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
        if checkpoint is not None and not cfg.TRAIN.ENABLE:  # "test later": on the images it was trained on?
            warn_trained_on(plan.test, checkpoint.get("config"))
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


def validation_images(cfg: CN, plan: DataPlan) -> ValidationImages | None:
    """The validation set for the feature embedding: when the run has one that is not the test set itself.
    Read from the files (one pass), so that no second copy of the images is held next to the test set."""
    if plan.val is None or not cfg.TEST.EXPLAIN.ENABLE or cfg.DATA.TEST.USE_VAL_AS_TEST:
        return None
    images = build_dataset(plan.val, plan.spec, False, "", preprocess=plan.preprocess_for("VAL"))
    return ValidationImages(images, np.asarray(plan.val.labels), plan.val.relative_names())


def calibrate(cfg: CN, paths: RunPaths, runtime: Runtime, plan: DataPlan, model: torch.nn.Module,
              normalizer: Normalizer) -> float | None:
    """TEST.CALIBRATE: fit a temperature on the validation set with the final weights; store it in the checkpoints."""
    if plan.val is None:
        log.warning("TEST.CALIBRATE is True but there is no validation set to fit a temperature on: not calibrated.")
        return None
    in_memory = cfg.DATA.TRAIN.IN_MEMORY if cfg.DATA.VAL.FROM_TRAIN else cfg.DATA.VAL.IN_MEMORY
    val_set = build_dataset(plan.val, plan.spec, in_memory, "Loading validation images",
                            preprocess=plan.preprocess_for("VAL"))
    system = SystemSettings.from_cfg(cfg)
    loader = build_loader(val_set, max(cfg.TRAIN.BATCH_SIZE, 64), False, system.seed, system.num_workers,
                          system.pin_memory and runtime.cuda, runtime.rank, runtime.world_size)
    probs = predict(unwrap(model), loader, make_prepare(normalizer, None, runtime.cuda), runtime, desc="Calibrating")
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
         normalizer: Normalizer, temperature: float | None = None,
         history: list[dict] | None = None) -> tuple[np.ndarray, dict | None]:
    """Predict the test set and write predictions, metrics and report; returns (probabilities, metrics).
    `history`: the training epochs for the report's curves (None: read from the run's training log)."""
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
        return probs, None
    labels = plan.test.labels if plan.has_test_labels else None
    raw_probs, names = probs, plan.test.relative_names()
    if temperature is not None:
        probs = calibration.apply_temperature(probs, temperature)
    write_predictions(paths.predictions, names, probs, plan.class_names, labels)
    scaled = f" (temperature-scaled, T = {temperature:.3f})" if temperature else ""
    log.info(f"Predictions: {paths.predictions}{scaled}")

    def insights(metrics: dict | None):
        return analyse(unwrap(model), test_set, make_prepare(normalizer, None, runtime.cuda), runtime.device, probs,
                       labels, raw_probs, plan.class_names, names, paths, ExplainSettings.from_cfg(cfg), metrics,
                       temperature, cfg.SYSTEM.SEED, validation_images(cfg, plan))

    if labels is None:
        counts = np.bincount(probs.argmax(1), minlength=len(plan.class_names))
        log.info("Predicted classes: " + ", ".join(f"{n}: {c}" for n, c in zip(plan.class_names, counts)))
        predictions = Predictions(plan.test.paths, names, probs, None, None, read_file, insights(None))
        write_report(paths, cfg, plan.class_names, predictions, history)
        return probs, None
    metrics = classification_metrics(labels, probs, plan.class_names)
    metrics.update(calibration.calibration_metrics(labels, probs, raw_probs, temperature))
    write_test_metrics(paths.results_dir, metrics)
    plot_confusion(
        metrics["confusion_matrix"]["matrix"],
        plan.class_names,
        paths.charts_dir / f"{paths.run_name}_confusion_matrix.png",
        f"Test confusion matrix - {paths.run_name}",
    )
    log.info("Test results\n" + format_report(metrics, plan.class_names))
    log.info(summary_line(metrics, cfg.TEST.METRICS))
    log.info(f"Calibration: expected calibration error {metrics['expected_calibration_error']:.4f}, Brier score "
             f"{metrics['brier_score']:.4f}" + (f" (before temperature scaling: ECE "
             f"{metrics['calibration']['expected_calibration_error_before']:.4f})" if temperature else ""))
    predictions = Predictions(plan.test.paths, names, probs, labels, metrics, read_file, insights(metrics))
    write_report(paths, cfg, plan.class_names, predictions, history)
    return probs, metrics

