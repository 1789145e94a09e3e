"""What the test step's explanations (issue 20) add to a run: saliency maps, feature embedding,
calibration metrics and the reliability / ROC-PR charts, against a whole 10-epoch digits run.

    python bench/explain_cost.py                      # 10 epochs of simple_cnn on the digits of `make demo`
    python bench/explain_cost.py --epochs 2 --calibrate

Runs `biapy` in this process and times each phase twice: wall-clock seconds and CPU seconds of this
process. On a shared machine the CPU seconds are the fairer measure (other processes stretch wall time,
not CPU time); with one thread on an idle machine the two agree.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

TIMES: dict[str, list[float]] = {}


def timed(owner, name: str, label: str) -> None:
    """Replace owner.name by a wrapper that adds its wall and CPU seconds to TIMES[label]."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent = TIMES.setdefault(label, [0.0, 0.0])
            spent[0] += time.perf_counter() - wall
            spent[1] += time.process_time() - cpu

    setattr(owner, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--calibrate", action="store_true", help="also TEST.CALIBRATE (a validation pass)")
    parser.add_argument("--data", type=Path, help="digits folder (default: written to a temporary folder)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import biapy_cls.training as training
    import biapy_cls.workflow as workflow
    from biapy_cls.cli import main as biapy
    from biapy_cls.evaluation import calibration, curves, embedding, explain, insights
    from conftest import digits_config, load_script, write_yaml

    timed(training, "train", "training (data loading, epochs, checkpoints)")
    timed(workflow, "predict", "prediction passes")
    timed(workflow, "calibrate", "temperature fit (validation pass)")
    timed(calibration, "calibration_metrics", "ECE and Brier")
    timed(workflow, "analyse", "explanations, all")
    timed(calibration, "plot_reliability", "  reliability diagram")
    timed(curves, "plot_roc_pr", "  ROC/PR chart")
    timed(workflow, "validation_images", "  validation images loaded for the embedding")
    timed(embedding, "features_and_predictions", "  feature passes (test, then validation)")
    timed(embedding, "pca_2d", "  PCA")
    timed(embedding, "nonlinear_2d", "  UMAP or t-SNE")
    timed(embedding, "plot_embedding", "  embedding chart (PCA + UMAP or t-SNE + drawing)")
    timed(explain, "saliency_maps", "  saliency maps (Grad-CAM)")
    timed(explain, "overlay_png", "  saliency PNGs")
    timed(insights, "explain_examples", "  saliency, all")

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "digits"
        if args.data is None:
            load_script("make_example_data").main([str(data)])
        cfg = digits_config(data, MODEL={"ARCHITECTURE": args.model},
                            TRAIN={"ENABLE": True, "EPOCHS": args.epochs, "BATCH_SIZE": 32, "LR": 3e-3, "PATIENCE": -1},
                            TEST={"ENABLE": True, "CALIBRATE": args.calibrate}, SYSTEM={"NUM_CPUS": 1})
        config = write_yaml(Path(tmp) / "bench.yaml", cfg)
        wall, cpu = time.perf_counter(), time.process_time()
        code = biapy(["--config", str(config), "--result_dir", str(Path(tmp) / "out"), "--name", "bench"])
        total = (time.perf_counter() - wall, time.process_time() - cpu)
    if code:
        return code
    # the validation images for the embedding are loaded when `analyse` is called, so outside its time
    phases = ("explanations, all", "  validation images loaded for the embedding", "ECE and Brier",
              "temperature fit (validation pass)")
    added = [TIMES.get(k, [0.0, 0.0]) for k in phases]
    added_wall, added_cpu = sum(a[0] for a in added), sum(a[1] for a in added)
    print(f"\n{args.model}, {args.epochs} epochs on the digits, 1 thread, load average at the end "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| phase | wall s | CPU s |\n|---|---:|---:|")
    print(f"| whole run | {total[0]:.1f} | {total[1]:.1f} |")
    for label, (w, c) in TIMES.items():
        print(f"| {label} | {w:.2f} | {c:.2f} |")
    print(f"| **added by issue 20** | {added_wall:.2f} ({added_wall / total[0]:.1%}) | "
          f"{added_cpu:.2f} ({added_cpu / total[1]:.1%}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
