"""bench/run.py runs end to end and writes a table for every section (no speed is asserted: timings belong
in bench/, not in tests), plus the two speed fixes it led to keep their results."""

from __future__ import annotations

import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from biapy_cls.data.io import read_file
from biapy_cls.data.transforms import Normalizer
from conftest import ROOT


@pytest.mark.slow
def test_quick_benchmark_writes_every_section_and_keeps_hand_written_text(tmp_path):
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nNotes written by hand.\n")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--output", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nNotes written by hand.\n")
    for heading in ("## Targets", "## 1. Engine overhead", "## 2. Data pipeline", "## 3. Scaling", "## 4. Start-up",
                    "## 5. Test-time augmentation cost", "## 6. Realistic sizes"):
        assert heading in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("|--")]
    assert any(r.startswith("| simple_cnn | 2D |") for r in rows)  # engine
    assert any(r.startswith("| augmentation + normalisation of a stored batch |") for r in rows)  # pipeline
    assert any(r.startswith("| lazy (PNG files), 2 worker(s)") for r in rows)
    assert any(r.startswith("| RANDAUGMENT |") for r in rows) and any(r.startswith("| **sum** |") for r in rows)
    assert sum(r.startswith("| 1 | ") for r in rows) == 2  # scaling: in memory and lazy
    assert any("`python -m biapy_cls --help`" in r for r in rows) and any("test-only run" in r for r in rows)
    assert any(r.startswith("| True |") for r in rows) and any(r.startswith("| False |") for r in rows)  # TTA
    assert any("`python -c \"import torch\"`" in r for r in rows)  # start-up floor, measured in the same run
    for fmt in ("224x224 RGB JPEG", "256x256 uint16 TIFF", "64x128x128 uint16 TIFF"):  # realistic sizes
        assert sum(r.startswith(f"| {fmt} |") for r in rows) >= 2  # pipeline and training-step rows
    assert any(r.startswith("| 64x128x128 uint16 TIFF | 4 |") for r in rows)  # lazy memory at 4x the data
    assert any(r.startswith("| TTA <= 1.1x") for r in rows)
    assert "torch" in text and "timm" in text and "cores" in text


def test_per_image_normalisation_is_zero_mean_unit_variance():
    x = torch.rand(5, 2, 6, 7) * torch.arange(1, 6).view(5, 1, 1, 1)
    y = Normalizer("zero_mean_unit_variance")(x, 255.0)
    assert torch.allclose(y, (x - x.mean((1, 2, 3), keepdim=True)) / x.std((1, 2, 3), keepdim=True, unbiased=False),
                          atol=1e-5)


def test_pillow_reading_matches_imageio(tmp_path):
    rng = np.random.default_rng(0)
    images = {"u8.png": rng.integers(0, 256, (9, 11), dtype=np.uint8),
              "u16.png": rng.integers(0, 65536, (9, 11), dtype=np.uint16),
              "rgba.png": rng.integers(0, 256, (9, 11, 4), dtype=np.uint8),
              "rgb.bmp": rng.integers(0, 256, (9, 11, 3), dtype=np.uint8),
              "gray.jpg": rng.integers(0, 256, (9, 11), dtype=np.uint8)}
    for name, image in images.items():
        iio.imwrite(tmp_path / name, image)
    Image.fromarray(images["rgba.png"][..., :3]).convert("P").save(tmp_path / "palette.png")
    for path in sorted(tmp_path.iterdir()):
        ours, theirs = read_file(path), iio.imread(path)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), path.name


def run_only(section: str, out) -> str:
    """`bench/run.py --only SECTION --quick` on the markdown file `out`; its text afterwards."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--only", section, "--quick", "--output",
                           str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out.read_text()


@pytest.mark.slow
def test_startup_alone_replaces_only_its_section_and_target_rows(tmp_path):
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n<!-- bench/run.py begin -->\n## Targets\n\n"
                   "| target | measured | met |\n|---|---|---|\n| engine row | 1 | yes |\n"
                   "| `biapy --help` < 1 s | 9.9 s | **no** |\n"
                   "| test-only run within 1 s of import torch | old | **no** |\n| TTA row | 2 | yes |\n\n"
                   "## 4. Start-up (old)\n\nold table\n\n## 5. Test-time augmentation cost\n\nkept\n"
                   "<!-- bench/run.py end -->\nhand-written\n")
    text = run_only("startup", out)
    assert "old" not in text and "9.9 s" not in text
    lines = text.splitlines()
    targets = lines[lines.index("| engine row | 1 | yes |"):lines.index("| TTA row | 2 | yes |") + 1]
    assert len(targets) == 4 and targets[1].startswith("| `biapy --help` < 1 s")
    assert targets[2].startswith("| test-only run's start-up (to its first image) within 1 s")
    section = text[text.index("## 4. Start-up"):text.index("## 5.")]
    assert "until its first image" in section and "until torch is imported" in section and "--only startup" in section
    assert text.endswith("## 5. Test-time augmentation cost\n\nkept\n<!-- bench/run.py end -->\nhand-written\n")


@pytest.mark.slow
def test_pipeline_alone_replaces_only_its_section_and_adds_its_target_row(tmp_path):
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n<!-- bench/run.py begin -->\n## Targets\n\n"
                   "| target | measured | met |\n|---|---|---|\n| engine row | 1 | yes |\n| TTA row | 2 | yes |\n\n"
                   "## 2. Data pipeline / simple_cnn training step\n\nold table\n\n## 3. Scaling\n\nkept\n"
                   "<!-- bench/run.py end -->\nhand-written\n")
    text = run_only("pipeline", out)
    assert "old table" not in text
    lines = text.splitlines()
    targets = lines[lines.index("| engine row | 1 | yes |"):lines.index("| TTA row | 2 | yes |") + 2]
    assert targets[2].startswith("| data pipeline >= 5x the simple_cnn training step, every transformation on")
    section = text[text.index("## 2. Data pipeline"):text.index("## 3.")]
    assert "stored batch, issue 5's transformations only" in section and "--only pipeline" in section
    assert "| RANDAUGMENT |" in section
    assert text.endswith("## 3. Scaling\n\nkept\n<!-- bench/run.py end -->\nhand-written\n")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_allocator_benchmark_writes_its_section_and_keeps_the_rest(tmp_path):
    out = tmp_path / "bench.md"
    out.write_text("# Benchmarks\n\nhand-written\n\n## CPU memory between training steps\n\nold table\n\n"
                   "## Later\n\nkept\n")
    subprocess.run([sys.executable, str(ROOT / "bench" / "allocator.py"), "--rounds", "1", "--models", "simple_cnn",
                    "--output", str(out)], check=True, capture_output=True)
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written\n\n## CPU memory between training steps\n")
    assert "old table" not in text and text.endswith("\n## Later\n\nkept\n")
    row = next(line for line in text.splitlines() if line.startswith("| simple_cnn |"))
    # step times in ms for both sides, then the speed-up with its range
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[1]) > 0 and float(cells[2]) > 0 and cells[3].endswith(")")
