"""Engine overhead: the project's training and inference paths against a minimal hand-written PyTorch loop.

Project path: images written as .npy files, decoded into an `InMemoryDataset`, batched by `build_loader`,
prepared by `make_prepare` (unit scale + the default per-image normalisation), trained by
`train_one_epoch` and predicted by `engine.inference.predict`, exactly as the CLI does.
Bare path: the same images already normalised as one float32 tensor in memory, a shuffled slice per
batch, forward / cross-entropy / backward / step; and a `no_grad` loop of forward + softmax.
Same model (a copy of the same weights), batch size, optimizer and thread count. The two are timed in
alternating rounds (project, bare, project, bare, ...) and the medians compared, so that load from
other processes affects both alike.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.data.dataset import ImageSpec, InMemoryDataset, build_loader
from biapy_cls.data.discover import SampleList
from biapy_cls.data.transforms import Normalizer
from biapy_cls.engine.inference import predict
from biapy_cls.engine.losses import build_criterion
from biapy_cls.engine.optim import LRSchedule, build_optimizer
from biapy_cls.engine.runtime import Runtime
from biapy_cls.engine.trainer import EarlyStopping, FitSetup, train_one_epoch
from biapy_cls.models import ModelSpec, available_architectures, build_model
from biapy_cls.outputs import RunPaths
from biapy_cls.workflow import make_prepare

MODELS = ("simple_cnn", "vit", "efficientnet_b0")
SHAPES = {"2D": (32, 32), "3D": (16, 32, 32)}
N_CLASSES = 10
CPU = Runtime(torch.device("cpu"))
CLOCK = time.process_time


@dataclass
class Pair:
    """Median samples/s of the project path and of the bare loop, over alternating rounds."""

    project: float
    bare: float
    ratio: float  # median of the per-round ratios project / bare


def alternate(project: Callable[[], None], bare: Callable[[], None], samples: int, rounds: int) -> Pair:
    """Time `project` and `bare` (each processing `samples` images) in alternating rounds, after one warm-up;
    CPU time of this process (one thread, no worker processes), which other processes disturb less than wall time."""
    project(), bare()
    rates: dict[str, list[float]] = {"project": [], "bare": []}
    order = [("project", project), ("bare", bare)]
    for i in range(rounds):
        # A B, B A, A B, ...: neither always runs first (caches, allocator state).
        for name, fn in (order if i % 2 == 0 else order[::-1]):
            start = CLOCK()
            fn()
            rates[name].append(samples / (CLOCK() - start))
    paired = statistics.median(p / b for p, b in zip(rates["project"], rates["bare"]))
    return Pair(statistics.median(rates["project"]), statistics.median(rates["bare"]), paired)


def write_images(folder: Path, ndim: str, n: int, seed: int = 0) -> SampleList:
    """`n` random uint8 images of the benchmark shape as .npy files, random labels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img_{i:05d}.npy"
        np.save(path, rng.integers(0, 256, SHAPES[ndim], dtype=np.uint8))
        paths.append(path)
    return SampleList(paths, rng.integers(0, N_CLASSES, n).astype(np.int64), folder)


def _seconds_per_sample(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Rough cost of one training step per image, to size the rounds."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    times = []
    for _ in range(3):
        start = CLOCK()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(CLOCK() - start)
    return min(times[1:]) / len(x)


class Trivial(torch.nn.Module):
    """A model that costs almost nothing: what is left of a round is the engine's own cost."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(1, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=tuple(range(1, x.ndim)))[:, None])


def measure(arch: str, ndim: str, folder: Path, batch: int, round_s: float, rounds: int,
            n_batches: int | None = None) -> dict:
    """Training and inference samples/s of `arch` (or "trivial") in `ndim`, project vs bare."""
    cfg = get_cfg_defaults()
    spatial = SHAPES[ndim]
    torch.manual_seed(0)
    model = Trivial() if arch == "trivial" else build_model(ModelSpec(arch, ndim, 1, N_CLASSES, spatial), cfg.MODEL)
    if n_batches is None:
        probe = torch.randn(batch, 1, *spatial)
        per_sample = _seconds_per_sample(copy.deepcopy(model), probe, torch.randint(0, N_CLASSES, (batch,)))
        n_batches = int(min(64, max(1, round(round_s / (per_sample * batch)))))
    n = n_batches * batch

    # Project path: files -> InMemoryDataset -> build_loader -> prepare -> train_one_epoch / predict.
    samples = write_images(folder / f"{ndim}_{n}", ndim, n)
    dataset = InMemoryDataset(samples, ImageSpec("3D" if ndim == "3D" else "2D", spatial, 1), threads=1)
    loader = build_loader(dataset, batch, True, 0, 0, False, train=True)
    test_loader = build_loader(dataset, batch, False, 0, 0, False)
    normalizer = Normalizer.from_cfg(cfg)
    prepare = make_prepare(normalizer, None, CPU)
    project_model = copy.deepcopy(model)
    optimizer = build_optimizer(cfg, project_model)
    setup = FitSetup(
        model=project_model, criterion=build_criterion(cfg, samples.labels, N_CLASSES), optimizer=optimizer,
        schedule=LRSchedule(cfg, optimizer, n_batches), train_loader=loader, val_loader=None, prepare=prepare,
        runtime=CPU, paths=RunPaths.create(str(folder), "bench", 1, "bench.yaml"), epochs=1, n_classes=N_CLASSES,
        early_stopping=EarlyStopping("train_loss"), chart_every=1, checkpoint_payload=dict,
    )
    epoch = iter(range(10**9))

    def project_train() -> None:
        e = next(epoch)
        loader.sampler.set_epoch(e)
        train_one_epoch(setup, e)

    # Bare path: normalised float32 tensors in memory, same weights, batch size and optimizer.
    x_all = prepare(torch.from_numpy(dataset.images), dataset.value_range, False)
    y_all = dataset.labels
    bare_model = copy.deepcopy(model)
    bare_optimizer = build_optimizer(cfg, bare_model)

    def bare_train() -> None:
        bare_model.train()
        for idx in torch.randperm(n).split(batch):
            bare_optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(bare_model(x_all[idx]), y_all[idx]).backward()
            bare_optimizer.step()

    def project_infer() -> None:
        predict(project_model, test_loader, prepare, CPU)

    def bare_infer() -> None:
        project_model.eval()
        with torch.no_grad():
            for x in x_all.split(batch):
                torch.softmax(project_model(x), dim=1)

    return {
        "train": alternate(project_train, bare_train, n, rounds),
        "inference": alternate(project_infer, bare_infer, n, rounds),
        "n": n,
    }


def tta_cost(quick: bool, batch: int) -> dict[str, float]:
    """simple_cnn inference samples/s through `predict` with and without TEST.AUGMENTATION (2D, 8 views)."""
    cfg = get_cfg_defaults()
    torch.manual_seed(0)
    n = batch * 2
    model = build_model(ModelSpec("simple_cnn", "2D", 1, N_CLASSES, SHAPES["2D"]), cfg.MODEL)
    with tempfile.TemporaryDirectory(prefix="bench_tta_") as tmp:
        dataset = InMemoryDataset(write_images(Path(tmp), "2D", n), ImageSpec("2D", SHAPES["2D"], 1), threads=1)
    loader = build_loader(dataset, batch, False, 0, 0, False)
    prepare = make_prepare(Normalizer.from_cfg(cfg), None, CPU)
    pair = alternate(lambda: predict(model, loader, prepare, CPU, tta=True),
                     lambda: predict(model, loader, prepare, CPU, tta=False), n, 2 if quick else 5)
    return {"with": pair.project, "without": pair.bare, "cost": pair.bare / pair.project}


def own_cost(quick: bool, batches: dict[str, int]) -> dict[str, dict[str, float]]:
    """The engine's own milliseconds of CPU per batch (project - bare, with the trivial model), per ndim and
    phase: a low-noise figure from which every model's ratio follows as step / (step + own cost)."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_own_") as tmp:
        for ndim in ("2D",) if quick else ("2D", "3D"):
            b = batches[ndim]
            result = measure("trivial", ndim, Path(tmp), b, 0.0, 3 if quick else 9, n_batches=8 if quick else 32)
            out[ndim] = {phase: 1000 * (b / result[phase].project - b / result[phase].bare)
                         for phase in ("train", "inference")}
    return out


def run(quick: bool, batches: dict[str, int]) -> tuple[list[dict], list[str]]:
    """Rows of the engine table (every model of MODELS that biapy_cls.models registers, 2D and 3D) and
    notes on skipped models. --quick: simple_cnn 2D only, one batch per round, two rounds."""
    known = set(available_architectures())
    rows, notes = [], []
    round_s, rounds = (0.05, 2) if quick else (0.4, 11)
    with tempfile.TemporaryDirectory(prefix="bench_engine_") as tmp:
        for arch in MODELS[:1] if quick else MODELS:
            if arch not in known:
                notes.append(f"{arch}: not registered in biapy_cls.models on this branch, skipped.")
                continue
            for ndim in ("2D",) if quick else ("2D", "3D"):
                result = measure(arch, ndim, Path(tmp), batches[ndim], round_s, rounds)
                rows.append({"model": arch, "ndim": ndim, **result})
                print(f"  engine {arch} {ndim}: train {result['train'].ratio:.3f}, "
                      f"inference {result['inference'].ratio:.3f}", flush=True)
    if quick:
        notes.append("--quick: simple_cnn 2D only, tiny rounds; run without --quick for every model, 3D and "
                     "steady ratios.")
    return rows, notes
