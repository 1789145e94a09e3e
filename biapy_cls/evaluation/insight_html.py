"""The report's sections that look inside the model: calibration, ROC/PR curves, feature embedding and
saliency maps. Each picture is read from the file the run wrote and inlined, like every other image
of report.html."""

from __future__ import annotations

from pathlib import Path

from biapy_cls.evaluation.insights import Insights, SaliencyExample

STYLE = """
.sal{display:grid;grid-template-columns:repeat(auto-fill,minmax(290px,1fr));gap:12px}
.sal figure img{width:auto;height:auto;max-width:100%;background:#fff;image-rendering:auto}
"""

KIND_TITLES = {"error": "Most confidently misclassified", "correct": "Correct, most confident per class",
               "confident": "Most confident per predicted class", "uncertain": "Least confident"}
METHODS = {"gradcam": "Grad-CAM (gradient-weighted last feature map, or the ViT's token map)",
           "gradients": "input gradients (|d score / d pixel|)"}


def _esc(value) -> str:
    from biapy_cls.evaluation.report_html import esc

    return esc(value)


def _img(path: Path, alt: str, css: str = "chart") -> str:
    from biapy_cls.evaluation.report_html import png_data_uri

    try:
        return f'<img class="{css}" alt="{_esc(alt)}" src="{png_data_uri(path.read_bytes())}">'
    except OSError:
        return "<p class='muted'>(picture missing)</p>"


def calibration_section(insights: Insights, metrics: dict) -> str:
    if "reliability" not in insights.charts or "expected_calibration_error" not in metrics:
        return ""
    from biapy_cls.evaluation.report_html import _cards, _fmt

    cards = [(_fmt(metrics["expected_calibration_error"]), "expected calibration error (15 bins)"),
             (_fmt(metrics["brier_score"]), "Brier score")]
    cal = metrics.get("calibration")
    note = ("A model is calibrated when, of the images it gives 90% confidence, 90% are right: the bars then "
            "follow the diagonal. ECE is the image-weighted gap between confidence and accuracy (0 is perfect).")
    if cal:
        cards += [(f"{cal['temperature']:.3f}", "temperature (fitted on validation)"),
                  (_fmt(cal["expected_calibration_error_before"]), "ECE before temperature scaling")]
        note += " The probabilities in predictions.csv are temperature-scaled (TEST.CALIBRATE)."
    return (f"<section><h2>Calibration</h2>{_cards(cards)}<p class='muted'>{_esc(note)}</p>"
            f"<div class='scroll'>{_img(insights.charts['reliability'], 'reliability diagram')}</div></section>")


def curves_section(insights: Insights) -> str:
    if "roc_pr" not in insights.charts:
        return ""
    return ("<section><h2>ROC and precision-recall curves</h2><p class='muted'>One class against the rest; the "
            "legend gives each class's ROC AUC and average precision, as in test_metrics.json.</p>"
            f"<div class='scroll'>{_img(insights.charts['roc_pr'], 'ROC and precision-recall curves')}</div></section>")


def embedding_section(insights: Insights) -> str:
    if "embedding" not in insights.charts:
        return ""
    validation = "validation" in insights.embedded_sets
    note = (f"Penultimate-layer features of the test{' and validation' if validation else ''} images: "
            f"{insights.embedding_note}. Classes that form separate clusters are told apart by the features; mixed "
            "clusters, or clusters by acquisition rather than class, point to confusions or a batch effect"
            + ("; test points where no validation point lies show images unlike those the model was selected on"
               if validation else "") + ". The features are in test_features.npy (rows in the order of "
            "predictions.csv)" + (" and val_features.npy (rows in the order of val_features.csv)" if validation
                                  else "") + ".")
    return (f"<section><h2>Feature embedding</h2><p class='muted'>{_esc(note)}</p>"
            f"<div class='scroll'>{_img(insights.charts['embedding'], 'feature embedding')}</div></section>")


def _figure(example: SaliencyExample, class_names: list[str]) -> str:
    tone = "bad" if example.kind == "error" else "good" if example.kind == "correct" else "plain"
    lines = [f"<b>{_esc(example.name)}</b>",
             f'<span class="p">predicted <span class="{tone}">{_esc(class_names[example.predicted])}</span> '
             f"({example.confidence:.1%})</span>"]
    if example.true is not None and example.true != example.predicted:
        lines.append(f'<span class="p">true <span class="good">{_esc(class_names[example.true])}</span></span>')
    return (f"<figure>{_img(example.png, example.name, 'sal')}<figcaption>{'<br>'.join(lines)}</figcaption>"
            "</figure>")


def saliency_section(insights: Insights, class_names: list[str]) -> str:
    if not insights.saliency:
        return ""
    groups = ""
    for kind, title in KIND_TITLES.items():
        chosen = [e for e in insights.saliency if e.kind == kind]
        if chosen:
            figures = "".join(_figure(e, class_names) for e in chosen)
            groups += f"<h3>{_esc(title)}</h3><div class='sal'>{figures}</div>"
    note = (f"Where the answer came from: {METHODS.get(insights.method, insights.method)} for the predicted "
            "class, red = most influence; each image is shown plain and with the map over it (volumes: maximum "
            "projection along z, then the middle z slice). The PNGs are in explain/.")
    return f"<section><h2>Saliency maps</h2><p class='muted'>{_esc(note)}</p>{groups}</section>"


def insight_sections(insights: Insights | None, metrics: dict | None, class_names: list[str]) -> list[str]:
    """The sections in page order; empty strings for what the run did not produce."""
    if insights is None:
        return []
    return [calibration_section(insights, metrics or {}), curves_section(insights), embedding_section(insights),
            saliency_section(insights, class_names)]
