"""The default ViT, simple_cnn and EfficientNet-B0, at their default sizes, learn the digits under a BiaPy
user's settings (issue 14), and so does torchvision's resnet18 from a random start (issue 15).

The settings of bench/model_ablation.py: AdamW, TRAIN.LR 1e-3, no LR scheduler, batch 32, RANDOM_ROT,
10% of the training images for validation, the full digits split of scripts/make_example_data.py
(1437 training, 360 test images), SYSTEM.SEED 0, one CPU thread (as measured; the run is then the
measured seed-0 run: vit 0.978, simple_cnn 0.994, about 40 and 30 CPU seconds). The floors are
those of issue 14; every seed measured in docs/models.md is above them. 10 epochs each, as measured
(3D EfficientNet: 5, see its test).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, load_script, write_yaml

pytestmark = pytest.mark.slow


def ablation():
    spec = importlib.util.spec_from_file_location("model_ablation", ROOT / "bench" / "model_ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_and_test(tmp_path: Path, data: Path, arch: str, ndim: str, epochs: int, run_biapy) -> tuple[float, str]:
    """(test accuracy, log) of the digits template under BiaPy's settings; `arch` '' names no architecture,
    torchvision:NAME a torchvision model from a random start (as bench/model_ablation.py --arch)."""
    bench = ablation()
    template, _, overrides = bench.SETUPS[ndim]
    settings = list(bench.BIAPY_SETTINGS)
    settings[settings.index("TRAIN.EPOCHS") + 1] = str(epochs)
    config = bench.TEMPLATES / template
    if not arch:  # the template without MODEL.ARCHITECTURE: the default architecture
        raw = yaml.safe_load(config.read_text())
        raw["MODEL"].pop("ARCHITECTURE")
        config = write_yaml(tmp_path / "no_architecture.yaml", {k: v for k, v in raw.items() if v})
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "floor",
                               "--run_id", "1", "DATA.TRAIN.PATH", data / "train", "DATA.TEST.PATH", data / "test",
                               *settings, *overrides, *(bench.model_keys(arch) if arch else []),
                               "SYSTEM.SEED", "0")
    assert code == 0, err
    metrics = json.loads((tmp_path / "floor" / "results" / "floor_1" / "test_metrics.json").read_text())
    return metrics["accuracy"], out


def test_default_vit_learns_2d_digits_in_10_epochs(tmp_path, digits_dir, run_biapy):
    """A YAML that names no architecture trains the ViT, sized for the patch and warmed up for one epoch."""
    accuracy, log = train_and_test(tmp_path, digits_dir, "", "2D", 10, run_biapy)
    assert "ViT sizes for a 32x32 patch: token 8x8" in log and "Model: vit" in log
    assert "warms up linearly" in log
    assert accuracy >= 0.97


@pytest.fixture(scope="module")
def digits3d_dir(tmp_path_factory) -> Path:
    """The 3D digits (16x32x32 volumes) of bench/model_ablation.py --ndim 3D."""
    data = tmp_path_factory.mktemp("digits3d")
    assert load_script("make_example_data").main([str(data), "--3d", "--depth", "16"]) == 0
    return data


def test_default_vit_learns_3d_digits_in_10_epochs(tmp_path, digits3d_dir, run_biapy):
    """Seed 0 measured 0.967 in about 145 CPU seconds, the 3 seeds 0.956-0.967; issue 14's floor is 0.90."""
    accuracy, log = train_and_test(tmp_path, digits3d_dir, "vit", "3D", 10, run_biapy)
    assert "Model: vit" in log
    assert accuracy >= 0.90


def test_simple_cnn_learns_2d_digits_in_10_epochs(tmp_path, digits_dir, run_biapy):
    assert train_and_test(tmp_path, digits_dir, "simple_cnn", "2D", 10, run_biapy)[0] >= 0.99


def test_efficientnet_b0_learns_2d_digits_in_10_epochs(tmp_path, digits_dir, run_biapy):
    """Layout 2 (issue 14; 2D is the same in layout 3): stride-1 stem, 4-pixel final map, zero-initialised
    residual blocks. One 10-epoch run of EfficientNet moves by about 2 points with last-bit changes of the
    numerics (seed 0 gave 0.944 with this code and 0.958-0.981 with equivalent warp-grid computations), so
    this test guards against the regression, not the issue's 0.95, which is on the mean of 3 seeds
    (bench/model_ablation.py, docs/models.md): its floor 0.93 is above layout 1's 0.906 mean (0.892-0.914).
    About 300 CPU seconds."""
    accuracy, log = train_and_test(tmp_path, digits_dir, "efficientnet_b0", "2D", 10, run_biapy)
    assert "the stem and the last 1 stage(s) of its 5 stride-2 steps run at stride 1 (total stride 8)" in log
    assert accuracy >= 0.93


def test_efficientnet_b0_learns_3d_digits_in_5_epochs(tmp_path, digits3d_dir, run_biapy):
    """Layout 3 in 3D: the 2D default's resolution (stem at stride 1 in y-x, a 4-pixel final map), PyTorch's
    batch-norm momentum (with MONAI's 0.01 layout 1 tests at chance, 0.103), no drop-connect,
    zero-initialised residual blocks. 10 epochs take ~1700 CPU s, so CI trains 5 (~900 CPU s, still the
    costliest test, kept because 3D EfficientNet is what issue 14 found broken): 5 epochs gave 0.952
    (0.933-0.961; seed 0, this run: 0.933) in docs/models.md (`--set TRAIN.EPOCHS 5`); the floor, 0.90,
    catches a collapse and layouts that learn slower. The issue's 0.95 is on the 3-seed mean at 10
    epochs: 0.963 (0.961-0.967)."""
    accuracy, log = train_and_test(tmp_path, digits3d_dir, "efficientnet_b0", "3D", 5, run_biapy)
    assert ("the stem (in y-x) and the last 1 stage(s) of its 5 stride-2 steps run at stride 1 "
            "(total stride 8 in y-x)") in log
    assert accuracy >= 0.90


def test_torchvision_resnet18_learns_2d_digits_in_6_epochs(tmp_path, digits_dir, run_biapy):
    """Issue 15: MODEL.SOURCE torchvision resnet18, 1 channel adapted, random start (no ImageNet weights
    offline), >= 0.95 within a CPU budget. bench/model_ablation.py --arch torchvision:resnet18 measured, over
    seeds 0-2: 4 epochs 0.942-0.964 (misses on seed 0), 6 epochs 0.958-0.964 in 46 CPU s (seed 0, this run:
    0.961), 8 epochs 0.964-0.978 in 65 CPU s. 6 is the cheapest that holds on every seed."""
    accuracy, log = train_and_test(tmp_path, digits_dir, "torchvision:resnet18", "2D", 6, run_biapy)
    assert "Model: torchvision resnet18 (" in log and "normalisation: div" in log
    report = (tmp_path / "floor" / "results" / "floor_1" / "report.html").read_text()
    assert "resnet18 (torchvision, random start)" in report
    assert accuracy >= 0.95
