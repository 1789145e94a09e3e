"""Test accuracy on the digits with and without the beyond-BiaPy regularisers (issue 18, item 5).

Trains the digits template (templates/classification/2d_classification_digits.yaml: simple_cnn, AdamW,
RANDOM_ROT +-10 degrees) for a fixed number of epochs, no early stopping, once per (setting, seed), with
the CLI in a subprocess, and prints a markdown table of test accuracy (mean, standard deviation, each seed).

    python scripts/make_example_data.py data/digits
    python bench/regularisers.py --data data/digits --epochs 10 --seeds 0 1 2 [--patch 16] [--jobs 6]
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
TEMPLATE = ROOT / "templates" / "classification" / "2d_classification_digits.yaml"

SETTINGS = {
    "template (RANDOM_ROT +-10)": [],
    "+ MixUp 0.2 / CutMix 1.0": ["AUGMENTOR.MIXUP", "0.2", "AUGMENTOR.CUTMIX_ALPHA", "1.0"],
    "+ RandAugment N=2 M=9": ["AUGMENTOR.RANDAUGMENT.ENABLE", "True"],
    "+ EMA 0.99": ["MODEL.EMA.ENABLE", "True", "MODEL.EMA.DECAY", "0.99", "MODEL.EMA.WARMUP", "50"],
}


def run_one(data: Path, out: Path, name: str, seed: int, epochs: int, patch: int, extra: list[str]) -> dict:
    opts = ["SYSTEM.SEED", str(seed), "TRAIN.EPOCHS", str(epochs), "TRAIN.PATIENCE", "-1",
            "DATA.PATCH_SIZE", f"({patch}, {patch}, 1)",
            "DATA.TRAIN.PATH", str(data / "train"), "DATA.TEST.PATH", str(data / "test"),
            "AUGMENTOR.AUG_SAMPLES", "False", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.time()
    subprocess.run([sys.executable, "-m", "biapy_cls", "--config", str(TEMPLATE), "--result_dir", str(out),
                    "--name", name, "--run_id", str(seed), "--overwrite", *opts], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = json.loads((out / name / "results" / f"{name}_{seed}" / "test_metrics.json").read_text())
    return {"accuracy": metrics["accuracy"], "seconds": round(time.time() - start, 1)}


def table(results: dict) -> str:
    lines = ["| setting | test accuracy, mean | sd | per seed |", "|---|---:|---:|---|"]
    for setting, runs in results.items():
        accs = [r["accuracy"] for r in runs.values()]
        if not accs:
            continue
        sd = statistics.stdev(accs) if len(accs) > 1 else float("nan")
        per_seed = ", ".join(f"{s}: {r['accuracy']:.4f}" for s, r in runs.items())
        lines.append(f"| {setting} | {statistics.mean(accs):.4f} | {sd:.4f} | {per_seed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "digits")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--patch", type=int, default=32, help="image side the digits are resized to (16: 4x cheaper)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at the same time (one thread each)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file updated after every run")
    args = parser.parse_args(argv)
    results: dict = {s: {} for s in SETTINGS}
    # seed-major: an interrupted benchmark still covers every setting
    runs = [(seed, i, setting, extra) for seed in args.seeds for i, (setting, extra) in enumerate(SETTINGS.items())]
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, args.data.resolve(), Path(tmp), f"s{i}seed{seed}", seed, args.epochs,
                               args.patch, extra): (setting, seed) for seed, i, setting, extra in runs}
        for future in concurrent.futures.as_completed(futures):
            setting, seed = futures[future]
            results[setting][seed] = future.result()
            print(setting, seed, results[setting][seed], flush=True)
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
    results = {s: dict(sorted(r.items())) for s, r in results.items()}
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
