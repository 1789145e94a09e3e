"""Data pipeline vs simple_cnn training step, samples/s on the CPU, measured in one process.

The pipeline is what feeds the model: reading (in memory, or lazily from PNG files with 0, 1 or 2
DataLoader workers), unit scale, every 2D AUGMENTOR transformation switched on (at DA_PROB) and
normalisation, i.e. `build_loader` + `make_prepare(...)(images, range, train=True)`. The step is forward,
cross-entropy, backward and an AdamW update of simple_cnn on 32x32x1 batches, with freed memory kept for
reuse as `biapy` runs on the CPU (engine/allocator.py: ~1.2x faster steps). Each pipeline is timed (wall
clock: workers are other processes) between two steps, so that load from other processes and the
machine's drifting speed affect both alike; its ratio is the median over rounds of its rate over the
mean rate of the steps around it. Issue 5: the augmentation must be at least 5x faster than the step.

    python bench/augment_throughput.py [--quick]          (run.py includes it in docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biapy_cls.config.defaults import get_cfg_defaults  # noqa: E402
from biapy_cls.config.settings import TrainSettings  # noqa: E402
from biapy_cls.data.augment import OPS, Augmenter  # noqa: E402
from biapy_cls.data.augment_ops import FUNCTIONS  # noqa: E402
from biapy_cls.data.dataset import ImageSpec, build_dataset, build_loader  # noqa: E402
from biapy_cls.data.discover import discover_labelled  # noqa: E402
from biapy_cls.data.transforms import Normalizer, make_prepare  # noqa: E402
from biapy_cls.engine.allocator import keep_freed_memory  # noqa: E402
from biapy_cls.engine.optim import build_optimizer  # noqa: E402
from biapy_cls.models import ModelSpec, build_model  # noqa: E402

BATCH = 32


def all_ops_cfg():
    """Default config with every 2D AUGMENTOR transformation switched on."""
    cfg = get_cfg_defaults()
    cfg.AUGMENTOR.ENABLE = True
    for name in OPS:
        cfg.AUGMENTOR[name] = name != "ZFLIP"
    cfg.AUGMENTOR.RANDAUGMENT.ENABLE = True  # the 2D policy too (label mixing acts after this pipeline)
    return cfg


def run(train_dir: Path, quick: bool) -> dict:
    """{'step': samples/s, 'rows': [(pipeline, samples/s, ratio to the step)], 'augmentations': str}."""
    keep_freed_memory()  # as `biapy` runs on the CPU: the step (and pipeline) its users get
    torch.manual_seed(0)
    cfg = all_ops_cfg()
    augmenter = Augmenter.from_cfg(cfg)
    prepare = make_prepare(Normalizer.from_cfg(cfg), augmenter)
    samples, _ = discover_labelled(str(train_dir), "DATA.TRAIN.PATH", "2D")
    n = min(len(samples), 64 if quick else 256)
    samples = samples.subset(list(range(n)))
    spec = ImageSpec("2D", (32, 32), 1)

    memory = build_dataset(samples, spec, True, "bench", threads=1)
    batch_u8 = torch.from_numpy(memory.images[:BATCH])

    def consume(loader) -> None:
        for images, _, _ in loader:
            prepare(images, loader.dataset.value_range, True)

    def augment_only(prepare=prepare) -> None:
        for _ in range(n // BATCH):
            prepare(batch_u8, 255.0, True)

    # the same stored batch with fewer transformations: issue 5's set, then all of BiaPy's without RandAugment
    issue5 = all_ops_cfg()
    for name in FUNCTIONS:  # the eleven transformations issue 18 added (CUTMIX mixes labels: mixing.py)
        issue5.AUGMENTOR[name] = False
    issue5.AUGMENTOR.RANDAUGMENT.ENABLE = False
    biapy_only = all_ops_cfg()
    biapy_only.AUGMENTOR.RANDAUGMENT.ENABLE = False
    subsets = {name: make_prepare(Normalizer.from_cfg(c), Augmenter.from_cfg(c)) for name, c in (
        ("stored batch, issue 5's transformations only", issue5),
        ("stored batch, every BiaPy transformation, no RandAugment", biapy_only))}

    pipelines = {"augmentation + normalisation of a stored batch": augment_only,
                 **{name: (lambda p=p: augment_only(p)) for name, p in subsets.items()},
                 "in memory: loader + augmentation + normalisation": build_loader(memory, BATCH, True, 0, 0, False)}
    lazy = build_dataset(samples, spec, False, "bench")
    for workers in (0, 1, 2):
        pipelines[f"lazy (PNG files), {workers} worker(s): read + augmentation + normalisation"] = build_loader(
            lazy, BATCH, True, 0, workers, False)

    model = build_model(ModelSpec("simple_cnn", "2D", 1, 10, (32, 32)), cfg.MODEL)
    optimizer = build_optimizer(TrainSettings.from_cfg(cfg), model)
    inputs, labels = prepare(batch_u8, 255.0, True), torch.randint(0, 10, (BATCH,))
    step_batches = 2 if quick else 4

    def step() -> None:
        for _ in range(step_batches):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(inputs), labels).backward()
            optimizer.step()

    def timed(fn) -> float:
        start = time.perf_counter()
        fn() if callable(fn) else consume(fn)
        return time.perf_counter() - start

    for fn in (step, *pipelines.values()):
        timed(fn)  # warm-up: worker start-up, first allocations
    # Each pipeline is timed between two steps and compared with their mean: this machine's speed drifts by
    # tens of percent within seconds, and a ratio of medians taken from different moments carries the drift.
    rates: dict[str, list[float]] = {name: [] for name in ("step", *pipelines)}
    ratios: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(2 if quick else 7):
        before = step_batches * BATCH / timed(step)
        for name, fn in pipelines.items():
            rate = n / timed(fn)
            after = step_batches * BATCH / timed(step)
            rates[name].append(rate)
            rates["step"].append(before)
            ratios[name].append(rate / ((before + after) / 2))
            before = after
    step_rate = statistics.median(rates["step"])
    rows = [(name, statistics.median(rates[name]), statistics.median(ratios[name])) for name in pipelines]
    return {"step": step_rate, "rows": rows, "augmentations": augmenter.describe(), "images": n,
            "op_costs": op_costs(batch_u8.float() / 255.0, step, step_batches, quick)}


def op_costs(batch: torch.Tensor, step, step_batches: int, quick: bool) -> list[tuple[str, float]]:
    """The profile of the all-on pipeline: each transformation alone at probability 1 on a stored batch,
    as its time per batch over the training step's time per batch (timed in alternating rounds)."""
    single = {}
    for name in [*(n for n in OPS if n != "ZFLIP"), "RANDAUGMENT"]:
        cfg = all_ops_cfg()
        for other in OPS:
            cfg.AUGMENTOR[other] = other == name
            cfg.AUGMENTOR[f"{other}_PROB"] = 1.0
        cfg.AUGMENTOR.RANDAUGMENT.ENABLE = name == "RANDAUGMENT"
        single[name] = Augmenter.from_cfg(cfg)
    calls = 2 if quick else 10
    times: dict[str, list[float]] = {name: [] for name in ("step", *single)}
    for _ in range(2 if quick else 3):
        start = time.perf_counter()
        step()
        times["step"].append((time.perf_counter() - start) / step_batches)
        for name, augmenter in single.items():
            augmenter(batch)
            start = time.perf_counter()
            for _ in range(calls):
                augmenter(batch)
            times[name].append((time.perf_counter() - start) / calls)
    step_time = statistics.median(times["step"])
    costs = [(name, statistics.median(times[name]) / step_time) for name in single]
    return sorted(costs, key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from make_example_data import main as make_data  # scripts/, put on the path by run.py's helper

    with tempfile.TemporaryDirectory() as tmp:
        make_data([tmp, "--limit", "30"])
        result = run(Path(tmp) / "train", args.quick)
    print(f"augmentations: {result['augmentations']}")
    print(f"simple_cnn training step: {result['step']:,.0f} samples/s")
    for name, rate, ratio in result["rows"]:
        print(f"{name}: {rate:,.0f} samples/s = {ratio:.1f}x the step")
    return 0 if result["rows"][0][2] >= 5 else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    sys.exit(main())
