"""results/RUN/report.html: one self-contained page a person can open, mail or archive.

Config summary, training curves, test metrics, confusion matrix, the most confidently misclassified
test images, and the sections of insight_html (calibration, ROC/PR, embedding, saliency). Every picture
is inlined as a base64 PNG and the style sheet is inline, so the page references no other file and
nothing on the network.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from yacs.config import CfgNode as CN

from biapy_cls import __version__
from biapy_cls.engine.finetune import FineTuning
from biapy_cls.evaluation.insight_html import STYLE as INSIGHT_STYLE
from biapy_cls.evaluation.insight_html import insight_sections
from biapy_cls.evaluation.insights import Insights
from biapy_cls.models.prepare import describe_model, uses_pretrained
from biapy_cls.outputs import RunPaths, atomic_write_text, read_run_info

log = logging.getLogger("biapy_cls")

N_EXAMPLES = 24  # misclassified (or least confident) test images shown
THUMB = 112  # thumbnail side in pixels

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:1120px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:0 0 12px}
section{background:#fff;border-radius:8px;padding:18px 22px;margin:16px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.muted{color:#667085;font-size:.9em}code{background:#f0f2f5;padding:1px 4px;border-radius:3px;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{flex:1 1 150px;background:#f7f9fc;border-radius:6px;padding:10px 14px}
.card b{display:block;font-size:1.5em}.card span{color:#667085;font-size:.85em}
table{border-collapse:collapse;font-size:.9em}td,th{padding:4px 10px;text-align:right;border-bottom:1px solid #eceef2}
th{background:#f7f9fc}td:first-child,th:first-child{text-align:left}
table.kv td{text-align:left}table.kv td:first-child{color:#667085;white-space:nowrap}
.cm td,.cm th{padding:3px 6px;text-align:center;border:1px solid #fff;min-width:26px}
.cm th.row{text-align:right}.cm .corner{background:#fff;font-size:.8em;color:#667085}
.scroll{overflow-x:auto}img.chart{max-width:100%}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px}
figure{margin:0;background:#f7f9fc;border-radius:6px;padding:8px;font-size:.8em;text-align:center}
figure img{width:112px;height:112px;object-fit:contain;image-rendering:pixelated;background:#000}
figcaption{margin-top:4px}figcaption b{overflow-wrap:anywhere}figcaption span.p{white-space:nowrap}
.bad{color:#b42318}.good{color:#067647}
pre{background:#f7f9fc;padding:10px;font-size:.8em;max-height:420px;overflow:auto}
"""


@dataclass
class TestOutcome:
    """What the test step knows about its predictions."""

    __test__ = False  # not a pytest test class, despite the name

    files: list[Path]  # the image files, in prediction order
    names: list[str]  # the `filename` column of predictions.csv
    probs: np.ndarray  # (n_images, n_classes) softmax probabilities
    labels: np.ndarray | None  # true class indices; None when the test set has no labels
    metrics: dict | None  # test_metrics.json, when there are labels
    insights: Insights | None = None  # saliency maps, embedding, calibration and ROC/PR charts


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------- pictures
def curves_png(history: list[dict]) -> bytes | None:
    """Loss, each metric and the learning rate per epoch (the charts of charts/), in one picture."""
    from matplotlib.figure import Figure

    from biapy_cls.evaluation.reports import TITLES, history_curves

    panels = [(stem, keys) for stem, keys in history_curves(history).items()
              if any(row.get(k) is not None for row in history for k in keys)]
    if not history or not panels:
        return None
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(5.4 * columns, 3.4 * rows), dpi=100, layout="tight")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    epochs = [row["epoch"] for row in history]
    for ax, (stem, keys) in zip(axes.flat, panels):
        for key in keys:
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], marker="o", markersize=3,
                        label=key.replace("_", " "))
        ax.set_title(TITLES.get(stem, stem.replace("_", " ")), fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.tick_params(labelsize=8)
        lrs = [row["lr"] for row in history if row.get("lr")]
        if stem == "lr" and lrs and max(lrs) > 10 * min(lrs):  # log scale only for a real decay
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def thumbnail_png(path: Path, size: int = THUMB) -> bytes | None:
    """A viewable 8-bit picture of any image the tool reads: 3D shows the middle z slice."""
    from PIL import Image

    from biapy_cls.data.io import read_file

    try:
        arr = np.asarray(read_file(path), dtype=np.float32)
    except Exception:  # noqa: BLE001 - a picture we cannot draw is left out, the report still works
        return None
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):  # (z, y, x) or (c, y, x): the middle plane
        arr = arr[arr.shape[0] // 2]
    elif arr.ndim == 4:  # (z, y, x, c)
        arr = arr[arr.shape[0] // 2]
    if arr.ndim == 3:
        arr = arr[..., :3]
    if arr.ndim not in (2, 3):
        return None
    low, high = np.percentile(arr, (0.5, 99.5))
    arr = np.clip((arr - low) / (high - low) * 255 if high > low else arr * 0, 0, 255).astype(np.uint8)
    image = Image.fromarray(arr)
    if max(image.size) > size:  # small images stay as they are; the page enlarges them without smoothing
        image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------- sections
def _code(value) -> str:
    return f"<code>{esc(value)}</code>" if str(value) else "-"


def _kv_table(rows: list[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in rows) + "</table>"


def config_section(cfg: CN, paths: RunPaths, info: dict) -> str:
    aug = cfg.AUGMENTOR
    # transformations are the switches that have their own probability key (HFLIP and HFLIP_PROB, ...)
    switched_on = [k for k, v in aug.items() if v is True and f"{k}_PROB" in aug]
    val = cfg.DATA.VAL
    fold = f"fold {val.CROSS_VAL_FOLD}" if val.CROSS_VAL_FOLD != -1 else "each fold in turn"
    validation = (f"{val.SPLIT_TRAIN:g} of the training set" if val.FROM_TRAIN and not val.CROSS_VAL else
                  f"{fold} of {val.CROSS_VAL_NFOLD}" if val.CROSS_VAL else _code(val.PATH))
    rows = [
        ("Command", _code(info.get("command", ""))),
        ("Job folder", _code(paths.job_dir)),
        ("Images", f"{esc(cfg.PROBLEM.NDIM)}, size {esc(tuple(cfg.DATA.PATCH_SIZE) or 'of the images')}"),
        ("Training data", _code(cfg.DATA.TRAIN.PATH) if cfg.TRAIN.ENABLE else "no training"),
        ("Validation", validation if cfg.TRAIN.ENABLE else "-"),
        ("Test data", _code(cfg.DATA.TEST.PATH) if cfg.TEST.ENABLE else "no test"),
        ("Model", esc(describe_model(cfg.MODEL))),
        ("Normalisation", "the pretrained weights' own mean and std" if uses_pretrained(cfg.MODEL)
         else esc(cfg.DATA.NORMALIZATION.TYPE)),
    ]
    if cfg.TRAIN.ENABLE:
        rows += [
            (
                "Optimizer",
                f"{esc(cfg.TRAIN.OPTIMIZER)}, LR {cfg.TRAIN.LR:g}, weight decay {cfg.TRAIN.W_DECAY:g}, "
                f"batch {cfg.TRAIN.BATCH_SIZE}, up to {cfg.TRAIN.EPOCHS} epochs, patience {cfg.TRAIN.PATIENCE}"
                + (
                    f", schedule {esc(schedule)}" if (schedule := cfg.TRAIN.get("LR_SCHEDULER", {}).get("NAME")) else ""
                ),
            ),
            ("Augmentation", esc(", ".join(switched_on) if aug.ENABLE and switched_on else "none")),
        ]
        if "BACKBONE_LR_SCALE" in cfg.TRAIN and FineTuning.from_cfg(cfg).active:
            rows.append(("Fine-tuning", esc(FineTuning.from_cfg(cfg).describe())))
    else:
        checkpoint = cfg.PATHS.CHECKPOINT_FILE or f"this job's {cfg.MODEL.LOAD_CHECKPOINT_EPOCH} checkpoint"
        rows.append(("Checkpoint", _code(checkpoint)))
    rows.append(("Seed", esc(cfg.SYSTEM.SEED)))
    # DATA.PREPROCESS and FILTER_SAMPLES, as the run resolved them (run_info.json "data_notes")
    rows += [("Data preparation", esc(note)) for note in info.get("data_notes", [])]
    return (f"<section><h2>Configuration</h2>{_kv_table(rows)}<details><summary class='muted'>Full configuration "
            f"(<code>{esc(paths.config_file.name)}</code>)</summary><pre>{esc(cfg.dump())}</pre></details></section>")


def training_section(history: list[dict], monitor: str = "val_loss") -> str:
    """Summary cards and curves; the best epoch is the one TRAIN.CHECKPOINT_MONITOR picked."""
    if not history:
        return ""
    if not any(monitor in row for row in history):  # no validation set: the training loss decides
        monitor = "train_loss"
    sign = 1 if monitor.endswith("loss") else -1  # losses are minimised, accuracy and F1 maximised
    best = min(history, key=lambda row: sign * row.get(monitor, sign * float("inf")))
    cards = [
        (str(history[-1]["epoch"]), "epochs trained"),
        (_fmt(best.get(monitor)), f"best {monitor.replace('_', ' ')}"),
        (str(best["epoch"]), "best epoch"),
    ]
    if "val_accuracy" in best:
        cards.append((_fmt(best["val_accuracy"]), "validation accuracy at best epoch"))
    seconds = sum(row.get("seconds", 0) for row in history)
    cards.append((f"{seconds:.0f} s", "training time"))
    png = curves_png(history)
    image = (
        f'<div class="scroll"><img class="chart" alt="training curves" src="{png_data_uri(png)}"></div>' if png else ""
    )
    return f"<section><h2>Training</h2>{_cards(cards)}{image}</section>"


def cross_validation_section(results_dir: Path) -> str:
    """Per-fold metrics with mean and standard deviation, from results/RUN/cross_validation.json."""
    try:
        summary = json.loads((results_dir / "cross_validation.json").read_text())
    except (OSError, ValueError):
        return ""
    metrics = summary["metrics"]
    head = "<tr><th>fold</th><th>run</th><th>best epoch</th>" + "".join(f"<th>{esc(m)}</th>" for m in metrics) + "</tr>"
    rows = "".join(f"<tr><td>{esc(r['fold'])}</td><td>{esc(r['run'])}</td><td>{esc(r.get('best_epoch', '-'))}</td>"
                   + "".join(f"<td>{_fmt(r.get(m))}</td>" for m in metrics) + "</tr>" for r in summary["folds"])
    for label in ("mean", "std"):
        cells = "".join(f"<th>{_fmt(summary[label][m])}</th>" for m in metrics)
        rows += f"<tr><th>{label}</th><td></td><td></td>{cells}</tr>"
    return (f"<section><h2>Cross-validation ({summary['n_folds']} folds)</h2><p class='muted'>Each fold trained in its "
            "own run (its report is in results/&lt;run&gt;/report.html); validation metrics at each fold's best epoch; "
            f"std is the sample standard deviation.</p><div class='scroll'><table>{head}{rows}</table></div></section>")


def _cards(cards: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>'
                                           for v, k in cards) + "</div>"


def metrics_section(metrics: dict) -> str:
    cards = [(_fmt(metrics["accuracy"]), "accuracy"), (_fmt(metrics["balanced_accuracy"]), "balanced accuracy"),
             (_fmt(metrics["f1_macro"]), "macro F1"), (_fmt(metrics.get("roc_auc_macro")), "ROC AUC (macro)"),
             (str(metrics["n_images"]), "test images")]
    head = "<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>ROC AUC</th><th>support</th></tr>"
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{_fmt(r['precision'])}</td><td>{_fmt(r['recall'])}</td>"
                   f"<td>{_fmt(r['f1'])}</td><td>{_fmt(r.get('roc_auc'))}</td><td>{r['support']}</td></tr>"
                   for name, r in metrics["per_class"].items())
    for average in ("macro", "weighted"):
        rows += (f"<tr><th>{average} avg</th><th>{_fmt(metrics[f'precision_{average}'])}</th>"
                 f"<th>{_fmt(metrics[f'recall_{average}'])}</th><th>{_fmt(metrics[f'f1_{average}'])}</th><th></th>"
                 f"<th>{metrics['n_images']}</th></tr>")
    return (f"<section><h2>Test metrics</h2>{_cards(cards)}<p></p><div class='scroll'><table>{head}{rows}</table>"
            "</div></section>")


def confusion_section(metrics: dict) -> str:
    """The confusion matrix as a table (rows = true class), each cell shaded by the fraction of its row."""
    names = metrics["confusion_matrix"]["rows_true_cols_predicted"]
    cm = np.asarray(metrics["confusion_matrix"]["matrix"], dtype=np.int64)
    totals = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)
    head = ('<tr><th class="corner">true \\ predicted</th>'
            + "".join(f'<th title="{esc(n)}">{esc(_short(n))}</th>' for n in names) + "</tr>")
    body = ""
    for i, name in enumerate(names):
        cells = ""
        for j in range(len(names)):
            f = frac[i, j]
            colour = f"rgba({'22,101,216' if i == j else '217,45,32'},{0.08 + 0.8 * f:.2f})" if cm[i, j] else "#f7f9fc"
            text = "#fff" if f > 0.55 else "#1d2330"
            cells += f'<td style="background:{colour};color:{text}" title="{cm[i, j]} ({f:.0%})">{cm[i, j]}</td>'
        body += f'<tr><th class="row">{esc(name)}</th>{cells}</tr>'
    return ("<section><h2>Confusion matrix</h2><p class='muted'>Rows: true class; columns: predicted class. Blue: "
            "correct, red: errors; darker = larger share of the true class.</p>"
            f"<div class='scroll'><table class='cm'>{head}{body}</table></div></section>")


def _short(name: str, width: int = 10) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def examples_section(outcome: TestOutcome, class_names: list[str]) -> str:
    """The most confidently misclassified images; without labels, the least confident predictions."""
    pred = outcome.probs.argmax(axis=1)
    confidence = outcome.probs.max(axis=1)
    if outcome.labels is not None:
        wrong = np.flatnonzero(pred != outcome.labels)
        chosen = wrong[np.argsort(-confidence[wrong], kind="stable")][:N_EXAMPLES]
        title = "Most confidently misclassified test images"
        shown = ("it is shown" if len(chosen) == 1 else
                 "all are shown" if len(chosen) == len(wrong) else
                 f"the {len(chosen)} with the highest predicted probability are shown")
        note = (f"{len(wrong)} of {len(pred)} test images {'is' if len(wrong) == 1 else 'are'} misclassified; {shown}, "
                "most confident first. These are the first to check for label errors.")
        if not len(wrong):
            return f"<section><h2>{title}</h2><p>Every test image is classified correctly.</p></section>"
    else:
        chosen = np.argsort(confidence, kind="stable")[:N_EXAMPLES]
        title = "Least confident predictions"
        note = f"The test images have no labels; the {len(chosen)} predictions with the lowest probability are shown."
    tone = "bad" if outcome.labels is not None else "plain"  # red only when the prediction is known to be wrong
    figures = []
    for i in chosen:
        png = thumbnail_png(outcome.files[i])
        picture = f'<img alt="{esc(outcome.names[i])}" src="{png_data_uri(png)}">' if png else "<p>(no preview)</p>"
        lines = [f"<b>{esc(outcome.names[i])}</b>",
                 f'<span class="p">predicted <span class="{tone}">{esc(class_names[pred[i]])}</span> '
                 f'({outcome.probs[i, pred[i]]:.1%})</span>']
        if outcome.labels is not None:
            true = outcome.labels[i]
            lines.append(f'<span class="p">true <span class="good">{esc(class_names[true])}</span> '
                         f'({outcome.probs[i, true]:.1%})</span>')
        figures.append(f"<figure>{picture}<figcaption>{'<br>'.join(lines)}</figcaption></figure>")
    return (
        f"<section><h2>{title}</h2><p class='muted'>{esc(note)}</p><div class='grid'>{''.join(figures)}</div></section>"
    )


def prediction_counts_section(outcome: TestOutcome, class_names: list[str]) -> str:
    counts = np.bincount(outcome.probs.argmax(axis=1), minlength=len(class_names))
    rows = "".join(f"<tr><td>{esc(n)}</td><td>{c}</td><td>{c / max(1, len(outcome.probs)):.1%}</td></tr>"
                   for n, c in zip(class_names, counts))
    return ("<section><h2>Predictions</h2><p class='muted'>The test images have no labels, so no metrics: "
            f"predicted classes of {len(outcome.probs)} images.</p><table><tr><th>class</th><th>images</th>"
            f"<th>share</th></tr>{rows}</table></section>")


# --------------------------------------------------------------------------------------- the page
def read_history(path: Path) -> list[dict]:
    """The epochs of RUN_training_log.json (one JSON object per line); [] when there is none."""
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def render_report(paths: RunPaths, cfg: CN, class_names: list[str], outcome: TestOutcome | None = None) -> str:
    info = read_run_info(paths)
    # A test-only run into a trained job keeps the training run's curves in the report.
    history = read_history(paths.training_log)
    monitor = str(cfg.TRAIN.get("CHECKPOINT_MONITOR", "val_loss"))
    parts = [config_section(cfg, paths, info), cross_validation_section(paths.results_dir),
             training_section(history, monitor)]
    if outcome is not None and outcome.metrics is not None:
        parts += [metrics_section(outcome.metrics), confusion_section(outcome.metrics)]
    elif outcome is not None:
        parts.append(prediction_counts_section(outcome, class_names))
    if outcome is not None and len(outcome.probs):
        parts.append(examples_section(outcome, class_names))
        parts += insight_sections(outcome.insights, outcome.metrics, class_names)
    what = " and ".join(w for w, on in (("training", cfg.TRAIN.ENABLE), ("test", outcome is not None)) if on)
    header = (
        f"<h1>{esc(paths.run_name)}</h1><p class='muted'>biapy-cls {esc(__version__)} · {esc(what)} run · "
        f"{len(class_names)} classes: {esc(', '.join(class_names))} · written {time.strftime('%Y-%m-%d %H:%M')}</p>"
    )
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width,initial-scale=1'><title>{esc(paths.run_name)} - biapy-cls report</title>"
            f"<style>{STYLE}{INSIGHT_STYLE}</style></head><body><main>{header}{''.join(parts)}</main></body></html>\n")


def write_report(paths: RunPaths, cfg: CN, class_names: list[str], outcome: TestOutcome | None = None) -> None:
    """Write results/RUN/report.html. A report that fails is logged, never fatal: the run's results are safe."""
    try:
        atomic_write_text(paths.report, render_report(paths, cfg, class_names, outcome))
        log.info(f"Report: {paths.report}")
    except Exception as err:  # noqa: BLE001 - the report is a convenience on top of finished results
        log.warning(f"Could not write the HTML report ({type(err).__name__}: {err}); the other results are complete.")
