"""Augmentation pipeline vs simple_cnn training step, samples/s on the CPU, measured in one process.

The pipeline is the training batch function (unit scale -> every 2D AUGMENTOR transformation switched on,
at DA_PROB -> normalisation); the step is forward, cross-entropy, backward and an AdamW update of
simple_cnn. Both see the same batches (default 32 images of 32x32x1) and are timed alternately, in rounds
of `--repeats` calls, so that load from other processes affects both alike; time is this process's CPU
time (wall-clock with --wall) and the best round of each is reported (as timeit does: slower rounds
measure the other processes). The pipeline must be at least 5x
faster than the step.

    python bench/augment_throughput.py [--batch 32] [--size 32] [--threads 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biapy_cls.config.defaults import get_cfg_defaults  # noqa: E402
from biapy_cls.data.augment import OPS, Augmenter  # noqa: E402
from biapy_cls.data.transforms import Normalizer  # noqa: E402
from biapy_cls.engine.runtime import Runtime  # noqa: E402
from biapy_cls.models import ModelSpec, build_model  # noqa: E402
from biapy_cls.workflow import make_prepare  # noqa: E402


def timed(fn, repeats: int, clock=time.process_time) -> float:
    """Seconds per call, after one warm-up call. The default clock is this process's CPU time, which
    other processes on a busy machine disturb much less than wall-clock time (`--wall` uses that)."""
    fn()
    start = clock()
    for _ in range(repeats):
        fn()
    return (clock() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--wall", action="store_true", help="time wall-clock instead of CPU time")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = get_cfg_defaults()
    cfg.AUGMENTOR.ENABLE = True
    for name in OPS:
        cfg.AUGMENTOR[name] = name != "ZFLIP"  # every 2D transformation
    augmenter = Augmenter(cfg)
    prepare = make_prepare(Normalizer.from_cfg(cfg), augmenter, Runtime(torch.device("cpu")))
    images = torch.randint(0, 256, (args.batch, 1, args.size, args.size), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.batch,))

    model = build_model(ModelSpec("simple_cnn", "2D", 1, 10, (args.size, args.size)), cfg.MODEL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = prepare(images, 255.0, True)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()

    pipeline_rates, step_rates = [], []
    for _ in range(args.rounds):
        clock = time.perf_counter if args.wall else time.process_time
        pipeline_rates.append(args.batch / timed(lambda: prepare(images, 255.0, True), args.repeats, clock))
        step_rates.append(args.batch / timed(step, args.repeats, clock))
    pipe, train = max(pipeline_rates), max(step_rates)
    print(f"augmentations: {augmenter.describe()}")
    print(f"batch {args.batch} x 1 x {args.size} x {args.size}, {args.threads} thread(s), "
          f"{'wall-clock' if args.wall else 'CPU'} time, best of {args.rounds} rounds")
    print(f"augmentation pipeline: {pipe:,.0f} samples/s")
    print(f"simple_cnn training step: {train:,.0f} samples/s")
    print(f"ratio: {pipe / train:.1f}x (must be >= 5x); median rounds: "
          f"{statistics.median(pipeline_rates):,.0f} vs {statistics.median(step_rates):,.0f} samples/s")
    return 0 if pipe >= 5 * train else 1


if __name__ == "__main__":
    sys.exit(main())
