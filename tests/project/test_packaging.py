"""Every import is declared: the fresh environment CI builds from pyproject.toml has what the code needs.

The scan reads the source (so rarely run code paths count too); importing every module and building
every architecture catches what a scan cannot (an import inside a library we call).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as metadata
import pkgutil
import re
import sys

import pytest
import tomllib

import biapy_cls
from conftest import ROOT

SCANNED = ["biapy_cls", "scripts", "bench"]
# import name -> distribution, for packages whose two names differ (used when the package is not installed)
ALIASES = {"PIL": "pillow", "sklearn": "scikit-learn", "skimage": "scikit-image", "yaml": "pyyaml",
           "cv2": "opencv-python", "bioimageio": "bioimageio-core", "umap": "umap-learn"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normalise(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}


def third_party_imports(folders=SCANNED) -> dict[str, str]:
    """top-level module -> 'file:line' of its first import, for modules outside the stdlib and the repo."""
    local = {p.stem for folder in folders for p in (ROOT / folder).rglob("*.py")} | {"biapy_cls", "conftest"}
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in local:
                        found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def undeclared(imports: dict[str, str], declared: set[str]) -> list[str]:
    providers = metadata.packages_distributions()
    missing = []
    for module, where in sorted(imports.items()):
        candidates = {_normalise(d) for d in providers.get(module, [])} or {_normalise(ALIASES.get(module, module))}
        if not candidates & declared:
            missing.append(f"{module} ({where}) is provided by {' or '.join(sorted(candidates))}, "
                           "which pyproject.toml does not declare")
    return missing


def test_every_third_party_import_is_declared():
    assert undeclared(third_party_imports(), declared_distributions()) == []


def test_the_scan_catches_an_undeclared_import(tmp_path, monkeypatch):
    """The scan would fail on a package the code imports but pyproject.toml does not name."""
    imports = third_party_imports()
    assert {"torch", "numpy", "yaml"} <= set(imports)
    declared = declared_distributions() - {"monai"}
    assert [line.split(" ")[0] for line in undeclared(imports, declared)] == ["monai"]


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(biapy_cls.__path__, "biapy_cls.")]
    assert len(names) > 20
    for name in names:
        importlib.import_module(name)


@pytest.mark.parametrize("ndim", ["2D", "3D"])
def test_every_registered_architecture_builds(ndim):
    from biapy_cls.models import ModelSpec, available_architectures, build_model

    spatial = (32, 32) if ndim == "2D" else (16, 32, 32)
    for name in available_architectures():
        model = build_model(ModelSpec(name, ndim, 1, 3, spatial))
        assert sum(p.numel() for p in model.parameters()) > 0, name
