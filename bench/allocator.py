"""CPU training steps with glibc's malloc defaults against freed memory kept for reuse (engine/allocator.py).

The setting is global to a process, so each side runs in its own fresh process: a child builds the model,
takes 10 warm-up steps (forward, cross-entropy, backward, AdamW) on a 32x1x32x32 batch and times 40 more,
counting the minor page faults and the peak resident memory. The two sides run alternately, several rounds,
and each round's ratio compares neighbours, so that the machine's drifting speed affects both alike.
Writes its section of docs/benchmarks.md (or --output).

    python bench/allocator.py [--rounds 3] [--threads 1] [--models simple_cnn,vit] [--output docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## CPU memory between training steps"
MODELS = ("simple_cnn", "vit", "efficientnet_b0")


def child(arch: str, keep: bool, threads: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import torch

    from biapy_cls.config.defaults import get_cfg_defaults
    from biapy_cls.config.settings import TrainSettings
    from biapy_cls.engine.allocator import keep_freed_memory
    from biapy_cls.engine.optim import build_optimizer
    from biapy_cls.models import ModelSpec, build_model

    note = keep_freed_memory() if keep else "glibc's defaults"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = get_cfg_defaults()
    model = build_model(ModelSpec(arch, "2D", 1, 10, (32, 32)), cfg.MODEL)
    optimizer = build_optimizer(TrainSettings.from_cfg(cfg), model)
    images, labels = torch.rand(32, 1, 32, 32), torch.randint(0, 10, (32,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    for _ in range(10):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = []
    for _ in range(40):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"step": statistics.median(times), "faults": (usage.ru_minflt - faults) / 40, "rss": usage.ru_maxrss / 1024,
            "note": note}


def measure(arch: str, keep: bool, threads: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", arch, "--keep", str(int(keep)), "--threads",
                           str(threads)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(rounds: int, threads: int, models: tuple[str, ...] = MODELS) -> list[dict]:
    rows = []
    for arch in models:
        ratios, sides = [], {False: [], True: []}
        for _ in range(rounds):
            default, kept = measure(arch, False, threads), measure(arch, True, threads)
            sides[False].append(default)
            sides[True].append(kept)
            ratios.append(default["step"] / kept["step"])
            print(f"{arch}: default {default['step'] * 1e3:.1f} ms ({default['faults']:.0f} faults/step), kept "
                  f"{kept['step'] * 1e3:.1f} ms ({kept['faults']:.0f}): {ratios[-1]:.2f}x", file=sys.stderr)
        rows.append({"arch": arch, "ratios": ratios, "note": sides[True][0]["note"],
                     **{f"{k}_{name}": statistics.median(r[k] for r in sides[keep])
                        for keep, name in ((False, "default"), (True, "kept")) for k in ("step", "faults", "rss")}})
    return rows


def section(rows: list[dict], rounds: int, threads: int) -> list[str]:
    lines = [HEADING, "",
             f"`python bench/allocator.py --rounds {rounds} --threads {threads}`: one training step (forward, "
             "cross-entropy, backward, AdamW) on a 32x1x32x32 batch, glibc's malloc defaults against freed memory "
             "kept for reuse (what `biapy` sets on the CPU, `biapy_cls/engine/allocator.py`), each side in fresh "
             f"processes, alternating, {rounds} rounds; medians of 40 steps after 10 warm-up steps.", "",
             "| model | step, defaults (ms) | step, kept (ms) | speed-up (median, range) | page faults per step, "
             "defaults / kept | peak memory, defaults / kept (MB) |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['arch']} | {r['step_default'] * 1e3:.1f} | {r['step_kept'] * 1e3:.1f} | "
                     f"{statistics.median(r['ratios']):.2f}x ({min(r['ratios']):.2f}-{max(r['ratios']):.2f}) | "
                     f"{r['faults_default']:,.0f} / {r['faults_kept']:,.0f} | {r['rss_default']:,.0f} / "
                     f"{r['rss_kept']:,.0f} |")
    lines += ["", "With the defaults, glibc hands the memory a step frees back to the kernel, and the next step "
              "gets it again page by page, zero-filled; how many pages depends on the heap's layout, which varies "
              "from process to process (hence the ranges). Kept, a step reuses what the previous one freed.", ""]
    return lines


def write(path: Path, lines: list[str]) -> None:
    text = path.read_text()
    if HEADING in text:
        head, rest = text.split(HEADING, 1)
        end = rest.find("\n## ")
        text = head + "\n".join(lines).rstrip("\n") + ("\n" + rest[end:] if end >= 0 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines)
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated architectures")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--child")
    parser.add_argument("--keep", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, bool(args.keep), args.threads)))
        return
    rows = run(args.rounds, args.threads, tuple(args.models.split(",")))
    write(Path(args.output), section(rows, args.rounds, args.threads))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
