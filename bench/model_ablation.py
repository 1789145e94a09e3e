"""Test accuracy of a built-in model on the digits under a BiaPy user's settings, over several seeds.

The setting (issue 14): templates/classification/2d_classification_digits.yaml (3D: 3d_classification.yaml
on 16x32x32 digit volumes) with BiaPy's optimizer settings: AdamW, TRAIN.LR 1e-3, no LR scheduler,
batch 32, 10 epochs, no early stopping, RANDOM_ROT, 10% of the training images for validation. Each seed
(SYSTEM.SEED) runs the whole `biapy` command in this process; the script prints one line per seed and
a summary: mean and range (min-max) of the test accuracy, mean wall and CPU seconds of the command.

    python bench/model_ablation.py --arch vit                      # 3 seeds, 2D
    python bench/model_ablation.py --arch vit --ndim 3D --seeds 0 1 2
    python bench/model_ablation.py --arch vit --design stem=patchify    # an ablation of docs/models.md
    python bench/model_ablation.py --arch simple_cnn --set TRAIN.LR 3e-3
    python bench/model_ablation.py --arch torchvision:resnet18 --set TRAIN.EPOCHS 5   # random start (offline)
    python bench/model_ablation.py --arch vit --out bench/results/model_ablation.json   # keep the row
    python bench/model_ablation.py --render bench/results/model_ablation.json --docs docs/models.md

`--out` merges the row (each seed's accuracy and CPU seconds, and the command that produced it) into a
JSON file; `--render` turns that file into the markdown table of docs/models.md, written between
`<!-- bench/model_ablation.py begin -->` and `<!-- bench/model_ablation.py end -->` with `--docs`.

`--design` changes one design choice of the model (a field of DESIGN in the architecture's module:
biapy_cls/models/vit.py, simple_cnn.py, efficientnet.py; EfficientNet's 3D design is DESIGN_3D) to measure
what it earns.
CPU seconds (of this process) are less disturbed than wall seconds by other processes on the machine.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEMPLATES = ROOT / "templates" / "classification"
BIAPY_SETTINGS = ["TRAIN.OPTIMIZER", "ADAMW", "TRAIN.LR", "1e-3", "TRAIN.BATCH_SIZE", "32", "TRAIN.EPOCHS", "10",
                  "TRAIN.PATIENCE", "-1", "TRAIN.LR_SCHEDULER.NAME", "''", "AUGMENTOR.ENABLE", "True",
                  "AUGMENTOR.RANDOM_ROT", "True", "DATA.VAL.FROM_TRAIN", "True", "DATA.VAL.SPLIT_TRAIN", "0.1",
                  "SYSTEM.NUM_CPUS", "1", "SYSTEM.NUM_WORKERS", "0"]
SETUPS = {  # ndim: (template, data flags, extra overrides)
    "2D": ("2d_classification_digits.yaml", [], []),
    "3D": ("3d_classification.yaml", ["--3d", "--depth", "16"],
           ["DATA.PATCH_SIZE", "(16, 32, 32, 1)", "DATA.N_CLASSES", "10", "DATA.NORMALIZATION.TYPE", "div",
            "AUGMENTOR.RANDOM_ROT_RANGE", "(-10, 10)", "AUGMENTOR.HFLIP", "False", "AUGMENTOR.VFLIP", "False",
            "AUGMENTOR.ZFLIP", "False"]),
}


def apply_design(arch: str, changes: list[str], ndim: str = "2D") -> str:
    """Set fields of the architecture module's DESIGN (e.g. stem=patchify), or of its DESIGN_3D in 3D where it
    has one (efficientnet.py); returns them as text."""
    from biapy_cls.models import architecture_module, normalize_architecture

    if not changes:
        return "default"
    module = importlib.import_module(architecture_module(normalize_architecture(arch)))
    values = {}
    for change in changes:
        key, _, text = change.partition("=")
        try:
            values[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[key] = text
    name = "DESIGN_3D" if ndim == "3D" and hasattr(module, "DESIGN_3D") else "DESIGN"
    setattr(module, name, replace(getattr(module, name), **values))
    return " ".join(changes) or "default"


def ensure_data(ndim: str, data_root: Path) -> Path:
    template, flags, _ = SETUPS[ndim]
    data = data_root / ("digits3d" if flags else "digits")
    if not (data / "train").exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example_data.py"), str(data), *flags],
                       check=True, capture_output=True)
    return data


def model_keys(arch: str) -> list[str]:
    """The MODEL overrides for `arch`: a built-in architecture, or torchvision:NAME (random start: no download)."""
    source, _, name = arch.rpartition(":")
    if source == "torchvision":
        return ["MODEL.SOURCE", "torchvision", "MODEL.TORCHVISION_MODEL_NAME", name,
                "MODEL.TORCHVISION_PRETRAINED", "False"]
    if source:
        raise SystemExit(f"--arch {arch}: only torchvision:NAME is known as a source prefix")
    return ["MODEL.ARCHITECTURE", arch]


def run_seed(arch: str, ndim: str, seed: int, data: Path, work: Path, extra: list[str]) -> dict:
    from biapy_cls.cli import main

    template, _, overrides = SETUPS[ndim]
    name = f"s{seed}"
    argv = ["--config", str(TEMPLATES / template), "--result_dir", str(work), "--name", name, "--run_id", "1",
            "DATA.TRAIN.PATH", str(data / "train"), "DATA.TEST.PATH", str(data / "test"),
            *BIAPY_SETTINGS, *overrides, *model_keys(arch), "SYSTEM.SEED", str(seed), *extra]
    wall, cpu = time.perf_counter(), time.process_time()
    code = main(argv)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if code != 0:
        raise SystemExit(f"seed {seed} failed with exit code {code}")
    metrics = json.loads(next((work / name).rglob("test_metrics.json")).read_text())
    return {"seed": seed, "accuracy": metrics["accuracy"], "wall": wall, "cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vit")
    parser.add_argument("--ndim", default="2D", choices=sorted(SETUPS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--design", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="change the model's design (the fields of DESIGN in its module), e.g. stem=patchify")
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="extra config override, e.g. --set TRAIN.LR 3e-3 (repeatable)")
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "biapy_cls_ablation_data"),
                        help="where the digits are written once and reused")
    parser.add_argument("--quiet", action="store_true", help="hide the biapy log of each run")
    parser.add_argument("--out", type=Path, default=None, help="JSON file the row is merged into")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="print the markdown table of a --out file (and write it into --docs); runs nothing")
    parser.add_argument("--docs", type=Path, default=None, help="markdown file whose generated block --render fills")
    parser.add_argument("--jobs", type=int, default=1,
                        help="run the seeds in this many processes at once (1 thread each; wall times then compete)")
    args = parser.parse_args(argv)
    if args.render:
        return render_file(args.render, args.docs)
    import torch

    torch.set_num_threads(1)
    variant = apply_design(args.arch, args.design, args.ndim)
    data = ensure_data(args.ndim, Path(args.data))
    extra = [v for kv in args.set for v in kv]
    if args.jobs > 1 and len(args.seeds) > 1:
        rows = run_parallel(args, argv if argv is not None else sys.argv[1:])
        return summary(args, variant, rows)
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="ablation_") as tmp:
            if args.quiet:
                with open(os.devnull, "w") as sink:
                    stdout, sys.stdout = sys.stdout, sink
                    try:
                        row = run_seed(args.arch, args.ndim, seed, data, Path(tmp), extra)
                    finally:
                        sys.stdout = stdout
            else:
                row = run_seed(args.arch, args.ndim, seed, data, Path(tmp), extra)
        rows.append(row)
        print(f"seed {seed}: test accuracy {row['accuracy']:.4f}, {row['wall']:.0f} s wall, {row['cpu']:.0f} s CPU",
              flush=True)
        print("ROW " + json.dumps(row), flush=True)  # read by run_parallel
    return summary(args, variant, rows)


def run_parallel(args: argparse.Namespace, argv: list[str]) -> list[dict]:
    """Each seed in its own process (this script with --seeds S --jobs 1), up to --jobs at a time."""
    from concurrent.futures import ThreadPoolExecutor

    base = [a for a in argv]
    for option in ("--seeds", "--out"):  # each child runs one seed; only this process writes --out
        i = base.index(option) if option in base else -1
        if i >= 0:  # drop the option and its values
            j = i + 1
            while j < len(base) and not base[j].startswith("--"):
                j += 1
            base = base[:i] + base[j:]

    def one(seed: int) -> dict:
        done = subprocess.run([sys.executable, __file__, *base, "--seeds", str(seed), "--jobs", "1"],
                              capture_output=True, text=True)
        rows = [json.loads(line[4:]) for line in done.stdout.splitlines() if line.startswith("ROW ")]
        if done.returncode != 0 or not rows:
            raise SystemExit(f"seed {seed} failed:\n{done.stderr[-2000:]}")
        row = rows[0]
        print(f"seed {seed}: test accuracy {row['accuracy']:.4f}, {row['wall']:.0f} s wall, {row['cpu']:.0f} s CPU",
              flush=True)
        return row

    with ThreadPoolExecutor(args.jobs) as pool:
        return list(pool.map(one, args.seeds))


def command_of(args: argparse.Namespace) -> str:
    """The command that reproduces a row (without the options that change only where or how fast it runs)."""
    parts = ["python bench/model_ablation.py", "--arch", args.arch]
    parts += ["--ndim", args.ndim] if args.ndim != "2D" else []
    parts += ["--design", *args.design] if args.design else []
    for key, value in args.set:
        parts += ["--set", key, value]
    return " ".join(parts)  # the seeds are a column of the table (default 0 1 2)


def save_row(path: Path, args: argparse.Namespace, variant: str, rows: list[dict]) -> None:
    """Merge this row into the JSON file: one entry per (model, dims, design, setting), seeds merged by number."""
    results = json.loads(path.read_text()) if path.exists() else {}
    setting = " ".join(f"{k}={v}" for k, v in args.set)
    key = " | ".join([f"{args.arch} {args.ndim}", variant, setting])
    entry = results.setdefault(key, {"model": f"{args.arch} {args.ndim}", "design": variant, "setting": setting,
                                     "seeds": {}})
    entry["seeds"].update({str(r["seed"]): {"accuracy": round(r["accuracy"], 4), "cpu": round(r["cpu"], 1),
                                            "wall": round(r["wall"], 1)} for r in rows})
    entry["command"] = command_of(args)
    entry["torch_threads"] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")


BEGIN, END = "<!-- bench/model_ablation.py begin -->", "<!-- bench/model_ablation.py end -->"


def render(results: dict) -> str:
    """The markdown table of a --out file: mean and range over the seeds, mean CPU seconds, the command."""
    lines = ["| model | design | setting | test accuracy, mean | range | CPU s (mean) | seeds | command |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    # each model's default first, then its variants: the ablation reads against the row above it
    for entry in sorted(results.values(), key=lambda e: (e["model"], e["design"] != "default", e["setting"] != "")):
        runs = [entry["seeds"][s] for s in sorted(entry["seeds"], key=int)]
        accs = [r["accuracy"] for r in runs]
        lines.append(f"| {entry['model']} | {entry['design']} | {entry['setting'] or '-'} | "
                     f"{statistics.mean(accs):.3f} | {min(accs):.3f}-{max(accs):.3f} | "
                     f"{statistics.mean(r['cpu'] for r in runs):.0f} | {','.join(sorted(entry['seeds'], key=int))} | "
                     f"`{entry['command']}` |")
    return "\n".join(lines)


def render_file(path: Path, docs: Path | None) -> int:
    sys.path.insert(0, str(ROOT / "bench"))
    from run import render_saved  # imported here: run.py loads every benchmark module

    return render_saved(path, render, docs, BEGIN, END)


def summary(args: argparse.Namespace, variant: str, rows: list[dict]) -> int:
    """The table row of docs/models.md: mean and range of the test accuracy, mean wall and CPU seconds."""
    accs = [r["accuracy"] for r in rows]
    setting = " ".join(f"{k}={v}" for k, v in args.set)
    if args.out is not None:
        save_row(args.out, args, variant, rows)
    print("| model | design | test accuracy mean | range | wall s | CPU s | seeds |")
    print(f"| {args.arch} {args.ndim} | {variant} {setting} | {statistics.mean(accs):.3f} | "
          f"{min(accs):.3f}-{max(accs):.3f} | {statistics.mean(r['wall'] for r in rows):.0f} | "
          f"{statistics.mean(r['cpu'] for r in rows):.0f} | {len(rows)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
