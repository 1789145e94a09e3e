"""The three runs of issue 8's comparison with BiaPy 3.7.1, through the `biapy` CLI, on this CPU.

BiaPy 3.7.1, 10 epochs on a 2-core CPU: simple_cnn on 32x32 digits 44 s for 0.963 test accuracy; its
default ViT 406 s for 0.38; 3D simple_cnn on 16x32x32 volumes 20 min for 0.58. Here: the templates in
templates/classification/ with TRAIN.EPOCHS 10, on the digits of scripts/make_example_data.py (2D, and
`--3d` for the volumes). Wall time of the whole command (start-up, loading, training, test) and the test
accuracy from test_metrics.json; the table is printed and written into docs/benchmarks.md.

    python bench/against_biapy.py [--runs 2d_simple_cnn,2d_vit,3d_simple_cnn] [--output docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from run import cpu_model, replace_block  # noqa: E402

TEMPLATES = ROOT / "templates" / "classification"
# name: (template, data flag, overrides, BiaPy 3.7.1 seconds, BiaPy test accuracy)
RUNS = {
    "2d_simple_cnn": ("2d_classification_digits.yaml", [], ["MODEL.ARCHITECTURE", "simple_cnn"], 44, 0.963),
    "2d_vit": ("2d_classification_digits.yaml", [], ["MODEL.ARCHITECTURE", "vit"], 406, 0.38),
    "3d_simple_cnn": ("3d_classification.yaml", ["--3d", "--depth", "16"],
                      ["MODEL.ARCHITECTURE", "simple_cnn", "DATA.PATCH_SIZE", "(16, 32, 32, 1)"], 20 * 60, 0.58),
}
BEGIN, END = "<!-- bench/against_biapy.py begin -->", "<!-- bench/against_biapy.py end -->"


def run_one(name: str, work: Path) -> dict:
    template, data_flags, overrides, _, _ = RUNS[name]
    data = work / ("digits3d" if data_flags else "digits")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "biapy_cls", "--config", str(TEMPLATES / template), "--result_dir", str(work),
           "--name", name, "--run_id", "1", "DATA.TRAIN.PATH", str(data / "train"), "DATA.TEST.PATH",
           str(data / "test"), "TRAIN.EPOCHS", "10", *overrides]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads(next((work / name).rglob("test_metrics.json")).read_text())
    log = next((work / name).rglob("*training_log.json"), None)
    epochs = len(log.read_text().splitlines()) if log else None  # one JSON line per epoch
    return {"name": name, "seconds": seconds, "accuracy": metrics["accuracy"], "epochs": epochs}


def table(rows: list[dict], parallel: bool) -> str:
    lines = [
        "## Against BiaPy",
        "",
        f"`python bench/against_biapy.py` on {cpu_model()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end (wall times are noisy when other processes run). "
        "BiaPy 3.7.1 figures: issue 8 (10 epochs, same kind of 2-core CPU). "
        "Ours: the templates in templates/classification/ with TRAIN.EPOCHS 10 (early stopping may end "
        "sooner), digits from `scripts/make_example_data.py` (3D: `--3d --depth 16`), whole `biapy` command"
        + (", the three runs at the same time (--parallel)." if parallel else "."),
        "",
        "| run | BiaPy 3.7.1 s | BiaPy test accuracy | ours s | ours test accuracy | epochs run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        _, _, _, biapy_s, biapy_acc = RUNS[r["name"]]
        lines.append(f"| {r['name']} | {biapy_s} | {biapy_acc:.3f} | {r['seconds']:.0f} | {r['accuracy']:.3f} | "
                     f"{r['epochs']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of: {', '.join(RUNS)}")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--parallel", action="store_true", help="all runs at once (each then gets less CPU)")
    args = parser.parse_args(argv)
    names = args.runs.split(",")
    with tempfile.TemporaryDirectory(prefix="against_biapy_") as tmp:
        for flags in {tuple(RUNS[n][1]) for n in names}:  # write each dataset once, before any run
            data = Path(tmp) / ("digits3d" if flags else "digits")
            subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example_data.py"), str(data), *flags],
                           check=True, capture_output=True)
        with ThreadPoolExecutor(len(names) if args.parallel else 1) as pool:
            rows = list(pool.map(lambda n: run_one(n, Path(tmp)), names))
    for r in rows:
        print(f"{r['name']}: {r['seconds']:.0f} s, test accuracy {r['accuracy']:.3f}", flush=True)
    text = table(rows, args.parallel)
    print(text)
    replace_block(Path(args.output), text, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
