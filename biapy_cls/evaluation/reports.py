"""Files and pictures for people: predictions.csv, test metrics, the training log, charts, TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from biapy_cls.logs import printable
from biapy_cls.outputs import atomic_write_text

# OWASP's list of first characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """A file or class name made safe for spreadsheets: one apostrophe is put before a name that starts
    with a formula character (and before a name starting with an apostrophe followed by one of those or
    another apostrophe), so it is shown as text. The true name is recovered by removing one leading
    apostrophe when it is followed by = + - @ ' tab or carriage return (docs/outputs.md)."""
    if value.startswith(FORMULA_START) or (value.startswith("'") and value[1:2] in (*FORMULA_START, "'")):
        return "'" + value
    return value


def safe_column(name: str) -> str:
    return "prob_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_predictions(path: Path, filenames: list[str], probs: np.ndarray, class_names: list[str],
                      true_labels: np.ndarray | None = None) -> None:
    """filename, class (index, as BiaPy), class_name, [true_class, true_class_name,] prob_<class>..."""
    table = predictions_table(filenames, probs, class_names, true_labels)
    atomic_write_text(path, table.to_csv(index=False, float_format="%.6f"))


def predictions_table(filenames: list[str], probs: np.ndarray, class_names: list[str],
                      true_labels: np.ndarray | None = None):
    """The pandas DataFrame that predictions.csv holds (the Python API returns it as it is)."""
    import pandas as pd

    pred = probs.argmax(axis=1)
    names = [csv_text(n) for n in class_names]
    table = {"filename": [csv_text(f) for f in filenames], "class": pred, "class_name": [names[k] for k in pred]}
    if true_labels is not None:
        table["true_class"] = true_labels
        table["true_class_name"] = [names[k] for k in true_labels]
    columns = [safe_column(n) for n in class_names]
    if len(set(columns)) < len(columns):  # names that differ only in characters replaced above
        columns = [f"prob_{k}_{c[5:]}" for k, c in enumerate(columns)]
    for k, column in enumerate(columns):
        table[column] = probs[:, k]
    return pd.DataFrame(table)


def write_test_metrics(results_dir: Path, metrics: dict) -> None:
    """test_metrics.json (everything) and test_metrics.csv (metric, scope, value: one row per number)."""
    import pandas as pd

    atomic_write_text(results_dir / "test_metrics.json", json.dumps(metrics, indent=2))
    overall = ("accuracy", "balanced_accuracy", "roc_auc_macro", "average_precision_macro",
               "expected_calibration_error", "brier_score")
    rows = [(key, "all", metrics[key]) for key in overall if key in metrics]
    rows += [(f"{key}", "calibration", value) for key, value in metrics.get("calibration", {}).items()]
    for average in ("macro", "weighted"):
        rows += [(m, average, metrics[f"{m}_{average}"]) for m in ("precision", "recall", "f1")]
    for name, report in metrics["per_class"].items():
        rows += [(m, name, report[m]) for m in ("precision", "recall", "f1", "support", "roc_auc", "average_precision")
                 if m in report]
    names = metrics["confusion_matrix"]["rows_true_cols_predicted"]
    for true_name, row in zip(names, metrics["confusion_matrix"]["matrix"]):
        rows += [("confusion", f"true={true_name} predicted={pred_name}", v) for pred_name, v in zip(names, row)]
    frame = pd.DataFrame([(m, csv_text(str(scope)), v) for m, scope, v in rows], columns=["metric", "scope", "value"])
    atomic_write_text(results_dir / "test_metrics.csv", frame.to_csv(index=False))


def read_training_log(path: Path) -> list[dict]:
    """The epochs of a RUN_training_log.json (one JSON object per line); [] when there is none."""
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


class TrainingLog:
    """RUN_training_log.json: one JSON object per line, one line per epoch."""

    def __init__(self, path: Path, history: list[dict]):
        self.path = path
        # Rewritten from the checkpoint's history, so a resumed run holds no epoch twice.
        atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in history))

    def append(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def _figure():
    """matplotlib's Figure class, without pyplot (whose import a test-only run need not pay)."""
    import matplotlib

    # Class and run names are text, never TeX: '$^^$' in a name made mathtext fail and the chart crash.
    matplotlib.rcParams["text.parse_math"] = False
    from matplotlib.figure import Figure

    return Figure


# Titles of the known quantities; any other metric in the history gets a chart titled by its name.
TITLES = {"loss": "Loss", "accuracy": "Accuracy", "f1": "Macro F1", "top5_accuracy": "Top-5 accuracy",
          "lr": "Learning rate"}


def history_curves(history: list[dict]) -> dict[str, list[str]]:
    """Chart stem -> the history keys drawn on it: loss, then each metric (train and val together), then lr."""
    curves: dict[str, list[str]] = {"loss": []}
    for row in history:
        for key in row:
            if key in ("epoch", "seconds", "lr"):
                continue
            stem = key.split("_", 1)[1]
            if key not in curves.setdefault(stem, []):
                curves[stem].append(key)
    curves["lr"] = ["lr"]
    return curves


def draw_curves(ax, history: list[dict], stem: str, keys: list[str]) -> None:
    """The curves of one chart (`history_curves` item) on a matplotlib Axes: charts/ and the report alike."""
    epochs = [row["epoch"] for row in history]
    for key in keys:
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax.plot(epochs, [np.nan if v is None else v for v in values], marker="o", markersize=3,
                    label=key.replace("_", " "))
    lrs = [row["lr"] for row in history if row.get("lr")]
    if stem == "lr" and lrs and max(lrs) > 10 * min(lrs):  # log scale only for a real decay
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()


def plot_history(history: list[dict], charts_dir: Path, run_name: str) -> None:
    """One PNG per quantity: RUN_loss.png, RUN_<metric>.png for each metric, RUN_lr.png."""
    if not history:
        return
    # matplotlib's object API without pyplot and a fixed layout: several times cheaper than
    # pyplot + tight_layout, which matters because the charts are redrawn during training.
    from matplotlib.figure import Figure

    charts_dir.mkdir(parents=True, exist_ok=True)
    for stem, keys in history_curves(history).items():
        fig = Figure(figsize=(6, 4), dpi=100)
        fig.subplots_adjust(left=0.14, right=0.97, top=0.92, bottom=0.12)
        ax = fig.subplots()
        draw_curves(ax, history, stem, keys)
        ax.set_xlabel("epoch")
        ax.set_title(printable(f"{TITLES.get(stem, stem.replace('_', ' '))} - {run_name}"), parse_math=False)
        if stem == "lr":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.savefig(charts_dir / f"{run_name}_{stem}.png")


def plot_confusion(matrix: list[list[int]], class_names: list[str], path: Path, title: str) -> None:
    """The confusion matrix as a picture: counts, coloured by the fraction of each true class."""
    figure = _figure()
    class_names, title = [printable(n) for n in class_names], printable(title)  # fonts cannot draw lone surrogates
    cm = np.asarray(matrix, dtype=np.float64)
    frac = np.divide(cm, cm.sum(axis=1, keepdims=True), out=np.zeros_like(cm), where=cm.sum(axis=1, keepdims=True) > 0)
    n = len(class_names)
    size = min(4 + 0.5 * n, 20)
    fig = figure(figsize=(size, size * 0.85), dpi=100)
    ax = fig.subplots()
    image = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if frac[i, j] > 0.5 else "black")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


class TensorBoard:
    """Scalars per epoch under results/RUN/tensorboard (written by the main process only)."""

    def __init__(self, log_dir: Path, enabled: bool = True):
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(log_dir))

    def epoch(self, row: dict) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                group = "lr" if key == "lr" else key.split("_", 1)[-1]
                self.writer.add_scalar(f"{group}/{key}", value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
