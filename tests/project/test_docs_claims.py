"""Figures written in comments and docs match what the code does, so they cannot drift unseen."""

from __future__ import annotations

import re

from biapy_cls.config.defaults import get_cfg_defaults
from conftest import ROOT

DEFAULTS = (ROOT / "biapy_cls" / "config" / "defaults.py").read_text()


def _comment_of(key: str) -> str:
    """The comment lines right above the key, joined."""
    lines = DEFAULTS.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"_C.{key} ="))
    start = index
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    return " ".join(line.lstrip("# ") for line in lines[start:index])


def test_vit_token_size_comment_gives_the_automatic_choice():
    from biapy_cls.models import ModelSpec
    from biapy_cls.models.vit import vit_sizes

    token, side = map(int, re.search(r"e\.g\. (\d+) for (\d+)x\d+", _comment_of("MODEL.VIT_TOKEN_SIZE")).groups())
    chosen = vit_sizes(ModelSpec("vit", "2D", 1, 10, (side, side)), get_cfg_defaults().MODEL)
    assert chosen["tokens"] == (token, token)


def test_tta_comment_counts_the_views():
    from biapy_cls.engine.inference import tta_views

    comment = _comment_of("TEST.AUGMENTATION")
    (v2, v2_rect), (v3, v3_rect) = [tuple(map(int, m)) for m in re.findall(r"(\d+) views \((\d+) when", comment)]
    assert (len(tta_views((1, 1, 8, 8))), len(tta_views((1, 1, 8, 6)))) == (v2, v2_rect)
    assert (len(tta_views((1, 1, 4, 8, 8))), len(tta_views((1, 1, 4, 8, 6)))) == (v3, v3_rect)


def test_no_test_asserts_on_wall_time():
    """Speed is measured by the benchmarks under bench/ (docs/development.md says so), not by timed tests."""
    timed = [f"{p.relative_to(ROOT)}" for p in (ROOT / "tests").rglob("test_*.py")
             if re.search(r"assert [^\n]*perf_counter\(\)|assert [^\n]*time\.time\(\)", p.read_text())]
    assert timed == []
