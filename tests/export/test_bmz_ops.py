"""The export writes our normalisation as bioimage.io preprocessing steps, and MODEL.SOURCE bmz applies such
steps: for every DATA.NORMALIZATION the steps (as bioimageio.spec parses them) give what our pipeline gives."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("bioimageio.spec")

from biapy_cls.data.transforms import Normalizer, to_unit  # noqa: E402
from biapy_cls.export.bmz_files import preprocessing_ops  # noqa: E402
from biapy_cls.export.bmz_import import apply_op  # noqa: E402

NORMALIZERS = {
    "div": Normalizer(kind="div"),
    "scale_range": Normalizer(kind="scale_range"),
    "zmuv per image": Normalizer(),
    "zmuv fixed": Normalizer(mean=100.0, std=40.0),
    "zmuv fixed, clipped to fixed values": Normalizer(mean=100.0, std=40.0, clip=True, lower_value=20.0,
                                                      upper_value=200.0),
    "div, clipped to fixed values": Normalizer(kind="div", clip=True, lower_value=10.0, upper_value=240.0),
}


def spec_ops(normalizer: Normalizer, value_range: float, ndim: str):
    from bioimageio.spec.model.v0_5 import PreprocessingDescr
    from pydantic import TypeAdapter

    adapter = TypeAdapter(PreprocessingDescr)
    return [adapter.validate_python(op) for op in preprocessing_ops(normalizer, value_range, ndim)]


@pytest.mark.parametrize("name", list(NORMALIZERS))
@pytest.mark.parametrize("ndim", ["2D", "3D"])
def test_preprocessing_steps_reproduce_our_normalisation(name, ndim):
    normalizer = NORMALIZERS[name]
    gen = torch.Generator().manual_seed(0)
    shape = (3, 2, 6, 8, 8) if ndim == "3D" else (3, 2, 16, 16)
    raw = torch.randint(0, 256, shape, generator=gen).float()
    ours = normalizer(to_unit(raw, 255.0), 255.0)
    axes = ["batch", "channel", "z", "y", "x"] if ndim == "3D" else ["batch", "channel", "y", "x"]
    x = raw
    for op in spec_ops(normalizer, 255.0, ndim):
        x = apply_op(op, x, axes)
    torch.testing.assert_close(x, ours, atol=2e-5, rtol=1e-4)


def test_per_image_statistics_cover_channels_and_space_not_the_batch():
    ops = preprocessing_ops(Normalizer(), 255.0, "2D")
    assert ops[-1] == {"id": "zero_mean_unit_variance", "kwargs": {"axes": ["channel", "y", "x"]}}
    assert preprocessing_ops(Normalizer(kind="div"), 1.0, "2D") == [{"id": "ensure_dtype",
                                                                      "kwargs": {"dtype": "float32"}}]
