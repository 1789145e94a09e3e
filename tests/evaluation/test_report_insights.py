"""The report's calibration, ROC/PR, embedding and saliency sections; the page links nothing outside itself
and renders in a headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from yacs.config import CfgNode as CN

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.evaluation.calibration import calibration_metrics, plot_reliability
from biapy_cls.evaluation.curves import plot_roc_pr
from biapy_cls.evaluation.embedding import FeatureSet, plot_embedding
from biapy_cls.evaluation.explain import overlay_png
from biapy_cls.evaluation.insights import Insights, SaliencyExample
from biapy_cls.evaluation.metrics import classification_metrics as compute_metrics
from biapy_cls.evaluation.report_html import Predictions, render_report
from biapy_cls.outputs import RunPaths

# Tags that load another resource; attributes that name one.
FETCHING_TAGS = {"script", "link", "iframe", "object", "embed", "frame", "video", "audio", "source", "track", "base"}
URL_ATTRIBUTES = {"src", "href", "srcset", "poster", "data", "action", "formaction", "background", "xlink:href"}


class ExternalReferences(HTMLParser):
    """Collects every way the page could load something that is not inside it."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in FETCHING_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value and not value.startswith(("data:", "#")):
                self.found.append(f"{tag} {name}={value[:80]}")


def external_references(page: str) -> list[str]:
    parser = ExternalReferences()
    parser.feed(page)
    css_urls = [u for u in re.findall(r"url\(\s*['\"]?([^'\")]+)", page) if not u.startswith("data:")]
    return parser.found + [f"css url({u})" for u in css_urls] + re.findall(r"@import[^;]*", page)


def test_the_link_checker_catches_what_would_load_from_outside():
    page = ('<img src="a.png"><link rel=stylesheet href="x.css"><a href="https://x.org">x</a>'
            '<style>body{background:url(b.png)}@import "c.css";</style><img src="data:image/png;base64,AA">')
    found = external_references(page)
    assert len(found) == 6 and not any("data:" in f for f in found)  # <link> counts as tag and as href


@pytest.fixture
def report_with_insights(tmp_path) -> tuple[str, RunPaths]:
    """A report of 3 classes with every insight section, from real charts and saliency PNGs."""
    rng = np.random.default_rng(0)
    names = ["alive", "dead", "mitotic"]
    labels = np.repeat(np.arange(3), 20)
    logits = rng.normal(size=(60, 3)) + 2.5 * np.eye(3)[labels]
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    metrics = compute_metrics(labels, probs, names)
    metrics.update(calibration_metrics(labels, probs, probs, None))
    paths = RunPaths.create(tmp_path, "job", 1, "cfg.yaml")
    files = []
    for i in range(60):
        files.append(tmp_path / f"img_{i}.npy")
        np.save(files[-1], rng.uniform(size=(16, 16)).astype(np.float32))
    charts = {"reliability": paths.charts_dir / "r.png", "roc_pr": paths.charts_dir / "c.png",
              "embedding": paths.charts_dir / "e.png"}
    plot_reliability(probs, labels, charts["reliability"], "Reliability")
    plot_roc_pr(labels, probs, names, metrics, charts["roc_pr"], "Curves")
    val_labels = np.repeat(np.arange(3), 10)
    sets = [FeatureSet("test", rng.normal(size=(60, 8)) + labels[:, None], probs.argmax(1), labels),
            FeatureSet("validation", rng.normal(size=(30, 8)) + val_labels[:, None], val_labels, val_labels)]
    note = plot_embedding(sets, names, charts["embedding"], "Embedding")
    saliency = []
    for i, kind in [(0, "correct"), (25, "correct"), (int(np.flatnonzero(probs.argmax(1) != labels)[0]), "error")]:
        png = paths.explain_dir / f"{kind}_{i}.png"
        overlay_png(rng.uniform(size=(1, 16, 16)), rng.uniform(size=(16, 16)), png)
        saliency.append(SaliencyExample(i, files[i].name, kind, int(probs[i].argmax()), float(probs[i].max()),
                                        int(labels[i]), png))
    insights = Insights(charts=charts, embedding_note=note, embedded_sets=["test", "validation"], saliency=saliency)
    cfg = get_cfg_defaults()
    cfg.merge_from_other_cfg(CN({"TEST": {"ENABLE": True}}))
    outcome = Predictions(files, [f.name for f in files], probs, labels, metrics, read_image=np.load,
                          insights=insights)
    page = render_report(paths, cfg, names, outcome)
    paths.report.parent.mkdir(parents=True, exist_ok=True)
    paths.report.write_text(page)
    return page, paths


def test_report_shows_calibration_curves_embedding_and_saliency(report_with_insights):
    page, _ = report_with_insights
    for title in ("Calibration", "ROC and precision-recall curves", "Feature embedding", "Saliency maps",
                  "Most confidently misclassified", "Correct, most confident per class"):
        assert f">{title}<" in page, title
    assert "expected calibration error (15 bins)" in page and "test_features.npy" in page
    assert "val_features.npy (rows in the order of val_features.csv)" in page
    # 3 charts + 3 saliency maps inlined as pictures, besides the misclassified thumbnails
    assert page.count('class="chart"') >= 3 and page.count('class="sal"') == 3
    assert external_references(page) == []


def test_unlabelled_report_has_no_calibration_section(tmp_path):
    paths = RunPaths.create(tmp_path, "job", 1, "cfg.yaml")
    png = paths.explain_dir / "uncertain_0.png"
    overlay_png(np.ones((1, 8, 8)), np.ones((8, 8)), png)
    probs = np.array([[0.5, 0.5]], dtype=np.float32)
    insights = Insights(saliency=[SaliencyExample(0, "a.tif", "uncertain", 0, 0.5, None, png)])
    page = render_report(paths, get_cfg_defaults(), ["a", "b"],
                         Predictions([tmp_path / "a.tif"], ["a.tif"], probs, None, None, insights=insights))
    assert ">Least confident<" in page and ">Calibration<" not in page and ">Saliency maps<" in page


def chromium() -> str | None:
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def page_requests(net_log: dict) -> list[str]:
    """URLs the page requested over the network, from a Chromium net log. A file:// page's own requests carry
    its opaque origin, "null", as initiator (checked by hand with an <img src="http://..."> page, Chromium
    156); the browser's own traffic (update checks, network time) has "not an origin"."""
    start = net_log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [e.get("params", {}) for e in net_log["events"] if e["type"] == start]
    return [p["url"] for p in jobs if "url" in p and p.get("initiator") != "not an origin"]


def test_the_net_log_reader_finds_the_page_requests_and_ignores_the_browser_own():
    log = {"constants": {"logEventTypes": {"URL_REQUEST_START_JOB": 7, "OTHER": 8}},
           "events": [{"type": 7, "params": {"url": "http://x.invalid/a.png", "initiator": "null"}},
                      {"type": 7, "params": {"url": "https://update.googleapis.com/", "initiator": "not an origin"}},
                      {"type": 8, "params": {"url": "http://x.invalid/b.png"}}]}
    assert page_requests(log) == ["http://x.invalid/a.png"]


@pytest.mark.skipif(chromium() is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_report_renders_in_headless_chromium_without_network(report_with_insights, tmp_path):
    from PIL import Image

    _, paths = report_with_insights
    shot, net_log = tmp_path / "report.png", tmp_path / "net_log.json"
    # Every host name resolves to nothing, so anything fetched from outside would be missing from the picture;
    # the network log records every request the page made; Chromium's own background traffic is switched off.
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--disable-background-networking", "--disable-component-update", "--no-first-run",
                    "--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={net_log}", f"--screenshot={shot}",
                    "--window-size=1200,6000", paths.report.as_uri()], check=True, capture_output=True, timeout=120)
    assert page_requests(json.loads(net_log.read_text())) == []
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape == (6000, 1200, 3)
    # The page background is light grey; drawn content (text, charts, images) makes the picture far from uniform.
    grey = pixels.mean(2)
    assert grey.std() > 20 and (grey < 100).mean() > 0.01
    # The saliency overlays and class colours: many strongly coloured pixels, which text alone would not give.
    saturation = pixels.max(2) - pixels.min(2)
    assert (saturation > 100).mean() > 0.01
