"""Where a run writes, and the rules that keep earlier results safe.

    JOB = RESULT_DIR/NAME, RUN = NAME_RUNID
    JOB/config_files/<config stem>_<run_id>.yaml
    JOB/checkpoints/RUN-checkpoint-best.pth, RUN-checkpoint-last.pth (.safetensors: MODEL.OUT_CHECKPOINT_FORMAT)
    JOB/logs/RUN_log.txt, RUN_training_log.json
    JOB/results/RUN/{predictions.csv, test_metrics.json, test_metrics.csv, report.html, run_info.json,
                     charts/, aug/, tensorboard/}

`run_info.json` records whether the run is running, interrupted or finished. A finished run is never
replaced without --overwrite; an unfinished one is continued with --resume.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from biapy_cls.errors import RunStateError, UserError


@dataclass(frozen=True)
class RunPaths:
    job_dir: Path
    run_name: str
    config_stem: str
    run_id: int
    checkpoint_suffix: str = ".pth"  # ".safetensors" with MODEL.OUT_CHECKPOINT_FORMAT safetensors
    test_only: bool = False  # a test-only run writes its own config copy and run_info beside the training run's

    @classmethod
    def create(cls, result_dir: str, name: str, run_id: int, config_path: str) -> RunPaths:
        if not name or any(sep in name for sep in ("/", "\\")) or name in (".", ".."):
            raise UserError(f"--name '{name}' must be a plain folder name (no '/' or '\\'), e.g. --name my_job.")
        stem = Path(config_path).name
        for suffix in (".yaml", ".yml"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
        return cls(Path(result_dir).expanduser().absolute() / name, f"{name}_{run_id}", stem, run_id)

    def with_checkpoint_format(self, fmt: str) -> RunPaths:
        """The same run writing MODEL.OUT_CHECKPOINT_FORMAT checkpoints: pth or safetensors."""
        return replace(self, checkpoint_suffix=f".{fmt}")

    @property
    def config_file(self) -> Path:
        suffix = "_test" if self.test_only else ""
        return self.job_dir / "config_files" / f"{self.config_stem}_{self.run_id}{suffix}.yaml"

    @property
    def checkpoint_dir(self) -> Path:
        return self.job_dir / "checkpoints"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoint_dir / f"{self.run_name}-checkpoint-best{self.checkpoint_suffix}"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / f"{self.run_name}-checkpoint-last{self.checkpoint_suffix}"

    @property
    def log_dir(self) -> Path:
        return self.job_dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.run_name}_log.txt"

    @property
    def training_log(self) -> Path:
        return self.log_dir / f"{self.run_name}_training_log.json"

    @property
    def results_dir(self) -> Path:
        return self.job_dir / "results" / self.run_name

    @property
    def charts_dir(self) -> Path:
        return self.results_dir / "charts"

    @property
    def aug_dir(self) -> Path:
        return self.results_dir / "aug"

    @property
    def tensorboard_dir(self) -> Path:
        return self.results_dir / "tensorboard"

    @property
    def predictions(self) -> Path:
        return self.results_dir / "predictions.csv"

    @property
    def test_features(self) -> Path:
        """Penultimate-layer features of the test images, rows in the order of predictions.csv."""
        return self.results_dir / "test_features.npy"

    @property
    def val_features(self) -> Path:
        """Penultimate-layer features of the validation images, rows in the order of val_features.csv."""
        return self.results_dir / "val_features.npy"

    @property
    def val_features_index(self) -> Path:
        """One row per row of val_features.npy: filename, predicted and true class."""
        return self.results_dir / "val_features.csv"

    @property
    def explain_dir(self) -> Path:
        return self.results_dir / "explain"

    @property
    def report(self) -> Path:
        return self.results_dir / "report.html"

    @property
    def run_info(self) -> Path:
        return self.results_dir / ("test_run_info.json" if self.test_only else "run_info.json")

    def epoch_checkpoint(self, epoch: int) -> Path:
        """Kept every MODEL.SAVE_CKPT_FREQ epochs."""
        return self.checkpoint_dir / f"{self.run_name}-checkpoint-{epoch}{self.checkpoint_suffix}"

    def training_outputs(self) -> list[Path]:
        """What a training run writes (and --overwrite removes)."""
        pattern = f"{glob.escape(self.run_name)}-checkpoint-[0-9]*{self.checkpoint_suffix}"
        epochs = sorted(self.checkpoint_dir.glob(pattern))
        return [self.results_dir, self.best_checkpoint, self.last_checkpoint, *epochs, self.log_file,
                self.training_log, self.config_file]

    def prediction_outputs(self) -> list[Path]:
        """What a test-only run writes."""
        return [self.predictions, self.results_dir / "test_metrics.json", self.results_dir / "test_metrics.csv",
                self.test_features, self.val_features, self.val_features_index, self.explain_dir]

    def protected_outputs(self, training: bool) -> list[Path]:
        """Results worth protecting: a run that left none of these (it failed early) may be re-run freely."""
        predictions = self.prediction_outputs()
        return [self.best_checkpoint, self.last_checkpoint, *predictions] if training else predictions


def read_run_info(paths: RunPaths) -> dict:
    try:
        return json.loads(paths.run_info.read_text())
    except (OSError, ValueError):
        return {}


def write_run_info(paths: RunPaths, status: str, **extra) -> None:
    info = read_run_info(paths)
    info.update(status=status, updated=time.strftime("%Y-%m-%d %H:%M:%S"), **extra)
    atomic_write_text(paths.run_info, json.dumps(info, indent=2))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def claim_run(paths: RunPaths, training: bool, resume: bool, overwrite: bool,
              set_aside: Callable[[list[Path]], None] | None = None) -> None:
    """Decide whether this run may write where it would write; raise RunStateError if not.

    Nothing is written or removed before every check has passed. With --overwrite the old outputs are
    removed, or given to `set_aside` (run_safety.OverwriteBackup) to be kept until the new run has a checkpoint.
    """
    info = read_run_info(paths)
    status = info.get("status")
    outputs = paths.training_outputs() if training else paths.prediction_outputs()
    existing = [p for p in paths.protected_outputs(training) if p.exists()]
    if resume and overwrite:
        raise RunStateError("--resume continues a run and --overwrite starts it again from scratch: give only one.")
    if resume:
        if not training:
            raise RunStateError("--resume continues an interrupted training run, but TRAIN.ENABLE is False.")
        if not paths.last_checkpoint.exists():
            raise RunStateError(
                f"--resume was given, but there is no checkpoint to resume from ({paths.last_checkpoint}). "
                "Check --result_dir, --name and --run_id, or start the run without --resume."
            )
        return  # whether the checkpoint can go on (epochs left, early stopping) is engine.resume's to say
    if existing and not overwrite:
        what = "a finished run" if status == "finished" else "an unfinished run"
        can_resume = training and status != "finished" and paths.last_checkpoint.exists()
        choices = "another --run_id or --name, or add --overwrite to replace it"
        todo = f"Continue it with --resume, or use {choices}" if can_resume else f"Use {choices}"
        raise RunStateError(
            f"'{paths.job_dir}' already holds {what} {paths.run_name} ({existing[0]}). Nothing was changed. {todo}."
        )
    if overwrite and set_aside is not None:
        set_aside(outputs)
    elif overwrite:
        for path in outputs:
            _remove(path)


def check_writable(directory: Path) -> None:
    """Fail early, with the folder's name, if results cannot be written there."""
    probe_parent = directory
    while not probe_parent.exists() and probe_parent != probe_parent.parent:
        probe_parent = probe_parent.parent
    if not probe_parent.is_dir():
        raise UserError(
            f"Cannot write results under '{directory}': '{probe_parent}' is a file, not a folder. Choose another "
            "--result_dir (or --name)."
        )
    # Every folder of the job that already exists (an immutable checkpoints/, say) must be writable too.
    for sub in ("checkpoints", "logs", "results", "config_files"):
        folder = directory / sub
        if folder.exists() and not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
            raise UserError(
                f"Cannot write results under '{directory}': its folder '{folder}' is not a writable folder. Fix its "
                "permissions (or chattr -i it), or choose another --result_dir or --name."
            )
    if not os.access(probe_parent, os.W_OK | os.X_OK):
        raise UserError(
            f"Cannot write results under '{directory}': the folder '{probe_parent}' is not writable. Choose "
            "another --result_dir or fix its permissions."
        )


def normal_file_mode() -> int:
    """0666 & ~umask: the permissions open() gives a new file (mkstemp gives 0600)."""
    mask = os.umask(0)  # the only way to read the umask; set back at once
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """`write(tmp)` writes a temporary file in the same folder, which is then renamed to `path`: a crash
    never leaves a half-written file, and the previous `path` stays readable until the new one is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        # mkstemp creates the file 0600; give it the permissions of a normally created file (0666 & ~umask)
        os.chmod(tmp, normal_file_mode())
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) with `atomic_write`."""

    def write(tmp: str) -> None:
        # surrogateescape: a file or class name that is not valid UTF-8 is written back as its original bytes,
        # so it round-trips (read with encoding_errors="surrogateescape") instead of failing after training.
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)

    atomic_write(path, write)
