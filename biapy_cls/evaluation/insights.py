"""After the test predictions: saliency maps, feature embedding, reliability and ROC/PR charts.

`analyse` writes results/RUN/explain/*.png, results/RUN/test_features.npy (rows in the order of
predictions.csv), val_features.npy with val_features.csv (its rows' file names and classes) when the run
has a validation set, and the charts, and returns what the report shows. It runs on the main process only,
after predictions.csv is written, so a failure here never costs the predictions: it is logged instead.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode as CN

from biapy_cls.outputs import RunPaths

log = logging.getLogger("biapy_cls")

CHUNK = 64  # images per forward pass of the feature and saliency passes


@dataclass(frozen=True)
class ExplainSettings:
    """TEST.EXPLAIN and TEST.CALIBRATE, resolved once."""

    enable: bool = True
    n_per_class: int = 2
    method: str = "gradcam"
    calibrate: bool = False

    @classmethod
    def from_cfg(cls, cfg: CN) -> ExplainSettings:
        e = cfg.TEST.EXPLAIN
        return cls(bool(e.ENABLE), int(e.N_PER_CLASS), str(e.METHOD), bool(cfg.TEST.CALIBRATE))


@dataclass(frozen=True)
class ValidationImages:
    """The validation set, for its feature embedding next to the test set's."""

    dataset: object  # a biapy_cls.data.dataset dataset, images in the order of `names`
    labels: np.ndarray
    names: list[str]


@dataclass
class SaliencyExample:
    index: int  # row of predictions.csv
    name: str
    kind: str  # error, correct (with labels); confident, uncertain (without)
    predicted: int
    confidence: float
    true: int | None
    png: Path


@dataclass
class Insights:
    """What the report shows beyond the metrics; charts maps a name to a PNG in charts/."""

    charts: dict[str, Path] = field(default_factory=dict)
    embedding_note: str = ""
    embedded_sets: list[str] = field(default_factory=lambda: ["test"])  # the sets the embedding shows
    saliency: list[SaliencyExample] = field(default_factory=list)
    method: str = "gradcam"
    temperature: float | None = None
    seconds: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)  # per part, for the log and benchmarks


def _batches(dataset, device: torch.device, prepare, indices: list[int] | None = None):
    """(unit-scaled images on the CPU, prepared model input) per chunk, in the order of `indices`."""
    from biapy_cls.data.dataset import collate
    from biapy_cls.data.transforms import to_unit

    order = list(range(len(dataset))) if indices is None else indices
    for start in range(0, len(order), CHUNK):
        images, _, _ = collate([dataset[i] for i in order[start:start + CHUNK]])
        yield to_unit(images, dataset.value_range), prepare(images.to(device), dataset.value_range, False)


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:60]


def explain_examples(model: nn.Module, dataset, prepare, device: torch.device, probs: np.ndarray,
                     labels: np.ndarray | None, names: list[str], out_dir: Path,
                     settings: ExplainSettings) -> list[SaliencyExample]:
    from biapy_cls.evaluation.explain import choose_examples, overlay_png, saliency_maps

    chosen = choose_examples(probs, labels, settings.n_per_class)
    if not chosen:
        return []
    indices = [i for i, _ in chosen]
    pred = probs.argmax(1)
    examples = []
    position = 0
    for unit, x in _batches(dataset, device, prepare, indices):
        classes = torch.as_tensor(pred[indices[position:position + len(x)]])
        maps = saliency_maps(model, x, classes, settings.method)
        for image, smap in zip(unit.numpy(), maps):
            i, kind = chosen[position]
            png = out_dir / f"{kind}_{position:03d}_{_file_stem(names[i])}.png"
            overlay_png(image, smap, png)
            examples.append(SaliencyExample(i, names[i], kind, int(pred[i]), float(probs[i, pred[i]]),
                                            None if labels is None else int(labels[i]), png))
            position += 1
    return examples


def embedding_sets(model: nn.Module, dataset, prepare, device: torch.device, probs: np.ndarray,
                   labels: np.ndarray | None, class_names: list[str], paths: RunPaths,
                   validation: ValidationImages | None) -> list:
    """Features of the test images (and the validation images), written to test_features.npy (and
    val_features.npy with val_features.csv); one FeatureSet per set, for the chart."""
    from biapy_cls.evaluation.embedding import FeatureSet, classifier_layer, features_and_predictions

    layer = classifier_layer(model, len(class_names))
    if layer is None:
        raise ValueError("no final classification layer found to read features from")
    features, _ = features_and_predictions(model, layer, (x for _, x in _batches(dataset, device, prepare)))
    np.save(paths.test_features, features.astype(np.float32))
    sets = [FeatureSet("test", features, probs.argmax(1), labels)]
    if validation is not None and len(validation.dataset):
        val_features, val_predicted = features_and_predictions(
            model, layer, (x for _, x in _batches(validation.dataset, device, prepare)))
        np.save(paths.val_features, val_features.astype(np.float32))
        write_feature_index(paths.val_features_index, validation.names, val_predicted, validation.labels, class_names)
        sets.append(FeatureSet("validation", val_features, val_predicted, validation.labels))
    return sets


def write_feature_index(path: Path, names: list[str], predicted: np.ndarray, labels: np.ndarray,
                        class_names: list[str]) -> None:
    """val_features.csv: filename, class, class_name, true_class, true_class_name (predictions.csv's columns,
    without probabilities), one row per row of the features file."""
    import csv
    import io

    from biapy_cls.evaluation.reports import csv_text
    from biapy_cls.outputs import atomic_write_text

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["filename", "class", "class_name", "true_class", "true_class_name"])
    for name, p, t in zip(names, predicted, labels):
        writer.writerow([csv_text(name), int(p), csv_text(class_names[p]), int(t), csv_text(class_names[t])])
    atomic_write_text(path, out.getvalue())


def analyse(model: nn.Module, dataset, prepare, device: torch.device, probs: np.ndarray, labels: np.ndarray | None,
            raw_probs: np.ndarray, class_names: list[str], names: list[str], paths: RunPaths,
            settings: ExplainSettings, metrics: dict | None, temperature: float | None, seed: int = 0,
            validation: ValidationImages | None = None) -> Insights:
    """Write every picture this module makes; each part that fails is logged and left out."""
    from biapy_cls.evaluation.calibration import plot_reliability
    from biapy_cls.evaluation.curves import plot_roc_pr
    from biapy_cls.evaluation.embedding import plot_embedding

    start = time.perf_counter()
    insights = Insights(method=settings.method, temperature=temperature)
    run = paths.run_name
    steps = []
    if labels is not None and metrics is not None:
        reliability = paths.charts_dir / f"{run}_reliability.png"
        steps.append(("reliability diagram", lambda: plot_reliability(
            probs, labels, reliability, f"Reliability - {run}", raw_probs if temperature is not None else None),
            "reliability", reliability))
        roc = paths.charts_dir / f"{run}_roc_pr.png"
        steps.append(("ROC/PR curves", lambda: plot_roc_pr(labels, probs, class_names, metrics, roc,
                                                           f"Per-class curves - {run}"), "roc_pr", roc))
    if settings.enable:
        embedding = paths.charts_dir / f"{run}_embedding.png"

        def embed():
            sets = embedding_sets(model, dataset, prepare, device, probs, labels, class_names, paths, validation)
            title = f"{' and '.join(s.name for s in sets).capitalize()} features - {run}"
            insights.embedding_note = plot_embedding(sets, class_names, embedding, title, seed)
            insights.embedded_sets = [s.name for s in sets]

        def saliency():
            insights.saliency = explain_examples(model, dataset, prepare, device, probs, labels, names,
                                                 paths.explain_dir, settings)

        steps += [("feature embedding", embed, "embedding", embedding), ("saliency maps", saliency, None, None)]
    for what, step, chart, path in steps:
        began = time.perf_counter()
        try:
            step()
            if chart:
                insights.charts[chart] = path
        except Exception as err:  # noqa: BLE001 - pictures on top of finished results; never fatal
            log.warning(f"Could not draw the {what} ({type(err).__name__}: {err}); the other results are complete.")
        insights.step_seconds[what] = time.perf_counter() - began
    insights.seconds = time.perf_counter() - start
    written = [p for p in (paths.test_features, paths.val_features, paths.explain_dir) if p.exists()]
    log.info(f"Explanations in {insights.seconds:.1f} s: {len(insights.saliency)} saliency maps ({settings.method}), "
             + ", ".join(insights.charts) + " (" + ", ".join(f"{k} {v:.1f} s" for k, v in insights.step_seconds.items())
             + ")" + (f"; {', '.join(str(p) for p in written)}" if written else ""))
    return insights
