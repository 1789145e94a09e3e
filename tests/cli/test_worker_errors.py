"""A bad file found by a DataLoader worker gives the same one paragraph as in memory (issue 21, point 21)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from biapy_cls.cli import worker_message
from biapy_cls.data.dataset import ImageSpec, build_dataset, build_loader
from biapy_cls.data.discover import SampleList
from biapy_cls.errors import DataError


def test_a_truncated_image_read_by_a_worker_is_one_paragraph(tmp_path):
    for k in range(3):
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / f"{k}.png")
    (tmp_path / "2.png").write_bytes((tmp_path / "2.png").read_bytes()[:30])
    samples = SampleList(sorted(tmp_path.glob("*.png")), np.zeros(3, dtype=np.int64), tmp_path)
    loader = build_loader(build_dataset(samples, ImageSpec("2D", (8, 8), 1), False, "t"), 1, False, 0, 1, False)
    with pytest.raises(DataError) as err:
        list(loader)
    assert "Original Traceback" in str(err.value)  # what torch hands over
    message = worker_message(str(err.value))
    assert message.startswith("Cannot read the image '") and "2.png" in message
    assert "Traceback" not in message and "\n" not in message.strip()


def test_other_messages_are_left_alone():
    assert worker_message("Cannot read the image 'x': ...") == "Cannot read the image 'x': ..."
