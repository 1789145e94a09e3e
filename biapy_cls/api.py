"""The Python API, with BiaPy's names: `BiaPy` (one job: train, test, predict, export) and `build_config`.

    from biapy_cls import BiaPy, build_config
    biapy = BiaPy("my.yaml", result_dir="results", name="my_job", run_id=1, gpu="0")
    biapy.run_job()          # or: history = biapy.train(); results = biapy.test(); biapy.predict(images)

The command line is a thin layer over this class (`biapy ...` builds a BiaPy and calls run_job()), so
both run the same checks in the same order, raise the same errors (biapy_cls.errors, never SystemExit)
and write the same output tree.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from biapy_cls import __version__
from biapy_cls.api_config import GpuArg, build_config, normalize_gpu, read_config_source
from biapy_cls.api_results import Predictions, TestResult, TrainResult
from biapy_cls.errors import ConfigError, UserError

__all__ = ["BiaPy", "build_config"]

log = logging.getLogger("biapy_cls")

# BiaPy's bmz_cfg keys -> MODEL.BMZ.EXPORT keys (BiaPy's run_job builds the one from the other).
BMZ_KEYS = {"description": "DESCRIPTION", "authors": "AUTHORS", "license": "LICENSE", "tags": "TAGS", "cite": "CITE",
            "doc": "DOCUMENTATION", "doc_path": "DOCUMENTATION", "model_name": "MODEL_NAME", "data": "DATASET_INFO",
            "version": "MODEL_VERSION"}

# Stands in for an empty DATA.TEST.PATH while a model loaded for prediction has its config checked.
_NO_TEST_PATH = "<DATA.TEST.PATH not set: give it with update_config before test()>"


class BiaPy:
    """One biapy-cls job, as BiaPy's `BiaPy` class: built from a config, then `train()`, `test()`,
    `predict(images)`, `run_job()` (what `biapy --config ...` does) and `export_model_to_bmz(...)`.

    config: the path of a YAML file, a dict (nested sections or dotted keys, e.g. from `build_config`),
        a yacs CfgNode, or the path of a biapy-cls checkpoint (.pth) to predict with.
    result_dir, name, run_id: outputs go to RESULT_DIR/NAME, run NAME_RUNID, as the CLI's flags. Without
        result_dir nothing is written and only predict() is available.
    gpu: "0", 0, "0,1" or [0, 1]; empty or no CUDA: the CPU.
    world_size, local_rank, dist_on_itp, dist_url, dist_backend: accepted for BiaPy compatibility; the
        process group comes from torch.distributed.run's environment, as with the CLI.
    verbose: print the config notices and data summary while building (the CLI's behaviour).
    save_files: None = write files when result_dir is given; False = never write.
    overrides: KEY VALUE pairs applied after the config (the CLI's trailing arguments).
    resume, overwrite: the CLI's --resume and --overwrite.
    argv: the command line as typed (the CLI gives it), for the log and the way to resume.
    Every mistake raises a biapy_cls.errors.UserError subclass with the CLI's message, before anything is written.
    """

    def __init__(self, config: Any, result_dir: str | Path | None = None, name: str = "unknown_job",
                 run_id: int = 1, gpu: GpuArg = "", world_size: int = 1, local_rank: int = -1,
                 dist_on_itp: bool = False, dist_url: str = "env://", dist_backend: str = "nccl",
                 verbose: bool = False, save_files: bool | None = None, *, overrides: list[str] | tuple = (),
                 resume: bool = False, overwrite: bool = False, argv: list[str] | None = None):
        from biapy_cls.api_config import check_config_path, check_run_id
        from biapy_cls.config.settings import SystemSettings
        from biapy_cls.configure import load_config_data
        from biapy_cls.engine.runtime import setup_runtime
        from biapy_cls.logs import setup_logging
        from biapy_cls.outputs import RunPaths, check_writable
        from biapy_cls.run_safety import check_result_dir_outside_data
        from biapy_cls.workflow import data_folders

        self.verbose = verbose
        if verbose:
            setup_logging(None)
        has_dir = result_dir is not None and str(result_dir) != ""
        self.save_files = has_dir if save_files is None else bool(save_files)
        if self.save_files and not has_dir:
            raise UserError("save_files=True needs a result_dir to write results, checkpoints and logs: "
                            "give result_dir=..., or leave save_files out.")
        self.name, self.run_id, self.gpu = name, check_run_id(run_id), normalize_gpu(gpu)
        from types import SimpleNamespace

        from biapy_cls.workflow import command_line

        self._resume, self._overwrite = resume, overwrite
        # What the run's helpers read of the command line (cross-validation, the --resume hint).
        self._args = SimpleNamespace(argv=list(argv or []), resume=resume, overwrite=overwrite)
        self._command = command_line(self._args) if argv is not None else None
        if argv is None:  # Python, not the command line
            check_config_path(config, result_dir)
        source = read_config_source(config, name)
        self._predict_only = source.from_checkpoint is not None
        base = result_dir if has_dir else Path(tempfile.gettempdir()) / "biapy_cls_ephemeral"  # never written
        self.paths = RunPaths.create(str(base), name, run_id, source.file_name)
        data = source.data
        if self._predict_only and not data.get("DATA.TEST.PATH"):
            data = {**data, "DATA.TEST.PATH": _NO_TEST_PATH}
        self.cfg, self._notices = load_config_data(data, source.source, overrides)
        self.paths = replace(self.paths.with_checkpoint_format(self.cfg.MODEL.OUT_CHECKPOINT_FORMAT),
                             test_only=not self.cfg.TRAIN.ENABLE)
        self._clear_placeholder()
        if self.save_files:
            check_result_dir_outside_data(self.paths.job_dir, data_folders(self.cfg))
            check_writable(self.paths.job_dir)
        self.runtime = setup_runtime(self.gpu, SystemSettings.from_cfg(self.cfg).num_cpus)
        self._model = None  # (model, normalizer, plan, model spec) once trained or loaded
        self._temperature: float | None = None  # TEST.CALIBRATE: fitted after train()
        self._history: list[dict] | None = None  # train()'s epochs, for the report (None: the run's training log)
        self._claimed = self._active = False
        self.train_result: TrainResult | None = None
        self.test_result: TestResult | None = None
        try:
            self._plan_data()
        except BaseException:
            self.close()  # the process group joined above, under torch.distributed.run
            raise

    # ------------------------------------------------------------------ config and data
    def _clear_placeholder(self) -> None:
        if self.cfg.DATA.TEST.PATH == _NO_TEST_PATH:
            self.cfg.defrost()
            self.cfg.DATA.TEST.PATH = ""
            self.cfg.freeze()

    def _plan_data(self) -> None:
        """Read the folders (and the checkpoint to test with) now, so that data mistakes show before any
        output is written. A model loaded for prediction reads its test folder when test() is called."""
        from biapy_cls.engine.runtime import run_on_main
        from biapy_cls.workflow import plan_data

        cfg = self.cfg
        if self._predict_only:
            cfg = cfg.clone()
            cfg.defrost()
            cfg.TEST.ENABLE = False
        self.plan, self._checkpoint = run_on_main(self.runtime, lambda: plan_data(cfg, self.paths, self._resume))

    def update_config(self, updates: dict | None = None, check: bool = False, rebuild: bool = True, **kwargs):
        """Change config values ({"TRAIN.EPOCHS": 5} or TRAIN__EPOCHS=5), checked as at construction.

        SYSTEM.* keys are fixed when the object is built. Changing MODEL.*, PROBLEM.*, DATA.PATCH_SIZE or
        DATA.NORMALIZATION.* drops a model trained or loaded before. `check` and `rebuild` are accepted for
        BiaPy compatibility: the config is always checked and the data always re-read. Returns the config.
        """
        from biapy_cls.config.load import merge
        from biapy_cls.configure import validate

        values = dict(updates or {})
        values.update({key.replace("__", "."): value for key, value in kwargs.items()})
        if not values:
            return self.cfg
        system = sorted(k for k in values if str(k).split(".")[0] == "SYSTEM")
        if system:
            raise ConfigError(f"{', '.join(system)}: SYSTEM.* settings (CPUs, seed, workers) are fixed when the BiaPy "
                              "object is built and cannot be changed with update_config. Build a new BiaPy(...).")
        cfg = self.cfg.clone()
        cfg.defrost()
        notices = merge(cfg, values, "update_config")
        if self._predict_only and not cfg.DATA.TEST.PATH:
            cfg.DATA.TEST.PATH = _NO_TEST_PATH
        notices += validate(cfg)
        cfg.freeze()
        self.cfg, self._notices = cfg, self._notices + notices
        self._clear_placeholder()
        if any(str(k).startswith(("MODEL.", "PROBLEM.", "DATA.PATCH_SIZE", "DATA.NORMALIZATION")) for k in values):
            self._model = None
        self._plan_data()
        return self.cfg

    # ------------------------------------------------------------------ a session: claim, logs, run state
    def _require_files(self, action: str) -> None:
        if not self.save_files:
            raise UserError(f"{action} writes results, checkpoints and logs, but this BiaPy object writes no files "
                            "(no result_dir, or save_files=False). Build it with result_dir=...")

    def _resume_hint(self) -> str:
        from biapy_cls.api_session import resume_hint

        return resume_hint(self)

    def _session(self, training: bool):
        """The run session around a phase (api_session.run_session): lock, logs, run_info, interruptions."""
        from biapy_cls.api_session import run_session

        return run_session(self, training)

    # ------------------------------------------------------------------ the phases
    def train(self) -> TrainResult:
        """Train as configured; returns the history and the checkpoints (the best weights stay loaded)."""
        from biapy_cls import training, workflow
        from biapy_cls.evaluation.report_html import write_report

        if not self.cfg.TRAIN.ENABLE:
            raise UserError("Training is not enabled (TRAIN.ENABLE is False), so train() cannot run. Enable it and "
                            "give the data, e.g. biapy.update_config({'TRAIN.ENABLE': True, 'DATA.TRAIN.PATH': "
                            "'/path/to/train'}), then call train() again.")
        self._require_files("train()")
        cfg, paths, runtime, plan = self.cfg, self.paths, self.runtime, self.plan
        with self._session(training=True):
            model, spec, normalizer = workflow.build_run_model(cfg, paths, runtime, plan, self._checkpoint,
                                                               self._resume)
            payload = workflow.checkpoint_payload(cfg, plan, spec, normalizer)
            model, self._history = training.train(cfg, paths, runtime, plan, model, normalizer, payload, self._resume)
            if cfg.TEST.CALIBRATE:  # a temperature fitted on the validation set, with the best weights
                self._temperature = workflow.calibrate(cfg, paths, runtime, plan, model, normalizer)
            self._model = (model, normalizer, plan, spec)
            self._resume = False  # resumed once; a second train() starts again
            if runtime.is_main and not cfg.TEST.ENABLE:  # a training-only run still gets its report
                write_report(paths, cfg, plan.class_names, history=self._history)
        self.train_result = self._train_result()
        return self.train_result

    def _train_result(self) -> TrainResult:
        from biapy_cls.engine.checkpoint import load_checkpoint
        from biapy_cls.evaluation.reports import read_training_log

        paths = self.paths
        best = {}
        if paths.best_checkpoint.exists():
            best = load_checkpoint(paths.best_checkpoint)["training"]["early_stopping"]
        monitor = self.cfg.TRAIN.CHECKPOINT_MONITOR if self.plan.val is not None else "train_loss"
        return TrainResult(read_training_log(paths.training_log), monitor, best.get("best_epoch"), best.get("best"),
                           paths.best_checkpoint if paths.best_checkpoint.exists() else None,
                           paths.last_checkpoint if paths.last_checkpoint.exists() else None)

    def _has_test_model(self) -> bool:
        """A test-only config names its model: a checkpoint, or a BioImage Model Zoo package (MODEL.SOURCE bmz)."""
        return not self.cfg.TRAIN.ENABLE and (self._checkpoint is not None or self.cfg.MODEL.SOURCE == "bmz")

    def _inference_model(self, action: str):
        """(model, normalizer, plan, model spec): the trained one, or the one from a test-only config's checkpoint."""
        from biapy_cls import workflow

        if self._model is not None:
            return self._model
        if not self._has_test_model():
            raise UserError(f"{action} needs a trained model: call train() first, or build the object from a "
                            "checkpoint with BiaPy.load_workflow_from_model('.../checkpoints/RUN-checkpoint-best.pth') "
                            "(or a config with TRAIN.ENABLE False and MODEL.LOAD_CHECKPOINT True).")
        model, spec, normalizer = workflow.build_run_model(self.cfg, self.paths, self.runtime, self.plan,
                                                           self._checkpoint)
        self._model = (model, normalizer, self.plan, spec)
        return self._model

    def test(self) -> TestResult:
        """Predict the test folder and write predictions.csv, the metrics and the report; returns them."""
        from biapy_cls import workflow
        from biapy_cls.data.plan import plan_test_data
        from biapy_cls.evaluation.reports import predictions_table

        if not self.cfg.TEST.ENABLE or not (self.cfg.DATA.TEST.PATH or self.cfg.DATA.TEST.USE_VAL_AS_TEST):
            raise UserError("Testing is not enabled (TEST.ENABLE is False or DATA.TEST.PATH is empty), so test() "
                            "cannot run. Enable it and give the test folder, e.g. biapy.update_config({'TEST.ENABLE': "
                            "True, 'DATA.TEST.PATH': '/path/to/test'}), then call test() again.")
        self._require_files("test()")
        if self.plan.test is None:  # a model loaded for prediction: its test folder is read now
            self.plan = plan_test_data(self.cfg, self.plan)
        if self._model is None and not self._has_test_model():
            self._inference_model("test()")  # raises its message before anything is written
        with self._session(training=False):
            model, normalizer, _, _ = self._inference_model("test()")  # built here, so the log file tells
            temperature = workflow.test_temperature(self.cfg, self._checkpoint, self._temperature)
            probs, metrics = workflow.test(self.cfg, self.paths, self.runtime, self.plan, model, normalizer,
                                           temperature, self._history)
        plan = self.plan
        labels = plan.test.labels if plan.has_test_labels else None
        table = predictions_table(plan.test.relative_names(), probs, plan.class_names, labels)
        self.test_result = TestResult(table, metrics, list(plan.class_names), list(plan.test.paths),
                                      self.paths.results_dir)
        return self.test_result

    def predict(self, images, gt=None, return_prediction: bool = True, verbose: bool = False,
                batch_size: int = 64) -> Predictions:
        """Classify images held in memory, writing nothing.

        `images`: one image (2D: (y, x) or (y, x, c); 3D: (z, y, x) or (z, y, x, c)), a batch with a leading
        axis, or a list of images of any sizes; any dtype (integers are scaled by their type's range, as
        files are). Exactly the checkpoint's resizing, normalisation and, with TEST.AUGMENTATION, test-time
        augmentation are applied, so the result equals predictions.csv of test() on the same images as files.
        `gt`, `return_prediction` and `verbose` are BiaPy's; gt is not used (see test() for metrics).
        """
        from biapy_cls.api_predict import predict_arrays

        if not return_prediction:
            raise UserError("predict(return_prediction=False) would write files; use test() on a folder instead.")
        model, normalizer, plan, _ = self._inference_model("predict()")
        probs = predict_arrays(images, model, normalizer, plan.spec, self.cfg, self.runtime, batch_size,
                               plan.preprocess_for("TEST"))
        index = probs.argmax(1)
        return Predictions(index, [plan.class_names[k] for k in index], probs, list(plan.class_names))

    def run_job(self) -> None:
        """What `biapy --config ...` does: train and/or test as the config says, then export if asked.
        With DATA.VAL.CROSS_VAL_FOLD -1, one run per fold (RUN_fold<k>) and their summary."""
        from biapy_cls.crossval import all_folds, run_all_folds

        if all_folds(self.cfg):
            run_all_folds(self._args, self.cfg, self._notices, self.paths, self.runtime, self._run_fold)
            return
        self._run_job()

    def _run_fold(self, args, cfg, notices, paths, runtime, resume: bool = False) -> None:
        """One fold of an all-folds cross-validation: this object's job with the fold's config and run folder."""
        saved = (self.cfg, self.paths, self._resume, self._claimed, self._model)
        self.cfg, self.paths, self._resume, self._claimed, self._model = cfg, paths, resume, False, None
        try:
            self._plan_data()
            self._run_job()
        finally:
            self.cfg, self.paths, self._resume, self._claimed, self._model = saved

    def _run_job(self) -> None:
        with self._session(training=self.cfg.TRAIN.ENABLE):
            if self.cfg.TRAIN.ENABLE:
                self.train()
            if self.cfg.TEST.ENABLE:
                self.test()
            export = getattr(getattr(self.cfg.MODEL, "BMZ", None), "EXPORT", None)
            if export is not None and export.get("ENABLE", False):
                self._export(self.cfg)

    def close(self) -> None:
        """Close the log file and leave the process group (under torch.distributed.run)."""
        from biapy_cls.engine.runtime import shutdown_runtime
        from biapy_cls.logs import close_logging

        close_logging()
        shutdown_runtime(self.runtime)

    # ------------------------------------------------------------------ models in and out
    @classmethod
    def load_workflow_from_model(cls, source: str | Path, **run_kwargs) -> BiaPy:
        """A ready-to-predict BiaPy from a biapy-cls checkpoint (.pth): its config, classes, image size and
        normalisation come from the file. `run_kwargs` go to BiaPy(...) (result_dir, name, gpu, ...)."""
        text = str(source)
        if not text.lower().endswith((".pth", ".pt", ".safetensors")) and not Path(text).exists():
            from biapy_cls.errors import CheckpointError

            raise CheckpointError(
                f"load_workflow_from_model('{text}'): a biapy-cls checkpoint (.pth) is expected. Loading a BioImage "
                "Model Zoo model needs the BMZ model source (MODEL.SOURCE bmz), which this version does not include."
            )
        return cls(source, **run_kwargs)

    def export_model_to_bmz(self, building_dir: str | Path | None = None, bmz_cfg: dict | None = None,
                            reuse_original_bmz_config: bool = False) -> Path | None:
        """Package the model for the BioImage Model Zoo (BiaPy's signature): JOB/bmz/<model_name>.zip, moved
        to `building_dir` when given. `bmz_cfg` holds BiaPy's keys (description, authors, license, tags,
        cite, doc, model_name, data, version), which set MODEL.BMZ.EXPORT.*. Returns the package's path."""
        import shutil

        self._exporter()  # names the missing piece before anything else
        self._require_files("export_model_to_bmz()")
        updates = {"MODEL.BMZ.EXPORT.ENABLE": True}
        for key, value in (bmz_cfg or {}).items():
            if key not in BMZ_KEYS:
                raise ConfigError(f"export_model_to_bmz: bmz_cfg has the unknown key {key!r}; valid keys: "
                                  f"{', '.join(BMZ_KEYS)}.")
            updates[f"MODEL.BMZ.EXPORT.{BMZ_KEYS[key]}"] = [value] if key == "data" else value
        if reuse_original_bmz_config:
            updates["MODEL.BMZ.EXPORT.REUSE_BMZ_CONFIG"] = True
        cfg = self._checked(updates)
        path = self._export(cfg)
        if path is not None and building_dir:
            Path(building_dir).mkdir(parents=True, exist_ok=True)
            path = Path(shutil.move(str(path), Path(building_dir) / path.name))
        return path

    @staticmethod
    def _exporter():
        try:
            from biapy_cls.export.bmz import export_run
        except ImportError:
            raise UserError(
                "export_model_to_bmz needs the BioImage Model Zoo exporter (the module biapy_cls.export.bmz), which "
                "this version of biapy-cls does not include. The trained model is in the run's checkpoints/ folder."
            ) from None
        return export_run

    def _export(self, cfg) -> Path | None:
        """JOB/bmz/<MODEL_NAME>.zip from this object's model (written by the main process)."""
        export_run = self._exporter()
        with self._session(training=False):
            model, normalizer, plan, spec = self._inference_model("export_model_to_bmz()")
            if self.runtime.is_main:
                from biapy_cls.engine.runtime import unwrap
                from biapy_cls.workflow import model_config

                return export_run(cfg, self.paths, plan, unwrap(model), spec, model_config(self.cfg, self._checkpoint),
                                  normalizer)
        return None

    def _checked(self, updates: dict):
        """A checked copy of the config with `updates` (self.cfg unchanged)."""
        from biapy_cls.config.load import merge
        from biapy_cls.configure import validate

        cfg = self.cfg.clone()
        cfg.defrost()
        merge(cfg, updates, "export_model_to_bmz")
        if self._predict_only and not cfg.DATA.TEST.PATH:
            cfg.DATA.TEST.PATH = _NO_TEST_PATH
        validate(cfg)
        cfg.DATA.TEST.PATH = self.cfg.DATA.TEST.PATH
        cfg.freeze()
        return cfg

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        cfg = self.cfg
        phases = ", ".join(p for p, on in (("train", cfg.TRAIN.ENABLE), ("test", cfg.TEST.ENABLE)) if on) or "predict"
        spec = self.plan.spec
        rows = [("Job", f"{self.name} (run {self.run_id})"), ("Dimensions", cfg.PROBLEM.NDIM),
                ("Image size", f"{spec.spatial} x {spec.channels} channel(s)"),
                ("Classes", ", ".join(self.plan.class_names) or "from the training folder"),
                ("Model", cfg.MODEL.ARCHITECTURE), ("Phases", phases), ("Device", str(self.runtime.device)),
                ("Outputs", str(self.paths.job_dir) if self.save_files else "none (no result_dir)"),
                ("biapy-cls", __version__)]
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label.ljust(width)}: {value}" for label, value in rows)

    def print_config(self) -> None:
        print(self.cfg.dump())

