"""Test accuracy on the digits with and without the beyond-BiaPy regularisers (issue 18, item 5).

Trains the digits template (templates/classification/2d_classification_digits.yaml: simple_cnn, AdamW,
LR 3e-3, RANDOM_ROT +-10 degrees) for a fixed number of epochs, no early stopping, once per (setting, seed),
with the CLI in a subprocess of one thread, and prints a markdown table of test accuracy (mean, range,
each seed) and the mean CPU seconds of a run. `--ndim 3D` does the same on the 3D digits (16x32x32 volumes,
bench/model_ablation.py's 3D setup with the 2D template's optimizer); RandAugment is 2D only.

    python scripts/make_example_data.py data/digits
    python bench/regularisers.py --data data/digits --epochs 10 --seeds 0 1 2 [--patch 16] [--jobs 6]
    python bench/regularisers.py --data data/digits --epochs 10 --out bench/results/regularisers.json
    python bench/regularisers.py --render bench/results/regularisers.json --docs docs/benchmarks.md

`--out` merges every run into a JSON file (one table per data/epochs/patch setup, with the command);
`--render` prints the tables of such a file and, with `--docs`, writes them between
`<!-- bench/regularisers.py begin -->` and `<!-- bench/regularisers.py end -->`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates" / "classification"
TEMPLATE = TEMPLATES / "2d_classification_digits.yaml"
# 3D: the volumes of `make_example_data.py --3d --depth 16`, trained like the 2D template (simple_cnn, LR 3e-3)
SETUP_3D = ["DATA.N_CLASSES", "10", "DATA.NORMALIZATION.TYPE", "div", "MODEL.ARCHITECTURE", "simple_cnn",
            "TRAIN.LR", "3e-3", "TRAIN.BATCH_SIZE", "32", "TRAIN.LR_SCHEDULER.NAME", "''",
            "DATA.VAL.SPLIT_TRAIN", "0.1", "AUGMENTOR.RANDOM_ROT_RANGE", "(-10, 10)", "AUGMENTOR.HFLIP", "False",
            "AUGMENTOR.VFLIP", "False", "AUGMENTOR.ZFLIP", "False"]

SETTINGS = {
    "template (RANDOM_ROT +-10)": [],
    "+ MixUp 0.2 / CutMix 1.0": ["AUGMENTOR.MIXUP", "0.2", "AUGMENTOR.CUTMIX_ALPHA", "1.0"],
    "+ RandAugment N=2 M=9": ["AUGMENTOR.RANDAUGMENT.ENABLE", "True"],
    "+ EMA 0.99": ["MODEL.EMA.ENABLE", "True", "MODEL.EMA.DECAY", "0.99", "MODEL.EMA.WARMUP", "50"],
}
SETTINGS_3D = [s for s in SETTINGS if "RandAugment" not in s]


def run_one(data: Path, out: Path, name: str, seed: int, epochs: int, patch: int, ndim: str,
            extra: list[str]) -> dict:
    """One training + test run in a subprocess; its CPU seconds come from the kernel (os.wait4)."""
    if ndim == "3D":
        template, shape = TEMPLATES / "3d_classification.yaml", f"(16, {patch}, {patch}, 1)"
    else:
        template, shape = TEMPLATE, f"({patch}, {patch}, 1)"
    opts = ["SYSTEM.SEED", str(seed), "TRAIN.EPOCHS", str(epochs), "TRAIN.PATIENCE", "-1",
            "DATA.PATCH_SIZE", shape, "DATA.TRAIN.PATH", str(data / "train"), "DATA.TEST.PATH", str(data / "test"),
            "AUGMENTOR.AUG_SAMPLES", "False", "SYSTEM.NUM_CPUS", "1", "SYSTEM.NUM_WORKERS", "0",
            *(SETUP_3D if ndim == "3D" else []), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "biapy_cls", "--config", str(template), "--result_dir", str(out),
                             "--name", name, "--run_id", str(seed), "--overwrite", *opts], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"run {name} (seed {seed}) failed with exit code {proc.returncode}")
    metrics = json.loads((out / name / "results" / f"{name}_{seed}" / "test_metrics.json").read_text())
    return {"accuracy": round(metrics["accuracy"], 4), "cpu": round(usage.ru_utime + usage.ru_stime, 1),
            "wall": round(time.time() - start, 1)}


def table(results: dict) -> str:
    """One setup's runs ({setting: {seed: run}}) as a markdown table."""
    lines = ["| setting | test accuracy, mean | range | per seed | CPU s (mean) |", "|---|---:|---:|---|---:|"]
    for setting, runs in results.items():
        accs = [r["accuracy"] for r in runs.values()]
        if not accs:
            continue
        per_seed = ", ".join(f"{s}: {r['accuracy']:.4f}" for s, r in sorted(runs.items(), key=lambda kv: int(kv[0])))
        cpu = [r["cpu"] for r in runs.values() if "cpu" in r]
        cpu_text = f"{statistics.mean(cpu):.0f}" if cpu else "-"
        lines.append(f"| {setting} | {statistics.mean(accs):.4f} | {min(accs):.4f}-{max(accs):.4f} | {per_seed} | "
                     f"{cpu_text} |")
    return "\n".join(lines)


BEGIN, END = "<!-- bench/regularisers.py begin -->", "<!-- bench/regularisers.py end -->"


def render(saved: dict) -> str:
    """Every setup of a --out file: a heading line with the command, then its table."""
    parts = []
    for setup in saved.values():
        parts.append(f"{setup['title']}, one CPU thread per run:\n\n    {setup['command']}\n\n{table(setup['runs'])}")
    return "\n\n".join(parts)


def render_file(path: Path, docs: Path | None) -> int:
    sys.path.insert(0, str(ROOT / "bench"))
    from run import render_saved  # imported here: run.py loads every benchmark module

    return render_saved(path, render, docs, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "digits")
    parser.add_argument("--ndim", default="2D", choices=["2D", "3D"], help="3D: --data holds the 3D digits")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--patch", type=int, default=32, help="image side the digits are resized to (16: 4x cheaper)")
    parser.add_argument("--settings", nargs="*", type=int, default=None,
                        help="only these settings (their numbers in the table, from 0); default all")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time (one thread each)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file every run is merged into as it ends")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="print the tables of a --out file (and write them into --docs); runs nothing")
    parser.add_argument("--docs", type=Path, default=None, help="markdown file whose generated block --render fills")
    args = parser.parse_args(argv)
    if args.render:
        return render_file(args.render, args.docs)
    names = SETTINGS_3D if args.ndim == "3D" else list(SETTINGS)
    chosen = [names[i] for i in args.settings] if args.settings is not None else names
    key = f"{args.ndim} {args.patch}px {args.epochs} epochs"
    saved = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    setup = saved.setdefault(key, {"runs": {}})
    setup["title"] = (f"{args.ndim} digits ({args.patch}x{args.patch}{' x16 deep' if args.ndim == '3D' else ''}), "
                      f"{args.epochs} epochs")
    setup["command"] = (f"python bench/regularisers.py --data {args.data} --ndim {args.ndim} --epochs {args.epochs} "
                        f"--patch {args.patch}")
    results: dict = {s: setup["runs"].setdefault(s, {}) for s in chosen}
    # seed-major: an interrupted benchmark still covers every setting
    runs = [(seed, names.index(s), s, SETTINGS[s]) for seed in args.seeds for s in chosen]
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, args.data.resolve(), Path(tmp), f"s{i}seed{seed}", seed, args.epochs,
                               args.patch, args.ndim, extra): (setting, seed) for seed, i, setting, extra in runs}
        for future in concurrent.futures.as_completed(futures):
            setting, seed = futures[future]
            results[setting][str(seed)] = future.result()
            print(setting, seed, results[setting][str(seed)], flush=True)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(saved, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
