"""The BiaPy notebook cell shown in docs/python_api.md runs against biapy-cls with only its import changed."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT


def biapy_cell() -> str:
    """The python block between the biapy-cell markers of docs/python_api.md, as the docs show it."""
    text = (ROOT / "docs" / "python_api.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- biapy-cell: start -->\s*```python\n(.*?)```\s*<!-- biapy-cell: end -->", text, re.S)
    assert block, "docs/python_api.md shows the BiaPy cell between its markers"
    return block.group(1)


@pytest.mark.slow
def test_biapy_cell_runs_with_only_the_import_changed(tmp_path, digits_dir, monkeypatch, capsys):
    cell = biapy_cell()
    assert cell.count("from biapy import") == 1 and "biapy_cls" not in cell  # really BiaPy's code
    changed = cell.replace("from biapy import", "from biapy_cls import")
    differing = [a for a, b in zip(cell.splitlines(), changed.splitlines()) if a != b]
    assert differing == ["from biapy import BiaPy, build_config"]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "digits").symlink_to(digits_dir)  # the cell's relative paths, as in a notebook folder
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(changed, "python_api.md (BiaPy cell)", "exec"), namespace)
    biapy, prediction = namespace["biapy"], namespace["prediction"]
    assert biapy.test_result.accuracy >= 0.85  # it trained for real
    assert prediction.class_name == ["7_seven"]
    assert "Predictions(1 image(s): 7_seven)" in capsys.readouterr().out
    run = tmp_path / "results" / "my_classification" / "results" / "my_classification_1"
    assert (run / "predictions.csv").exists() and (run / "test_metrics.json").exists()
