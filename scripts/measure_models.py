#!/usr/bin/env python3
"""Parameter count and CPU training throughput of every architecture, as the table in docs/models.md.

    python scripts/measure_models.py                       # every architecture, 2D and 3D
    python scripts/measure_models.py --archs vit simple_cnn --steps 5
    python scripts/measure_models.py --params-only         # no timing (fast)
    python scripts/measure_models.py --source torchvision --archs resnet18 r3d_18 --sizes 32 224 --channels 3

Inputs: 32x32 images (2D) and 16x32x32 volumes (3D), 1 channel, 10 classes, batches of 16, AdamW;
`--sizes` gives other 2D sides (3D: 16 x side x side), `--source` measures MODEL.SOURCE torchvision or timm
models (random weights: nothing is downloaded; a torchvision video model is measured on volumes).
Throughput = images per second over `--steps` training steps (forward, backward, optimizer step),
after one untimed warm-up step. Timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from biapy_cls.config.defaults import get_cfg_defaults  # noqa: E402
from biapy_cls.models import ModelSpec, available_architectures, available_sources, build_model  # noqa: E402

SIZES = {"2D": (32, 32), "3D": (16, 32, 32)}


def throughput(model: torch.nn.Module, spatial: tuple[int, ...], batch: int, steps: int, channels: int = 1,
               cpu_time: bool = False) -> float:
    """Training images per second of wall time, or per second of this process's CPU time (`cpu_time`: with one
    thread, what one idle core would do, nearly independent of other load on a shared machine)."""
    clock = time.process_time if cpu_time else time.perf_counter
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, channels, *spatial)
    y = torch.randint(0, 10, (batch,))
    model.train()
    start = 0.0
    for step in range(steps + 1):
        if step == 1:
            start = clock()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return batch * steps / (clock() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="*", default=available_architectures(), help="architectures to measure")
    parser.add_argument("--ndims", nargs="*", default=["2D", "3D"], choices=["2D", "3D"])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model (default 3)")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--params-only", action="store_true", help="count parameters, do not time")
    parser.add_argument("--source", default="biapy", choices=available_sources(), help="MODEL.SOURCE (default biapy)")
    parser.add_argument("--sizes", nargs="*", type=int, default=[32], help="2D image sides (default 32)")
    parser.add_argument("--channels", type=int, default=1, help="input channels (default 1)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="images per second of process CPU time (use with --threads 1 on a loaded machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = get_cfg_defaults().MODEL
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s); batch {args.batch}, "
          f"{args.steps} steps; load average {load:.1f} at the start\n")
    unit = "per CPU-second (1 thread)" if args.cpu_time else "(CPU)"
    print(f"| architecture | input | parameters | training images/s {unit} |")
    print("|---|---|---:|---:|")
    for arch in args.archs:
        for ndim in _ndims(args.source, arch, args.ndims):
            for side in args.sizes:
                spatial = (16, side, side) if ndim == "3D" else (side, side)
                torch.manual_seed(0)
                model = build_model(ModelSpec(arch, ndim, args.channels, 10, spatial, args.source), cfg)
                params = sum(p.numel() for p in model.parameters())
                speed = "-" if args.params_only else \
                    f"{throughput(model, spatial, args.batch, args.steps, args.channels, args.cpu_time):.1f}"
                name = arch if args.source == "biapy" else f"{args.source} {arch}"
                print(f"| {name} | {ndim} {'x'.join(map(str, spatial))} | {params / 1e6:.2f} M | {speed} |", flush=True)
    return 0


def _ndims(source: str, arch: str, wanted: list[str]) -> list[str]:
    """torchvision's video models are 3D, its other models and timm's 2D; biapy's are both."""
    if source == "biapy":
        return wanted
    if source == "torchvision":
        from biapy_cls.models.torchvision_source import model_names

        return ["3D"] if arch in model_names()[1] else ["2D"]
    return ["2D"]


if __name__ == "__main__":
    sys.exit(main())
