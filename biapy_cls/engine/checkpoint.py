"""Self-contained checkpoints, written atomically.

A checkpoint holds everything needed to predict new images (weights, how to build the model, class
names, image size, normalisation) and everything needed to resume training exactly (optimizer,
scheduler, scaler, epoch, early-stopping state, history, RNG states). It only contains tensors and
plain Python values, so it loads with `torch.load(weights_only=True)`: no code runs on loading.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from biapy_cls import __version__
from biapy_cls.engine import safetensors_io
from biapy_cls.errors import CheckpointError
from biapy_cls.outputs import normal_file_mode

FORMAT = "biapy-cls-checkpoint"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file in the same folder, then rename: the previous file stays readable
    until the new one is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, normal_file_mode())  # readable like any other result file, not mkstemp's 0600
        full = {"format": FORMAT, "version": __version__, **state}
        try:
            if path.suffix == safetensors_io.SUFFIX:  # MODEL.OUT_CHECKPOINT_FORMAT, carried by RunPaths' file names
                safetensors_io.save(full, tmp)
            else:
                torch.save(full, tmp)
        except RuntimeError as err:  # torch reports a failed write (a full disk) as RuntimeError: say what it is
            if "write" not in str(err).lower():
                raise
            disk_full = shutil.disk_usage(path.parent).free < 64 * 2**20
            raise OSError(errno.ENOSPC if disk_full else errno.EIO, "the disk is full" if disk_full else str(err),
                          str(path)) from err
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy_checkpoint(src: Path, dst: Path) -> None:
    """Make `dst` the same checkpoint as `src`, atomically: a hard link where the file system allows
    (no second write of a possibly large file), otherwise a copy."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, what: str = "checkpoint") -> dict:
    """Read a checkpoint written by biapy-cls, with a clear error for missing, corrupt or foreign files."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"The {what} '{path}' does not exist. Check PATHS.CHECKPOINT_FILE or the run name.")
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.pth"))[:5]
        hint = f" It holds {', '.join(inside)}: give the path of one of them." if inside else ""
        raise CheckpointError(f"The {what} '{path}' is a folder, not a checkpoint file (.pth).{hint}")
    kind = None if safetensors_io.is_safetensors(path) else _file_kind(path)  # safetensors starts with JSON text
    if kind:
        raise CheckpointError(
            f"The {what} '{path}' is {kind}, not a PyTorch checkpoint. Give the .pth file written in a biapy-cls "
            "run's checkpoints/ folder."
        )
    try:
        if safetensors_io.is_safetensors(path):
            state = safetensors_io.load(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise CheckpointError(
            f"The {what} '{path}' cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:200]}). It is "
            "corrupt, truncated or not a PyTorch file: use another checkpoint."
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"The {what} '{path}' was not written by biapy-cls (it lacks the model description and class names "
            "that a biapy-cls checkpoint holds). Use a checkpoint from a biapy-cls run's checkpoints/ folder."
        )
    return state


def _file_kind(path: Path) -> str | None:
    """What a file that is clearly no PyTorch file is ('a text file ...'), or None. PyTorch files are zip
    archives (PK) or, from old versions, pickles (0x80)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if not head:
        return "an empty file (0 bytes; perhaps a copy that was cut off)"
    if head.startswith((b"PK", b"\x80")):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None  # binary of some other kind: torch's own message follows
    first = text.strip().splitlines()[0][:60] if text.strip() else ""
    return f"a text file (it starts with '{first}')"


def rng_state() -> dict:
    """Every random generator's state, as plain values and tensors."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    """random.setstate needs tuples where a save/load round trip may give lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value
