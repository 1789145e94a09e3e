#!/usr/bin/env python3
"""Parameter count and CPU training throughput of every architecture, as the table in docs/models.md.

    python scripts/measure_models.py                       # every architecture, 2D and 3D
    python scripts/measure_models.py --archs vit simple_cnn --steps 5
    python scripts/measure_models.py --params-only         # no timing (fast)

Inputs: 32x32 images (2D) and 16x32x32 volumes (3D), 1 channel, 10 classes, batches of 16, AdamW.
Throughput = images per second over `--steps` training steps (forward, backward, optimizer step),
after one untimed warm-up step. Timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from biapy_cls.config.defaults import get_cfg_defaults  # noqa: E402
from biapy_cls.models import ModelSpec, available_architectures, build_model  # noqa: E402

SIZES = {"2D": (32, 32), "3D": (16, 32, 32)}


def throughput(model: torch.nn.Module, spatial: tuple[int, ...], batch: int, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, *spatial)
    y = torch.randint(0, 10, (batch,))
    model.train()
    start = 0.0
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="*", default=available_architectures(), help="architectures to measure")
    parser.add_argument("--ndims", nargs="*", default=["2D", "3D"], choices=["2D", "3D"])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model (default 3)")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--params-only", action="store_true", help="count parameters, do not time")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = get_cfg_defaults().MODEL
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s); batch {args.batch}, {args.steps} steps\n"
    )
    print("| architecture | input | parameters | training images/s (CPU) |")
    print("|---|---|---:|---:|")
    for arch in args.archs:
        for ndim in args.ndims:
            spatial = SIZES[ndim]
            torch.manual_seed(0)
            model = build_model(ModelSpec(arch, ndim, 1, 10, spatial), cfg)
            params = sum(p.numel() for p in model.parameters())
            speed = "-" if args.params_only else f"{throughput(model, spatial, args.batch, args.steps):.1f}"
            print(f"| {arch} | {ndim} {'x'.join(map(str, spatial))} | {params / 1e6:.2f} M | {speed} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
