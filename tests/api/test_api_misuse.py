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


def test_one_rgb_image_for_a_grey_model_is_refused_not_split_into_16_images():
    """predict(np.zeros((16, 16, 3))) on a grey 16x16 model returned 16 predictions (16 'images' of 16x3 pixels)."""
    import numpy as np

    from biapy_cls.api_predict import split_images
    from biapy_cls.errors import DataError

    with pytest.raises(DataError) as err:
        split_images(np.zeros((16, 16, 3)), "2D", 1, size=(16, 16))
    message = str(err.value)
    assert "one 16x16 image with 3 channels, but the model takes 1 channel(s)" in message
    assert "a batch of 16 images of 16x3 pixels" in message
    assert len(split_images(np.zeros((16, 16, 16)), "2D", 1, size=(16, 16))[0]) == 16  # a real batch still is one
    assert len(split_images(np.zeros((3, 16, 16)), "2D", 1, size=(16, 16))[0]) == 3
    assert split_images(np.zeros((16, 16, 4)), "2D", 3, size=(16, 16))[1] is True  # RGBA for an RGB model


def test_an_rgba_array_still_predicts_with_an_rgb_model():
    """Arrays given to predict() are most often PNGs the caller read: their 4th channel is alpha, as in the file."""
    import numpy as np

    from biapy_cls.data.io import read_image

    arr = read_image(None, "2D", 3, False, array=np.zeros((16, 16, 4), np.uint8))
    assert arr.shape == (16, 16, 3)
