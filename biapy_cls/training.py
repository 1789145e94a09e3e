"""The training phase of a run, wired: loaders, the FitSetup, the hooks (in their order), resume, fit.

    model, history = train(cfg, paths, runtime, plan, model, normalizer, payload, resume)

Each step is its own function: `build_loaders` (training and validation data), `build_setup` (model,
loss, optimizer, precision), `build_hooks` (everything around the loop, see engine/hooks.py) and
`resume_from` (a checkpoint's `training` state). `train` calls them in order and returns the model with
the best weights, as BiaPy tests with, and the history of the epochs (the training log's rows).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from yacs.config import CfgNode as CN

from biapy_cls.config.settings import SystemSettings, TrainSettings
from biapy_cls.data.aug_samples import write_aug_samples
from biapy_cls.data.augment import Augmenter
from biapy_cls.data.dataset import build_dataset, build_loader, replicate
from biapy_cls.data.mixing import Mixer, MixSettings
from biapy_cls.data.plan import DataPlan
from biapy_cls.data.transforms import Normalizer, describe_normalizer, make_prepare
from biapy_cls.engine.checkpoint import load_checkpoint
from biapy_cls.engine.ema import EmaHook, EmaSettings, ModelEma
from biapy_cls.engine.finetune import BackboneFreezeHook, BackboneFreezer, FineTuning
from biapy_cls.engine.hooks import (
    AugSamplesHook,
    CheckpointFiles,
    CheckpointHook,
    EarlyStopping,
    EarlyStoppingHook,
    HookBase,
    LRScheduleHook,
)
from biapy_cls.engine.losses import build_criterion
from biapy_cls.engine.optim import LRSchedule, auto_warmup_steps, build_optimizer, describe_constant
from biapy_cls.engine.runtime import Runtime, amp_dtype, barrier, unwrap
from biapy_cls.engine.trainer import FitSetup, Trainer
from biapy_cls.errors import CheckpointError
from biapy_cls.evaluation.training_hooks import ChartsHook, EpochLogHook, TensorBoardHook
from biapy_cls.outputs import RunPaths

log = logging.getLogger("biapy_cls")


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader | None
    train_set: Dataset  # the training images once each (the loader may replicate them: DATA.TRAIN.REPLICATE)


def build_loaders(cfg: CN, plan: DataPlan, runtime: Runtime) -> Loaders:
    system = SystemSettings.from_cfg(cfg)
    workers, pin = system.num_workers, system.pin_memory and runtime.cuda
    batch = cfg.TRAIN.BATCH_SIZE
    train_set = build_dataset(plan.train, plan.spec, cfg.DATA.TRAIN.IN_MEMORY, "Loading training images",
                              preprocess=plan.preprocess_for("TRAIN"))
    train_loader = build_loader(replicate(train_set, cfg.DATA.TRAIN.REPLICATE), batch,
                                cfg.AUGMENTOR.SHUFFLE_TRAIN_DATA_EACH_EPOCH, system.seed,
                                workers, pin, runtime.rank, runtime.world_size, train=True)
    val_loader = None
    if plan.val is not None:
        val_in_memory = cfg.DATA.TRAIN.IN_MEMORY if cfg.DATA.VAL.FROM_TRAIN else cfg.DATA.VAL.IN_MEMORY
        val_set = build_dataset(plan.val, plan.spec, val_in_memory, "Loading validation images",
                                preprocess=plan.preprocess_for("VAL"))
        val_loader = build_loader(val_set, batch, cfg.AUGMENTOR.SHUFFLE_VAL_DATA_EACH_EPOCH, system.seed,
                                  workers, pin, runtime.rank, runtime.world_size)
    return Loaders(train_loader, val_loader, train_set)


def for_the_data(train: TrainSettings, loaders: Loaders) -> TrainSettings:
    """Without a validation set the training loss is watched (data/plan.py has refused reduceonplateau then)."""
    return train if loaders.val is not None else train.without_validation()


def scaled_for_world_size(train: TrainSettings, runtime: Runtime) -> TrainSettings:
    """TRAIN.LR_SCALING linear: LR x number of processes, since each step sees that many times more images."""
    batch = train.batch_size * train.accum_iter  # images per optimizer step, per process
    if not runtime.distributed:
        return train
    message = (f"Effective batch size: {batch} per process x {runtime.world_size} processes = "
               f"{batch * runtime.world_size} images per step")
    if train.lr_scaling == "linear":
        train = train.with_lr(train.lr * runtime.world_size)
        message += f"; TRAIN.LR_SCALING linear: learning rate {train.lr:g}"
    log.info(message + ".")
    return train


def build_setup(cfg: CN, train: TrainSettings, plan: DataPlan, runtime: Runtime, model: torch.nn.Module,
                loaders: Loaders, augmenter: Augmenter, normalizer: Normalizer, mixer: Mixer) -> FitSetup:
    """Model (wrapped for DistributedDataParallel when distributed), loss, optimizer, precision, label mixing."""
    if runtime.distributed:
        # A backbone frozen for the first epochs gets no gradients then: DDP must not wait for them.
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[runtime.device.index] if runtime.cuda else None,
            find_unused_parameters=train.freeze_backbone_epochs > 0)
    amp = amp_dtype(train.amp, runtime)
    return FitSetup(
        model=model,
        criterion=build_criterion(cfg, plan.train.labels, len(plan.class_names)).to(runtime.device),
        optimizer=build_optimizer(train, model),
        train_loader=loaders.train,
        val_loader=loaders.val,
        prepare=make_prepare(normalizer, augmenter, runtime.cuda),
        runtime=runtime,
        epochs=train.epochs,
        n_classes=len(plan.class_names),
        metrics=train.metrics,
        monitor=train.monitor,
        accum_iter=train.accum_iter,
        clip_norm=train.clip_norm,
        amp_dtype=amp,
        # A gradient scaler only for fp16, whose small range underflows gradients; bf16 needs none.
        scaler=torch.amp.GradScaler("cuda", enabled=amp == torch.float16),
        mix=mixer if mixer else None,
    )


def build_hooks(cfg: CN, train: TrainSettings, paths: RunPaths, setup: FitSetup, loaders: Loaders,
                augmenter: Augmenter, payload: Callable[[], dict], mixer: Mixer | None = None) -> list[HookBase]:
    """The hooks of a training run, in the order they run at each point. Every process freezes the
    backbone, schedules the LR, averages the weights and watches the monitor; only the main process writes
    files. The EMA hook comes before early stopping and the checkpoints: it may pick its weights for them."""
    model = unwrap(setup.model)
    steps_per_epoch = math.ceil(len(setup.train_loader) / setup.accum_iter)
    schedule = LRSchedule(train, setup.optimizer, steps_per_epoch,
                          auto_warmup_steps(train, model, steps_per_epoch))
    hooks: list[HookBase] = []
    if train.freeze_backbone_epochs:
        hooks.append(BackboneFreezeHook(BackboneFreezer(model, train.freeze_backbone_epochs)))
    hooks.append(LRScheduleHook(schedule))
    ema_settings = EmaSettings.from_cfg(cfg)
    if ema_settings.enable:
        hooks.append(EmaHook(ModelEma(model, ema_settings.decay, ema_settings.warmup)))
        log.info(f"Weight EMA: decay {ema_settings.decay:g}, warm-up {ema_settings.warmup} steps; validated next to "
                 "the raw weights each epoch, the better one checkpointed.")
    hooks.append(EarlyStoppingHook(EarlyStopping(train.monitor, train.patience)))
    if not setup.runtime.is_main:
        return hooks
    if (augmenter or mixer) and cfg.AUGMENTOR.AUG_SAMPLES:
        train_set = loaders.train_set
        hooks.insert(0, AugSamplesHook(lambda: write_aug_samples(
            augmenter, train_set, paths.aug_dir, paths.run_name, cfg.AUGMENTOR.AUG_NUM_SAMPLES,
            cfg.AUGMENTOR.DRAW_GRID, cfg.SYSTEM.SEED, mixer=mixer)))
    files = CheckpointFiles(paths.last_checkpoint, paths.best_checkpoint, paths.epoch_checkpoint)
    return hooks + [EpochLogHook(paths.training_log), TensorBoardHook(paths.tensorboard_dir),
                    CheckpointHook(files, payload, train.save_every),
                    ChartsHook(paths.charts_dir, paths.run_name, train.chart_every)]


def resume_from(trainer: Trainer, paths: RunPaths, architecture: str, layout: int) -> None:
    """Weights and `training` state of this run's last checkpoint (which must hold this model `layout`)."""
    state = load_checkpoint(paths.last_checkpoint, "checkpoint to resume from")
    saved = int(state["model_spec"].get("layout", 1))
    if saved != layout:  # a run started before its architecture changed (docs/models.md)
        raise CheckpointError(
            f"'{paths.last_checkpoint}' holds a {architecture} of model layout {saved}, from an older "
            f"biapy-cls; this one builds layout {layout}, so the run cannot be resumed. Test with its best "
            "checkpoint (TRAIN.ENABLE False, MODEL.LOAD_CHECKPOINT True), or start a new run.")
    unwrap(trainer.model).load_state_dict(state["model_state"])
    trainer.load_state_dict(state["training"])
    log.info(f"Resuming after epoch {trainer.state.start_epoch} of {trainer.setup.epochs} from "
             f"'{paths.last_checkpoint}'.")


def train(cfg: CN, paths: RunPaths, runtime: Runtime, plan: DataPlan, model: torch.nn.Module,
          normalizer: Normalizer, payload: Callable[[], dict], resume: bool) -> tuple[torch.nn.Module, list[dict]]:
    """Train `model`; returns it (unwrapped) holding the best checkpoint's weights, and the epochs' rows."""
    loaders = build_loaders(cfg, plan, runtime)
    if normalizer.needs_fit:
        normalizer.fit(loaders.train_set)
        log.info(f"Normalisation statistics of the training set: {describe_normalizer(normalizer)}")
    augmenter = Augmenter.from_cfg(cfg)
    log.info(f"Augmentation: {augmenter.describe()}")
    mixer = Mixer(MixSettings.from_cfg(cfg), len(plan.class_names))
    if mixer:
        log.info(f"Label mixing: {mixer.describe()}.")
    tuning = FineTuning.from_cfg(cfg)
    if tuning.active:
        log.info(f"Fine-tuning: {tuning.describe()}.")
    settings = scaled_for_world_size(for_the_data(TrainSettings.from_cfg(cfg), loaders), runtime)
    setup = build_setup(cfg, settings, plan, runtime, model, loaders, augmenter, normalizer, mixer)
    trainer = Trainer(setup, build_hooks(cfg, settings, paths, setup, loaders, augmenter, payload, mixer))
    if resume:
        resume_from(trainer, paths, cfg.MODEL.ARCHITECTURE, payload()["model_spec"]["layout"])
    schedule = next(h.schedule for h in trainer.hooks if isinstance(h, LRScheduleHook))
    accum, amp = setup.accum_iter, setup.amp_dtype
    log.info(f"Training for up to {setup.epochs} epochs, {len(setup.train_loader)} batches of "
             f"{settings.batch_size} per epoch" + (" per process" if runtime.distributed else "")
             + (f", one optimizer step every {accum} batches" if accum > 1 else "")
             + (f", each image {replicas} times (DATA.TRAIN.REPLICATE)" if (replicas := cfg.DATA.TRAIN.REPLICATE) > 1
                else "")
             + f"; {settings.optimizer}, lr {settings.lr:g} ({settings.schedule.name or describe_constant(schedule)})"
             + (f", mixed precision {str(amp).removeprefix('torch.')}" if amp else "")
             + f"; best checkpoint and early stopping on {settings.monitor}")
    start = time.perf_counter()
    trainer.fit()
    stopper = next(h.stopper for h in trainer.hooks if isinstance(h, EarlyStoppingHook))
    best = "" if stopper.best is None else f"; best {stopper.monitor} {stopper.best:.4f} at epoch {stopper.best_epoch}"
    log.info(f"Training finished in {time.perf_counter() - start:.1f} s{best}.")
    model = unwrap(setup.model)
    barrier(runtime)  # rank 0 has written the best checkpoint before anyone reads it
    if paths.best_checkpoint.exists():  # test with the best weights, as BiaPy does
        best_state = load_checkpoint(paths.best_checkpoint)
        model.load_state_dict(best_state["model_state"])
        if any(isinstance(h, EmaHook) for h in trainer.hooks):
            log.info(f"The best checkpoint holds the {'EMA' if best_state.get('weights') == 'ema' else 'raw'} weights.")
    return model, trainer.state.history
