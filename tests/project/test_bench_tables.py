"""The accuracy benchmarks (bench/model_ablation.py, bench/regularisers.py) keep their results in a JSON file
and render the markdown tables of docs/models.md and docs/benchmarks.md from it: the figures in the docs are
the ones a run wrote, with the command that produced them, and the hand-written text around them is kept."""

from __future__ import annotations

import json

from conftest import ROOT


def bench(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablation_rows_merge_seeds_and_render_mean_range_and_command(tmp_path, capsys):
    ablation = bench("model_ablation")
    out = tmp_path / "rows.json"
    for seeds, accs in (([0, 1], [0.95, 0.97]), ([2], [0.99])):  # two runs of the same row, merged by seed
        args = ablation.argparse.Namespace(arch="vit", ndim="2D", design=["stem=patchify"], set=[["TRAIN.LR", "3e-3"]],
                                           seeds=seeds, out=out)
        rows = [{"seed": s, "accuracy": a, "wall": 10.0, "cpu": 30.0 + s} for s, a in zip(seeds, accs)]
        ablation.summary(args, "stem=patchify", rows)
    docs = tmp_path / "models.md"
    docs.write_text(f"# Models\n\nby hand\n\n{ablation.BEGIN}\nold table\n{ablation.END}\n\nafter\n")
    assert ablation.main(["--render", str(out), "--docs", str(docs)]) == 0
    text = docs.read_text()
    assert text.startswith("# Models\n\nby hand\n\n") and text.endswith("\n\nafter\n") and "old table" not in text
    row = next(line for line in text.splitlines() if line.startswith("| vit 2D |"))
    assert "| stem=patchify | TRAIN.LR=3e-3 | 0.970 | 0.950-0.990 | 31 | 0,1,2 |" in row
    assert "`python bench/model_ablation.py --arch vit --design stem=patchify --set TRAIN.LR 3e-3`" in row
    assert len(json.loads(out.read_text())) == 1


def test_torchvision_models_are_named_with_a_source_prefix():
    ablation = bench("model_ablation")
    assert ablation.model_keys("simple_cnn") == ["MODEL.ARCHITECTURE", "simple_cnn"]
    keys = ablation.model_keys("torchvision:resnet18")
    assert keys[keys.index("MODEL.TORCHVISION_MODEL_NAME") + 1] == "resnet18"
    assert keys[keys.index("MODEL.TORCHVISION_PRETRAINED") + 1] == "False"  # no download: runs offline


def test_regulariser_tables_render_from_the_saved_runs(tmp_path):
    regularisers = bench("regularisers")
    saved = {"2D 32px 10 epochs": {
        "title": "2D digits (32x32), 10 epochs", "command": "python bench/regularisers.py --data data/digits",
        "runs": {"template (RANDOM_ROT +-10)": {"0": {"accuracy": 0.99, "cpu": 30.0},
                                                "1": {"accuracy": 0.97, "cpu": 32.0}},
                 "+ EMA 0.99": {}}}}
    path = tmp_path / "reg.json"
    path.write_text(json.dumps(saved))
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"intro\n{regularisers.BEGIN}\n{regularisers.END}\noutro\n")
    assert regularisers.main(["--render", str(path), "--docs", str(docs)]) == 0
    text = docs.read_text()
    assert "    python bench/regularisers.py --data data/digits\n" in text
    assert "| template (RANDOM_ROT +-10) | 0.9800 | 0.9700-0.9900 | 0: 0.9900, 1: 0.9700 | 31 |" in text
    assert "+ EMA 0.99" not in text  # a setting without runs has no row
    assert text.startswith("intro\n") and text.endswith("\noutro\n")
