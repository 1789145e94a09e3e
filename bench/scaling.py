"""Scaling (memory and epoch time against dataset size) and start-up time, each case in a fresh process.

Scaling: for 1x, 4x and 16x copies of a digits training set, with IN_MEMORY True and False, a child
process (`python bench/scaling.py --case TRAIN_DIR --in-memory 0|1`) builds the dataset and loader as the
CLI does, trains simple_cnn for one epoch with `train_one_epoch`, and prints its peak resident memory
(VmHWM of /proc/self/status; ru_maxrss where there is no /proc), the peak before the dataset was built,
the epoch's seconds and, in memory, the storage array's bytes. Lazy runs use 0 workers so that all the
memory is in the measured process.
Start-up: wall time of `biapy --help` and of a test-only run from a checkpoint (TRAIN.ENABLE False),
alternating with `python -c "import torch"` (medians); the test-only run also reports its CPU and wall
seconds when it reads its first image (its start-up: imports, configuration, data plan, model).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_bytes() -> int:
    """Peak resident memory of this process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child(train_dir: str, in_memory: bool, threads: int) -> dict:
    """One scaling case, in this (fresh) process."""
    import torch

    sys.path.insert(0, str(ROOT))
    from biapy_cls.config.defaults import get_cfg_defaults
    from biapy_cls.config.settings import TrainSettings
    from biapy_cls.data.dataset import ImageSpec, build_dataset, build_loader
    from biapy_cls.data.discover import discover_labelled
    from biapy_cls.data.transforms import Normalizer, make_prepare
    from biapy_cls.engine.hooks import LRScheduleHook
    from biapy_cls.engine.losses import build_criterion
    from biapy_cls.engine.optim import LRSchedule, build_optimizer
    from biapy_cls.engine.runtime import Runtime
    from biapy_cls.engine.trainer import FitSetup, Trainer, train_one_epoch
    from biapy_cls.models import ModelSpec, build_model

    torch.set_num_threads(threads)
    cfg = get_cfg_defaults()
    cpu = Runtime(torch.device("cpu"))
    samples, classes = discover_labelled(train_dir, "DATA.TRAIN.PATH", "2D")
    model = build_model(ModelSpec("simple_cnn", "2D", 1, len(classes), (32, 32)), cfg.MODEL)
    # One step on random data first: PyTorch's own first-step allocations are not the dataset's.
    torch.nn.functional.cross_entropy(model(torch.randn(32, 1, 32, 32)), torch.zeros(32, dtype=torch.long)).backward()
    model.zero_grad(set_to_none=True)
    before = peak_rss_bytes()
    start = time.perf_counter()
    dataset = build_dataset(samples, ImageSpec("2D", (32, 32), 1), in_memory, "Loading", threads=1)
    load_s = time.perf_counter() - start
    loader = build_loader(dataset, 32, True, 0, 0, False, train=True)
    optimizer = build_optimizer(TrainSettings.from_cfg(cfg), model)
    setup = FitSetup(model=model, criterion=build_criterion(cfg, samples.labels, len(classes)), optimizer=optimizer,
                     train_loader=loader, val_loader=None, prepare=make_prepare(Normalizer.from_cfg(cfg), None),
                     runtime=cpu, epochs=1, n_classes=len(classes), monitor="train_loss")
    trainer = Trainer(setup, [LRScheduleHook(LRSchedule(TrainSettings.from_cfg(cfg), optimizer, len(loader)))])
    start = time.perf_counter()
    loader.sampler.set_epoch(0)
    train_one_epoch(trainer, 0)
    epoch_s = time.perf_counter() - start
    return {"images": len(samples), "in_memory": in_memory, "load_s": load_s, "epoch_s": epoch_s,
            "peak_before": before, "peak": peak_rss_bytes(),
            "stored_bytes": dataset.nbytes if in_memory else 0, "raw_bytes": len(samples) * 32 * 32 * 1}


def start_child(train_dir: Path, in_memory: bool, threads: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--case", str(train_dir), "--in-memory", str(int(in_memory)),
                             "--threads", str(threads)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_child(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"scaling case {proc.args} failed:\n{err}")
    return json.loads(out.strip().splitlines()[-1])


def write_digits(folder: Path, copies: int = 1, limit: int = 0) -> Path:
    """scripts/make_example_data.py, in this process (scikit-learn is imported once)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_example_data import main as make_data

    with contextlib.redirect_stdout(io.StringIO()):
        make_data([str(folder), "--copies", str(copies)] + (["--limit", str(limit)] if limit else []))
    return folder


def scaling(data_root: Path, copies: tuple[int, ...], limit: int, threads: int, parallel: bool = False) -> list[dict]:
    """Write the digits training set `copies` times (first `limit` images per class) and run each case: the
    in-memory and the lazy case of one size at the same time (so they share the machine's load alike), or
    with `parallel` all cases at once (for --quick: memory figures stay right, epoch times do not)."""
    folders = {n: write_digits(data_root / f"digits_x{n}", n, limit) / "train" for n in copies}
    groups = [list(copies)] if parallel else [[n] for n in copies]
    rows = []
    for group in groups:
        cases = [(n, in_memory) for n in group for in_memory in (True, False)]
        procs = [start_child(folders[n], m, threads) for n, m in cases]
        rows += [{"copies": n, **finish_child(p)} for (n, _), p in zip(cases, procs)]
        for r in rows[-len(cases):]:
            print(f"  scaling x{r['copies']} in_memory={r['in_memory']}: peak {r['peak'] / 2**20:.0f} MiB, "
                  f"epoch {r['epoch_s']:.1f} s", flush=True)
    return rows


CPU_SECONDS: dict[str, list[float]] = {}  # command label -> CPU seconds of each run (children's rusage)


def _wall(cmd: list[str], env: dict, label: str = "") -> float:
    """Wall seconds of one run of `cmd`; its CPU seconds go to CPU_SECONDS[label]."""
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if label:
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        CPU_SECONDS.setdefault(label, []).append(cpu)
    return time.perf_counter() - start


# The CLI, which at its first image read (data.io.read_file, which read_image calls) prints the process's CPU
# seconds and the wall seconds since the parent started it (PROBE_T0) to stderr; and its floor, a Python that
# prints the same once it has imported torch. Both in-process: Python's exit after `import torch` costs
# another ~0.7 s of CPU (measured), which a run pays at its end, not before its first image.
FIRST_IMAGE_PROBE = """
import os, sys, time
import biapy_cls.data.io as io
original = io.read_file
def first(path, _done=[]):
    if not _done:
        _done.append(1)
        t = os.times()
        print(f"PROBE {t.user + t.system:.4f} {time.time() - float(os.environ['PROBE_T0']):.4f}", file=sys.stderr)
    return original(path)
io.read_file = first
from biapy_cls.cli import main
sys.exit(main(sys.argv[1:]))
"""
TORCH_PROBE = """
import os, sys, time
import torch
t = os.times()
print(f"PROBE {t.user + t.system:.4f} {time.time() - float(os.environ['PROBE_T0']):.4f}", file=sys.stderr)
"""


def _probed(code: str, args: list[str], env: dict, label: str) -> tuple[float, float, float]:
    """`python -c code args`: (wall seconds, CPU and wall seconds when it printed its PROBE line); its total CPU
    seconds go to CPU_SECONDS[label]."""
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**env, "PROBE_T0": repr(time.time())})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the probed {label} run failed:\n{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS.setdefault(label, []).append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    line = next(x for x in done.stderr.splitlines() if x.startswith("PROBE "))
    cpu, probe_wall = (float(v) for v in line.split()[1:])
    return wall, cpu, probe_wall


def startup(data: Path, work: Path, repeats: int, script: bool = True) -> dict:
    """Median wall seconds of `biapy --help` (`repeats` times) and seconds of one test-only run from a
    checkpoint trained here for one epoch."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    module = [sys.executable, "-m", "biapy_cls"]
    config = work / "startup.yaml"
    config.write_text(
        "PROBLEM:\n  TYPE: CLASSIFICATION\n  NDIM: 2D\nDATA:\n  PATCH_SIZE: (32, 32, 1)\n"
        f"  TRAIN:\n    PATH: {data / 'train'}\n  TEST:\n    PATH: {data / 'test'}\n    LOAD_GT: True\n"
        "MODEL:\n  ARCHITECTURE: simple_cnn\nTRAIN:\n  ENABLE: True\n  EPOCHS: 1\nTEST:\n  ENABLE: False\n")
    common = ["--config", str(config), "--result_dir", str(work / "results"), "--name", "startup"]
    sys.path.insert(0, str(ROOT))
    from biapy_cls.cli import main

    # The checkpoint to test with: one epoch, trained in this process (it has imported torch already).
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(common + ["--run_id", "1", "SYSTEM.NUM_CPUS", "1"])
    if code != 0:
        raise RuntimeError("the start-up benchmark's training run failed")
    checkpoint = next((work / "results").rglob("*checkpoint-best.pth"))
    test_only = ["TRAIN.ENABLE", "False", "TEST.ENABLE", "True", "PATHS.CHECKPOINT_FILE",
                                   str(checkpoint), "SYSTEM.NUM_CPUS", "1"]
    # The installed console script (through any pyenv shim) imports this tree too, PYTHONPATH comes first.
    script = shutil.which("biapy") if script else None
    names = ("help", "script_help", "test_only", "import_torch", "first_image", "first_image_cpu", "torch_imported",
             "torch_imported_cpu")
    times: dict[str, list[float]] = {name: [] for name in names}
    CPU_SECONDS.pop("test_only", None), CPU_SECONDS.pop("import_torch", None)
    for i in range(repeats):
        times["help"].append(_wall(module + ["--help"], env))
        if script:
            times["script_help"].append(_wall([script, "--help"], env))
        # The test-only run side by side with the floor it cannot beat: a Python that imports torch.
        wall, cpu, at = _probed(TORCH_PROBE, [], env, "import_torch")
        times["import_torch"].append(wall), times["torch_imported_cpu"].append(cpu), times["torch_imported"].append(at)
        wall, cpu, at = _probed(FIRST_IMAGE_PROBE, common + ["--run_id", str(2 + i)] + test_only, env, "test_only")
        times["test_only"].append(wall), times["first_image_cpu"].append(cpu), times["first_image"].append(at)
    return {**{k: statistics.median(v) if v else None for k, v in times.items()},
            **{f"{k}_cpu": statistics.median(CPU_SECONDS[k]) for k in ("import_torch", "test_only")},
            "test_images": sum(1 for _ in (data / "test").rglob("*.png")), "repeats": repeats}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", required=True, help="training folder of one scaling case")
    parser.add_argument("--in-memory", type=int, choices=(0, 1), required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(child(args.case, bool(args.in_memory), args.threads)))
