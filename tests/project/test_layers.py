"""Data flows one way: CLI -> config -> workflow -> data / model / engine -> evaluation. Each package may
import only the layers below it (and its own modules); the run-level modules at the top wire them."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "biapy_cls"
BASE = {"errors", "logs", "outputs", "signals", "run_safety", "__version__"}  # utilities every layer may use
LAYERS = {  # package -> what it may import besides BASE and itself
    "config": set(),
    "models": {"config"},
    "data": {"config"},
    "engine": {"config", "models"},
    "evaluation": {"config", "data", "models", "engine"},
    "export": {"config", "data", "models", "engine"},
}
# Pure computations the engine reports during training (confusion matrix, summaries), kept with the other
# metrics; no file or chart is written through them.
ALLOWED = {("engine", "biapy_cls.evaluation.metrics")}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("biapy_cls"):
            found |= {f"{node.module}.{a.name}" for a in node.names} if node.module == "biapy_cls" else {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("biapy_cls")}
    return found


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for layer, allowed in LAYERS.items():
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            for module in imports(path):
                target = module.split(".")[1] if "." in module else module
                if target in BASE | allowed | {layer} or (layer, module) in ALLOWED:
                    continue
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_rule_finds_an_upward_import(tmp_path):
    bad = tmp_path / "check.py"
    bad.write_text("def f():\n    from biapy_cls.models import get_source\n")
    assert imports(bad) == {"biapy_cls.models"}
