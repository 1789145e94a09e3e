"""Which BioImage Model Zoo packages MODEL.SOURCE bmz accepts: classifiers (one vector per image) only, with
the reason for a refusal; and how a probability output is recognised."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from biapy_cls.errors import ConfigError
from biapy_cls.export.bmz_import import _describe


def axis(kind: str, name: str | None = None, size=None, channels=None):
    return NS(type=kind, id=name or kind, size=size, channel_names=channels)


def package(in_axes, out_axes, post=(), data_range=None, config=None):
    inp = NS(axes=in_axes, preprocessing=[])
    out = NS(axes=out_axes, postprocessing=[NS(id=p) for p in post], data=NS(range=data_range))
    return NS(inputs=[inp], outputs=[out], config=NS(model_dump=lambda: config or {}), name="pkg")


IMAGE_2D = [axis("batch"), axis("channel", channels=["c0", "c1"]), axis("space", "y", 64), axis("space", "x", 48)]
CLASSES = [axis("batch"), axis("channel", channels=["cell", "debris", "mitosis"])]


def test_a_2d_classifier_gives_classes_size_and_channels():
    pkg = _describe("src", package(IMAGE_2D, CLASSES))
    assert pkg.class_names == ["cell", "debris", "mitosis"]
    assert (pkg.spec.ndim, pkg.spec.spatial, pkg.spec.channels) == ("2D", (64, 48), 2)
    assert pkg.axes == ["batch", "channel", "y", "x"] and not pkg.probabilities


def test_axes_in_another_order_and_parameterized_sizes_are_accepted():
    in_axes = [axis("batch"), axis("space", "x", NS(min=32, step=16)), axis("space", "z", 8),
               axis("space", "y", NS(min=16, step=8)), axis("channel", channels=["c"])]
    pkg = _describe("src", package(in_axes, CLASSES))
    assert (pkg.spec.ndim, pkg.spec.spatial) == ("3D", (8, 16, 32))
    assert pkg.axes == ["batch", "x", "z", "y", "channel"]


@pytest.mark.parametrize("post, data_range, config", [(["softmax"], None, None), ([], (0.0, 1.0), None),
                                                      ([], None, {"biapy_cls": {"output": "probabilities"}})])
def test_probability_outputs_are_recognised(post, data_range, config):
    assert _describe("src", package(IMAGE_2D, CLASSES, post, data_range, config)).probabilities


def test_a_segmentation_model_is_refused_with_the_reason():
    mask = [axis("batch"), axis("channel", channels=["fg"]), axis("space", "y", 64), axis("space", "x", 48)]
    with pytest.raises(ConfigError, match="does not output one vector per image.*classification models only"):
        _describe("unet.zip", package(IMAGE_2D, mask))


def test_two_inputs_or_a_missing_channel_axis_are_refused():
    two = package(IMAGE_2D, CLASSES)
    two.inputs.append(two.inputs[0])
    with pytest.raises(ConfigError, match="2 inputs and 1 outputs"):
        _describe("x", two)
    with pytest.raises(ConfigError, match="its input axes are"):
        _describe("x", package([axis("batch"), axis("space", "y", 8), axis("space", "x", 8)], CLASSES))
