"""All benchmarks of issue 8 in one run, on the CPU; writes their tables into docs/benchmarks.md.

    python bench/run.py                 # full run, under 10 minutes on 2 shared cores
    python bench/run.py --quick         # smoke test of every section, about a minute
    python bench/run.py --output x.md   # write somewhere else

Sections: 1. engine overhead (bench/engine_overhead.py), 2. data pipeline (bench/augment_throughput.py),
3. scaling and 4. start-up (bench/scaling.py), 5. TTA cost, 6. realistic sizes (bench/real_sizes.py).
The generated part of the output file is the
text between `<!-- bench/run.py begin -->` and `<!-- bench/run.py end -->`; text outside it is kept.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import augment_throughput  # noqa: E402
import engine_overhead  # noqa: E402
import real_sizes  # noqa: E402
import scaling  # noqa: E402
import torch  # noqa: E402

BEGIN, END = "<!-- bench/run.py begin -->", "<!-- bench/run.py end -->"
TARGET_RATIO = 0.95


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_lines(threads: int) -> list[str]:
    import timm

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores; load average {load:.1f} when the run started",
        f"- Versions: Python {platform.python_version()}, torch {torch.__version__}, timm {timm.__version__}",
        f"- PyTorch threads: {threads} (both sides of every comparison)",
    ]


def replace_block(path: Path, block: str, begin: str = BEGIN, end: str = END) -> None:
    """Write `block` between the markers in `path`, keeping any text around them."""
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + block + "\n" + end + rest.split(end, 1)[1]
    else:
        text = (text or "# Benchmarks\n\n") + f"{begin}\n{block}\n{end}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def render_saved(path: Path, render, docs: Path | None, begin: str, end: str) -> int:
    """Print the markdown `render` makes of the results saved in JSON file `path`; with `docs`, write it there
    between the markers (for the accuracy benchmarks, whose runs take too long for this script)."""
    import json

    text = render(json.loads(path.read_text()))
    print(text)
    if docs is not None:
        replace_block(docs, text, begin, end)
    return 0


def ok(met: bool) -> str:
    return "yes" if met else "**no**"


def engine_section(rows: list[dict], notes: list[str], batches: dict, own: dict) -> list[str]:
    lines = ["## 1. Engine overhead: project path / bare PyTorch loop", "",
             "Project: `.npy` files -> `InMemoryDataset` -> `build_loader` -> `make_prepare` (unit scale, default "
             "per-image normalisation) -> `train_one_epoch` / `predict`. Bare: the same images already normalised "
             "in one tensor, a slice per batch; same model weights, batch size, optimizer (AdamW) and thread. "
             "Samples per CPU-second of this process, medians of alternating rounds (A B, B A, ...); the ratio is "
             "the median of the per-round ratios. 2D 32x32x1, 3D 16x32x32x1; batch "
             + ", ".join(f"{k} {v}" for k, v in batches.items()) + ".", "",
             "'expected' = bare step time / (bare step time + the engine's own cost per batch below): the ratio "
             "without the machine's noise.", "",
             "| model | dims | images/round | train project | train bare | train ratio | expected | "
             "inference project | inference bare | inference ratio | expected | >= 0.95 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        t, i = r["train"], r["inference"]
        exp = {p: expected_ratio(r, p, batches, own) for p in ("train", "inference")}
        shown = {p: "-" if v is None else f"{v:.3f}" for p, v in exp.items()}
        lines.append(f"| {r['model']} | {r['ndim']} | {r['n']} | {t.project:,.1f} | {t.bare:,.1f} | {t.ratio:.3f} | "
                     f"{shown['train']} | {i.project:,.1f} | {i.bare:,.1f} | {i.ratio:.3f} | {shown['inference']} | "
                     f"{ok(t.ratio >= TARGET_RATIO and i.ratio >= TARGET_RATIO)} |")
    lines += ["", "The engine's own cost, measured with a model that costs almost nothing (a mean and one linear "
              "layer), project - bare, CPU milliseconds per batch:", "",
              "| dims | batch | training | inference |", "|---|---:|---:|---:|"]
    lines += [f"| {ndim} | {batches[ndim]} | {c['train']:.2f} | {c['inference']:.2f} |" for ndim, c in own.items()]
    lines += [""] + [f"- {note}" for note in notes]
    return lines


def pipeline_section(result: dict) -> list[str]:
    lines = [PIPELINE_HEADING, "",
             f"Every 2D AUGMENTOR transformation on ({result['augmentations']}), then the default normalisation; "
             f"{result['images']} digits (32x32 PNG), batch 32; wall clock, medians over rounds; each pipeline is "
             "timed between two training steps, and its ratio is the median over rounds of its rate over the mean "
             "rate of those two steps (this machine's speed drifts within seconds). "
             f"simple_cnn training step (forward, loss, backward, AdamW): **{result['step']:,.0f} samples/s**. "
             "Issue 5 target: augmentation >= 5x the step.", "",
             "| pipeline | samples/s | x training step |", "|---|---:|---:|"]
    lines += [f"| {name} | {rate:,.0f} | {ratio:.1f} |" for name, rate, ratio in result["rows"]]
    costs = result["op_costs"]
    lines += ["", "Where the time goes: each transformation alone, at probability 1, on a stored batch of 32, as a "
              "fraction of one training step (the all-on pipeline applies each to about half of the images; "
              "5x the step means a budget of 0.20 for all of them together). At 32x32 nearly every one is "
              "bound by the count of small tensor operations (PyTorch's per-call overhead), not by pixels.", "",
              "| transformation | time per batch / training step |", "|---|---:|"]
    lines += [f"| {name} | {share:.3f} |" for name, share in costs]
    lines += [f"| **sum** | **{sum(share for _, share in costs):.3f}** |"]
    return lines


def scaling_section(rows: list[dict], quick: bool) -> list[str]:
    mib = 2**20
    lines = ["## 3. Scaling with the dataset size", "",
             "Copies of the digits training set (`make_example_data.py --copies`), one fresh process per case "
             "(the in-memory and lazy cases of one size run side by side): "
             "build the dataset, one epoch of simple_cnn (batch 32, lazy with 0 workers so that all memory is in "
             "the process). Peak = VmHWM; 'growth' = peak after the epoch - peak before building the dataset "
             "and after one warm-up training step (the process holds ~0.5 GiB of PyTorch before any data)."
             + (" --quick runs the cases in parallel: epoch times are not comparable." if quick else ""), "",
             "| copies | images | IN_MEMORY | stored bytes/image | raw pixel bytes/image | stored/raw | peak MiB | "
             "growth MiB | load s | epoch s |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        per = r["stored_bytes"] / r["images"] if r["in_memory"] else 0
        raw = r["raw_bytes"] / r["images"]
        stored = f"{per:,.0f}" if r["in_memory"] else "0 (read per batch)"
        ratio = f"{per / raw:.2f}" if r["in_memory"] else "-"
        lines.append(f"| {r['copies']} | {r['images']} | {r['in_memory']} | {stored} | {raw:,.0f} | {ratio} | "
                     f"{r['peak'] / mib:,.0f} | {(r['peak'] - r['peak_before']) / mib:,.1f} | {r['load_s']:.2f} | "
                     f"{r['epoch_s']:.2f} |")
    return lines


STARTUP_HEADING = "## 4. Start-up"
PIPELINE_HEADING = "## 2. Data pipeline / simple_cnn training step"


def startup_section(result: dict, alone: str = "") -> list[str]:
    """Section 4; `alone` names the separate run (`--only startup`) that measured it, if it was one."""
    n = result.get("repeats", 3)
    lines = [
        f"{STARTUP_HEADING} (fresh processes; medians of {n})",
        "",
        *([alone, ""] if alone else []),
        "Wall seconds are the queue for the 2 shared cores as much as the work; the CPU seconds are the work. "
        "'First image' is when the test-only run reads its first image: imports, configuration, data plan "
        "and model are done (the rest is predicting, the explanations of TEST.EXPLAIN, charts and report). "
        "Both are read inside the process, so Python's exit (~0.7 s of CPU after `import torch`) counts in "
        "neither; the whole processes are in the rows 'whole'.",
        "",
        "| command | seconds | CPU seconds |",
        "|---|---:|---:|",
        f"| `python -m biapy_cls --help` | {result['help']:.2f} | |",
    ]
    if result["script_help"] is not None:
        lines.append(f"| `biapy --help` (installed console script) | {result['script_help']:.2f} | |")
    lines.append(f"| test-only run from a checkpoint ({result['test_images']} test images, TRAIN.ENABLE False), "
                 f"until its first image | {result['first_image']:.2f} | {result['first_image_cpu']:.2f} |")
    lines.append(f"| the same test-only run, whole | {result['test_only']:.2f} | {result['test_only_cpu']:.2f} |")
    lines.append(f"| `python -c \"import torch\"` (alternating with the test-only run), until torch is imported | "
                 f"{result['torch_imported']:.2f} | {result['torch_imported_cpu']:.2f} |")
    lines.append(f"| the same `python -c \"import torch\"`, whole (Python's exit included) | "
                 f"{result['import_torch']:.2f} | {result['import_torch_cpu']:.2f} |")
    return lines


def startup_targets(start: dict) -> list[str]:
    helps = [t for t in (start["help"], start["script_help"]) if t is not None]
    gap = start["first_image"] - start["torch_imported"]
    gap_cpu = start["first_image_cpu"] - start["torch_imported_cpu"]
    whole = start["test_only_cpu"] - start["import_torch_cpu"]
    return [f"| `biapy --help` < 1 s | {max(helps):.2f} s | {ok(max(helps) < 1)} |",
            f"| test-only run's start-up (to its first image) within 1 s of `python -c \"import torch\"` (same run) "
            f"| {gap:+.2f} s wall, {gap_cpu:+.2f} s CPU (whole run {whole:+.2f} s CPU) | {ok(gap_cpu <= 1)} (CPU) |"]


def write_startup_only(path: Path, start: dict, threads: int) -> None:
    """`--only startup`: section 4 and the start-up rows of the Targets table replaced."""
    note = ("_Measured alone by `python bench/run.py --only startup` ({machine}); the other sections are from the "
            "full run above._")
    section = startup_section(start, note.format(machine="; ".join(line[2:] for line in machine_lines(threads))))
    replace_section(path, STARTUP_HEADING, section, startup_targets(start),
                    ("| `biapy --help` < 1 s", "| test-only run within 1 s", "| test-only run's start-up"))


def write_pipeline_only(path: Path, pipeline: dict, threads: int) -> None:
    """`--only pipeline`: section 2 and the pipeline row of the Targets table replaced."""
    machine = "; ".join(line[2:] for line in machine_lines(threads))
    section = [*pipeline_section(pipeline), "",
               f"_Measured alone by `python bench/run.py --only pipeline` ({machine}); the other sections are from "
               "the full run above._"]
    replace_section(path, PIPELINE_HEADING, section, pipeline_targets(pipeline), ("| data pipeline >= 5x",))


def replace_section(path: Path, heading: str, section: list[str], rows: list[str], prefixes: tuple[str, ...]) -> None:
    """Replace one section (from `heading` to the next '## ') and its Targets rows (lines starting with
    `prefixes`, put where the first of them stood, or at the end of the Targets table when it has none yet)
    in the generated block; the rest of the block (another run's) is kept."""
    text = path.read_text()
    if heading not in text:
        raise SystemExit(f"{path} has no '{heading}' section to replace: run the full bench/run.py first.")
    head, rest = text.split(heading, 1)
    head = head[:head.rfind("\n") + 1]  # from the start of the heading's line
    ends = [i for i in (rest.find("\n## "), rest.find("\n" + END)) if i >= 0]
    tail = rest[min(ends):] if ends else "\n"
    lines = (head + "\n".join(section) + "\n" + tail).split("\n")
    old = [i for i, line in enumerate(lines) if line.startswith(prefixes)]
    kept = [line for line in lines if not line.startswith(prefixes)]
    if old:  # where the old rows stood
        at = old[0]
    else:  # a new target: at the end of the Targets table
        start = kept.index("## Targets")
        at = next(i for i in range(start + 3, len(kept)) if not kept[i].startswith("|"))
    path.write_text("\n".join(kept[:at] + rows + kept[at:]))


def tta_section(result: dict) -> list[str]:
    return ["## 5. Test-time augmentation cost", "",
            "simple_cnn, 2D 32x32x1, `predict` with and without TEST.AUGMENTATION (8 views, one forward pass of "
            "the batch's size each); "
            "samples per CPU-second, alternating rounds.", "",
            "| TEST.AUGMENTATION | samples/s |", "|---|---:|",
            f"| False | {result['without']:,.1f} |", f"| True | {result['with']:,.1f} |", "",
            f"TTA costs {result['cost']:.1f}x the time of plain inference (8 views: ~8x expected)."]


def expected_ratio(row: dict, phase: str, batches: dict, own: dict) -> float | None:
    """bare step / (bare step + the engine's own cost per batch)."""
    if row["ndim"] not in own:
        return None
    step_ms = 1000 * batches[row["ndim"]] / row[phase].bare
    return step_ms / (step_ms + max(own[row["ndim"]][phase], 0.0))


def pipeline_targets(pipeline: dict) -> list[str]:
    """Issue 5's bar, with every transformation of issue 18 and RandAugment on (the first row)."""
    name, _, ratio = pipeline["rows"][0]
    return [f"| data pipeline >= 5x the simple_cnn training step, every transformation on ({name}) | "
            f"{ratio:.1f}x | {ok(ratio >= 5)} |"]


def targets_section(engine_rows, scaling_rows, start, batches, own, tta=None, real=None, pipeline=None) -> list[str]:
    lines = ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    if pipeline:
        lines += pipeline_targets(pipeline)
    for phase, label in (("train", "engine training >= 0.95 of bare, every model"),
                         ("inference", "inference >= 0.95 of bare, every model")):
        if not engine_rows:
            break
        worst = min(engine_rows, key=lambda r: r[phase].ratio)
        lines.append(f"| {label} | lowest {worst[phase].ratio:.3f} ({worst['model']} {worst['ndim']}) | "
                     f"{ok(worst[phase].ratio >= TARGET_RATIO)} |")
    if engine_rows and own:
        lines.append(
            "| (engine) expected ratios, from the own cost per batch (low-noise) | lowest "
            f"{min(expected_ratio(r, p, batches, own) or 1.0 for r in engine_rows for p in ('train', 'inference')):.3f}"
            " | see 'Profiling' below |"
        )
    memory = [r for r in scaling_rows if r["in_memory"]]
    lazy = [r for r in scaling_rows if not r["in_memory"]]
    if memory:
        worst = max(r["stored_bytes"] / r["raw_bytes"] for r in memory)
        lines.append(f"| in-memory storage <= 1.05x raw pixel bytes (digits) | {worst:.2f}x | {ok(worst <= 1.05)} |")
    if lazy:
        growth = [(r["peak"] - r["peak_before"]) / 2**20 for r in lazy]
        flat = max(growth) - min(growth) < 32
        lines.append(f"| lazy memory independent of dataset size | growth {min(growth):.1f}-{max(growth):.1f} MiB "
                     f"for {lazy[0]['images']}-{lazy[-1]['images']} images | {ok(flat)} |")
    if start:
        lines += startup_targets(start)
    if tta:
        per_view = tta["cost"] / 8
        lines.append(f"| TTA <= 1.1x (8 views x plain inference) | {per_view:.2f}x | {ok(per_view <= 1.1)} |")
    if real:
        lines += real_sizes.targets(real)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: every section, tiny sizes (~1 minute)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file to write")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1: steadier on a shared CPU)")
    parser.add_argument("--only", choices=["startup", "pipeline"], help="measure one section and replace only it "
                        "(and its Targets rows) in --output; the full run takes ~20 minutes")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    quick = args.quick
    if args.only == "pipeline":
        with tempfile.TemporaryDirectory(prefix="biapy_bench_") as tmp:
            digits = scaling.write_digits(Path(tmp) / "digits", limit=5 if quick else 30)
            pipeline = augment_throughput.run(digits / "train", quick)
        write_pipeline_only(Path(args.output), pipeline, args.threads)
        print(f"[{time.perf_counter() - started:5.0f} s] data pipeline written to {args.output}")
        return 0
    if args.only == "startup":
        with tempfile.TemporaryDirectory(prefix="biapy_bench_") as tmp:
            digits = scaling.write_digits(Path(tmp) / "digits", limit=5 if quick else 30)
            start = scaling.startup(digits, Path(tmp), 1 if quick else 3, script=not quick)
        write_startup_only(Path(args.output), start, args.threads)
        print(f"[{time.perf_counter() - started:5.0f} s] start-up written to {args.output}")
        return 0

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {text}", flush=True)

    batches = {"2D": 8, "3D": 4} if quick else {"2D": 32, "3D": 4}
    say("1. engine overhead")
    engine_rows, notes = engine_overhead.run(quick, batches)
    own = engine_overhead.own_cost(quick, batches)
    say("5. TTA cost")
    tta = engine_overhead.tta_cost(quick, batches["2D"])
    with tempfile.TemporaryDirectory(prefix="biapy_bench_") as tmp:
        work = Path(tmp)
        say("2. data pipeline")
        digits = scaling.write_digits(work / "digits", limit=5 if quick else 30)
        pipeline = augment_throughput.run(digits / "train", quick)
        say("3. scaling")
        scaling_rows = scaling.scaling(work, (1, 4) if quick else (1, 4, 16), 5 if quick else 25, args.threads,
                                       parallel=quick)
        say("4. start-up")
        start = scaling.startup(digits, work, 1 if quick else 3, script=not quick)
        say("6. realistic sizes")
        real = real_sizes.run(work / "real_sizes", quick, say)
    elapsed = time.perf_counter() - started
    lines = ["_Generated by `python bench/run.py" + (" --quick" if quick else "") + f"` in {elapsed:.0f} s._", "",
             *machine_lines(args.threads), "",
             "Other processes on the machine (see the load average above) make absolute numbers noisy (several "
             "processes compete for 2 cores). Each comparison is measured in alternating rounds within one run, "
             "so the ratios are what counts.", "",
             *targets_section(engine_rows, scaling_rows, start, batches, own, tta, real, pipeline), "",
             *engine_section(engine_rows, notes, batches, own), "", *pipeline_section(pipeline), "",
             *scaling_section(scaling_rows, quick), "", *startup_section(start), "", *tta_section(tta), "",
             *real_sizes.section(real)]
    replace_block(Path(args.output), "\n".join(lines))
    say(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
