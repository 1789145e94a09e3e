"""The Python API used wrongly (hostile pass, docs/hostile_pass.md): messages in the API's own words."""

from __future__ import annotations

import pytest
import yaml

from biapy_cls import BiaPy
from biapy_cls.errors import ConfigError
from tests.conftest import digits_config


@pytest.fixture
def config_file(small_digits_dir, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(digits_config(small_digits_dir)))
    return path


def test_swapped_config_and_result_dir_are_named(config_file, tmp_path):
    """BiaPy('results', 'config.yaml') said "Check the path given to --config", a flag the API does not have."""
    with pytest.raises(ConfigError) as err:
        BiaPy(str(tmp_path / "results"), str(config_file))
    message = str(err.value)
    assert message.startswith(f"BiaPy(config): '{tmp_path / 'results'}' does not exist.")
    assert "the arguments look swapped" in message and "--config" not in message
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(ConfigError, match="is a folder, not a YAML file or .pth checkpoint"):
        BiaPy(tmp_path / "a_folder", result_dir=tmp_path / "out")


@pytest.mark.parametrize("run_id", ["abc", 1.5, None, True])
def test_run_id_must_be_an_integer(config_file, tmp_path, run_id):
    with pytest.raises(ConfigError, match="BiaPy\\(run_id=...\\) must be an integer"):
        BiaPy(config_file, result_dir=tmp_path / "out", run_id=run_id)
    assert not (tmp_path / "out").exists()


def test_a_run_id_of_digits_is_a_number(config_file, tmp_path):
    assert BiaPy(config_file, result_dir=tmp_path / "out", run_id="7").run_id == 7
