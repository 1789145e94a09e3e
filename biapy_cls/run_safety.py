"""What keeps one run from damaging another: the run lock, --overwrite's safety copy, stale temporaries,
and a result folder that must not lie inside the data.

- Lock: `JOB/.RUN.lock`, held with flock(2) for the whole run, so a second process with the same
  --result_dir/--name/--run_id is refused at once. The kernel releases the lock when its process dies,
  so a crashed run never leaves a lock that blocks the next one (the empty file itself is harmless).
- --overwrite: the old run's files are moved aside into `JOB/.overwritten-RUN/`, not deleted. They are
  deleted once the new run has a checkpoint of its own (or has finished), and put back if the new run
  fails or is stopped before that, so a failed overwrite loses nothing.
- Temporaries: a checkpoint write killed mid-way leaves `.NAME.XXXX.tmp` (mkstemp) or `.NAME.PID.tmp`;
  those of processes that no longer run are removed when a run starts.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import time
from pathlib import Path

from biapy_cls.errors import RunStateError, UserError

log = logging.getLogger("biapy_cls")


class RunLock:
    """An exclusive lock on one run (JOB/NAME_RUNID), released on `release` or when the process dies."""

    def __init__(self, job_dir: Path, run_name: str):
        self.path = job_dir / f".{run_name}.lock"
        self.run_name = run_name
        self._fd: int | None = None
        self._created_job_dir = False

    def acquire(self) -> None:
        job_dir = self.path.parent
        self._created_job_dir = not job_dir.exists()
        job_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 400).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise RunStateError(
                    f"Run {self.run_name} in '{job_dir}' is being written right now by {holder}. Two runs writing "
                    "the same files would overwrite each other's checkpoints and logs. Wait for it to end, or use "
                    "another --run_id or --name. Nothing was changed."
                ) from None
            try:  # the holder may have removed the file between our open and flock: then lock a new one
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    os.ftruncate(fd, 0)
                    os.write(fd, f"process {os.getpid()} (started {time.strftime('%Y-%m-%d %H:%M:%S')})".encode())
                    self._fd = fd
                    return
            except FileNotFoundError:
                pass
            os.close(fd)

    def release(self, remove_empty_job_dir: bool = False) -> None:
        """Unlock. With `remove_empty_job_dir`, a job folder this lock created and nothing else used goes too
        (a run refused by a later check leaves no trace)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # before unlocking: a waiting process then re-checks the inode
        os.close(self._fd)
        self._fd = None
        if remove_empty_job_dir and self._created_job_dir:
            try:
                self.path.parent.rmdir()
            except OSError:
                pass


class OverwriteBackup:
    """The files an --overwrite run replaces, kept aside until the new run has a checkpoint of its own."""

    def __init__(self, job_dir: Path, run_name: str):
        self.job_dir = job_dir
        self.dir = job_dir / f".overwritten-{run_name}"
        self.moved: list[Path] = []

    def set_aside(self, outputs: list[Path]) -> None:
        if self.dir.exists():  # a safety copy from an overwrite that crashed hard: its files are older still
            shutil.rmtree(self.dir)
        for path in outputs:
            if path.exists():
                target = self.dir / path.relative_to(self.job_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
                self.moved.append(path)

    def restore(self) -> None:
        """Put the old run back, removing what the failed new run wrote in its place."""
        for path in self.moved:
            source = self.dir / path.relative_to(self.job_dir)
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, path)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.moved:
            log.warning(f"The new run did not get as far as its first checkpoint, so the run it was to overwrite "
                        f"is back in place ({len(self.moved)} file(s) and folder(s)).")
        self.moved = []

    def drop(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.moved = []


TEMP_PATTERN = re.compile(r"^\..+\.(?:(?P<pid>\d+)|[A-Za-z0-9_]{8})\.tmp$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folders: list[Path], min_age_s: float = 3600.0) -> list[Path]:
    """Delete temporaries left by killed writes (see the module docstring). A file with a process id is
    stale when that process is gone; one with mkstemp's random name when it is older than `min_age_s`
    (no live run keeps a temporary that long: they exist for the seconds a write takes)."""
    removed = []
    now = time.time()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = TEMP_PATTERN.match(path.name)
            if not match or not path.is_file():
                continue
            pid = match.group("pid")
            stale = not _pid_alive(int(pid)) if pid else now - path.stat().st_mtime > min_age_s
            if stale:
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info(f"Removed {len(removed)} temporary file(s) left by an interrupted write: "
                 + ", ".join(p.name for p in removed[:5]))
    return removed


def check_result_dir_outside_data(job_dir: Path, data_folders: dict[str, str]) -> None:
    """A result folder inside a data folder makes the tool's own charts and checkpoints data (a class
    folder named after the job, images of charts) on the next run."""
    job = job_dir.resolve()
    for key, folder in data_folders.items():
        if not folder:
            continue
        data = Path(folder).expanduser().resolve()
        if job == data or data in job.parents:
            raise UserError(
                f"The results would be written to '{job_dir}', inside {key} ('{folder}'): the next run would read "
                "the charts and checkpoints as data (a new class folder). Choose a --result_dir outside the "
                "data folders."
            )


class RunGuard:
    """The lock and the --overwrite safety copy of one run, driven by the workflow (rank 0 only)."""

    def __init__(self, paths):
        self.paths = paths
        self._lock = RunLock(paths.job_dir, paths.run_name)
        self._backup = OverwriteBackup(paths.job_dir, paths.run_name)

    def lock(self) -> None:
        self._lock.acquire()

    def set_aside(self, outputs: list[Path]) -> None:
        self._backup.set_aside(outputs)

    def clean_temporaries(self) -> None:
        p = self.paths
        remove_stale_temporaries([p.checkpoint_dir, p.log_dir, p.results_dir, p.config_file.parent])

    def ended(self, new_checkpoint: Path | None, finished: bool = False) -> None:
        """Drop the old run's safety copy when the new run finished or has a checkpoint; else put it back."""
        if finished or (new_checkpoint is not None and new_checkpoint.exists()):
            self._backup.drop()
        else:
            self._backup.restore()

    def release(self, refused: bool = False) -> None:
        self._lock.release(remove_empty_job_dir=refused)
