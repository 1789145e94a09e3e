"""The 2D and 3D notebooks run top to bottom in a real Jupyter kernel (nbclient), with small parameters
injected after their `parameters` cell as papermill does, and their results checked in a last cell."""

from __future__ import annotations

import os

import pytest

from conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"

# Small enough for CI on 2 cores (well under a minute each), large enough that the digits are learnt.
PARAMETERS = {
    "classification_2d": {"epochs": 8, "example_images_per_class": 60, "learning_rate": 3e-3},
    "classification_3d": {"epochs": 8, "example_images_per_class": 30, "learning_rate": 3e-3, "batch_size": 16,
                          "patch_size": (8, 24, 24, 1)},
}
# What a user would check at the end: the digits are learnt and every promised output is there.
CHECKS = """
assert results.accuracy >= {min_accuracy}, results.accuracy
assert (job_dir / "results" / f"{{job_name}}_1" / "predictions.csv").exists()
assert (results.results_dir / "report.html").exists() and len(prediction) == len(new_files)
assert model.predict(images).class_name == prediction.class_name
"""


def run_notebook(name: str, workdir, parameters: dict, min_accuracy: float, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "each notebook has one cell tagged 'parameters'"
    injected = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    nb.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(f"# injected by the test\n{injected}"))
    nb.cells.append(nbformat.v4.new_code_cell(CHECKS.format(min_accuracy=min_accuracy)))
    # The kernel imports this checkout of biapy_cls (PYTHONPATH), not another installed copy.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any failing cell
    return nb


def outputs_of(nb, kind: str) -> list:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs if out.output_type == kind]


@pytest.mark.slow
def test_2d_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    nb = run_notebook("classification_2d", tmp_path, PARAMETERS["classification_2d"], 0.8, monkeypatch)
    shown = outputs_of(nb, "display_data") + outputs_of(nb, "execute_result")
    pictures = [out for out in shown if "image/png" in out.data]
    assert len(pictures) >= 3  # examples, curves, confusion matrix (and the misclassified images, if any)
    assert (tmp_path / "results" / "classification_2d" / "checkpoints").is_dir()


@pytest.mark.slow
def test_3d_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    run_notebook("classification_3d", tmp_path, PARAMETERS["classification_3d"], 0.6, monkeypatch)
    assert (tmp_path / "results" / "classification_3d" / "results" / "classification_3d_1" / "report.html").exists()


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_notebooks_are_stored_without_outputs(name):
    import nbformat

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    assert any("from biapy_cls import BiaPy, build_config" in cell.source for cell in code)
