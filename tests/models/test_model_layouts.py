"""The ViT of issue 14 (stride-2 conv stem, no class token), model layouts stored in checkpoints (an old
checkpoint is rebuilt as it was trained; fine-tuning or resuming from one is refused with an explanation)
and the automatic warm-up."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.errors import CheckpointError
from biapy_cls.models import ModelSpec, build_model
from conftest import check_user_error, digits_config, interrupt_at_epoch, run_config


def model_cfg():
    return get_cfg_defaults().MODEL


def strides(model: nn.Module) -> list[tuple[int, ...]]:
    return [m.stride for m in model.embed if isinstance(m, (nn.Conv2d, nn.Conv3d))]


def test_default_architecture_is_vit():
    assert get_cfg_defaults().MODEL.ARCHITECTURE == "vit"


def test_vit_embeds_with_stride_2_convolutions_and_has_no_class_token():
    from biapy_cls.models.vit import ViT

    model = build_model(ModelSpec("vit", "2D", 1, 10, (32, 32)), model_cfg())
    assert isinstance(model, ViT) and model.cls_token is None
    # 8x8 tokens: three stride-2 3x3 convolutions, then a 1x1 projection to the width
    assert strides(model) == [(2, 2), (2, 2), (2, 2), (1, 1)]
    assert model.pos_embed.shape == (1, 16, 128)
    volume = build_model(ModelSpec("vit", "3D", 1, 10, (16, 32, 32)), model_cfg())
    # 4x8x8 tokens: z stops halving after two steps
    assert strides(volume) == [(2, 2, 2), (2, 2, 2), (1, 2, 2), (1, 1, 1)]
    assert volume(torch.randn(2, 1, 16, 32, 32)).shape == (2, 10)
    odd = model_cfg()
    odd.VIT_TOKEN_SIZE = 6  # one halving, then a 3x3 kernel = stride projection for the rest
    model = build_model(ModelSpec("vit", "2D", 1, 3, (30, 30)), odd)
    assert strides(model) == [(2, 2), (3, 3)] and model(torch.randn(2, 1, 30, 30)).shape == (2, 3)


def test_model_spec_records_the_layout_and_old_checkpoints_read_as_layout_1():
    spec = ModelSpec("ViT", "2D", 1, 10, (32, 32))
    assert spec.layout == 2 and ModelSpec.from_dict(spec.to_dict()) == spec
    old = {"architecture": "vit", "ndim": "2D", "in_channels": 1, "n_classes": 10, "spatial": [32, 32]}
    assert ModelSpec.from_dict(old).layout == 1  # written before layouts existed
    assert ModelSpec("simple_cnn", "2D", 1, 10, (32, 32)).layout == 1


@pytest.mark.parametrize("ndim,spatial", [("2D", (32, 32)), ("3D", (16, 32, 32))])
def test_a_layout_1_vit_checkpoint_is_rebuilt_as_it_was(ndim, spatial):
    from biapy_cls.models.vit import vit_sizes
    from biapy_cls.models.vit_legacy import build_layout1

    old_spec = ModelSpec.from_dict({"architecture": "vit", "ndim": ndim, "in_channels": 1, "n_classes": 10,
                                    "spatial": list(spatial)})
    torch.manual_seed(0)
    trained = build_layout1(old_spec, vit_sizes(old_spec, model_cfg())).eval()
    rebuilt = build_model(old_spec, model_cfg()).eval()
    rebuilt.load_state_dict(trained.state_dict())  # strict: every tensor has its old name and shape
    x = torch.randn(2, 1, *spatial)
    assert torch.equal(rebuilt(x), trained(x))


def test_a_checkpoint_from_a_newer_layout_is_refused():
    with pytest.raises(CheckpointError, match="newer than this biapy-cls"):
        build_model(ModelSpec("vit", "2D", 1, 10, (32, 32), layout=99), model_cfg())


def test_fine_tuning_from_an_older_layout_explains_itself():
    from biapy_cls.models.transfer import load_fine_tune

    old = {"architecture": "vit", "ndim": "2D", "in_channels": 1, "n_classes": 10, "spatial": [32, 32]}
    old_model = build_model(ModelSpec.from_dict(old), model_cfg())
    checkpoint = {"model_spec": old, "model_state": old_model.state_dict(), "class_names": []}
    spec = ModelSpec("vit", "2D", 1, 10, (32, 32))
    with pytest.raises(CheckpointError, match="layout 1 .*SKIP_UNMATCHED_LAYERS"):
        load_fine_tune(build_model(spec, model_cfg()), checkpoint, spec, "old.pth", skip_unmatched=False)


def schedule_lrs(name: str, model: nn.Module, steps: int, caplog) -> list[float]:
    from biapy_cls.config.settings import TrainSettings
    from biapy_cls.engine.optim import LRSchedule, auto_warmup_steps

    cfg = get_cfg_defaults()
    cfg.TRAIN.LR, cfg.TRAIN.EPOCHS = 1e-3, 3
    cfg.TRAIN.LR_SCHEDULER.NAME = name
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.TRAIN.LR)
    with caplog.at_level(logging.INFO, logger="biapy_cls"):
        train = TrainSettings.from_cfg(cfg)
        schedule = LRSchedule(train, optimizer, 4, warmup_steps=auto_warmup_steps(train, model, 4))
    lrs = []
    for _ in range(steps):
        lrs.append(schedule.lr)
        optimizer.step()
        schedule.step_batch()
    return lrs


def test_vit_warms_up_for_one_epoch_when_no_scheduler_is_set(caplog):
    vit = build_model(ModelSpec("vit", "2D", 1, 10, (32, 32)), model_cfg())
    lrs = schedule_lrs("", vit, 8, caplog)
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3])  # 4 steps per epoch
    assert "warms up linearly" in caplog.text and "TRAIN.LR_SCHEDULER.NAME" in caplog.text


def test_a_named_scheduler_wins_and_cnns_get_no_warm_up(caplog):
    vit = build_model(ModelSpec("vit", "2D", 1, 10, (32, 32)), model_cfg())
    assert schedule_lrs("onecycle", vit, 2, caplog)[0] < 1e-4  # OneCycle's own start, not the warm-up
    cnn = build_model(ModelSpec("simple_cnn", "2D", 1, 10, (32, 32)), model_cfg())
    assert schedule_lrs("", cnn, 3, caplog) == pytest.approx([1e-3] * 3)
    assert "warms up" not in caplog.text


@pytest.mark.slow
def test_resuming_a_run_of_an_older_layout_explains_itself(run_biapy, small_digits_dir, tmp_path, monkeypatch):
    resume_normally = interrupt_at_epoch(monkeypatch, 1)
    cfg = digits_config(small_digits_dir, MODEL={"ARCHITECTURE": "vit"}, TRAIN={"EPOCHS": 2})
    code, _, err = run_config(run_biapy, tmp_path, cfg)
    assert code == 130, err
    resume_normally()
    last = tmp_path / "out" / "job" / "checkpoints" / "job_1-checkpoint-last.pth"
    state = torch.load(last, weights_only=False)
    del state["model_spec"]["layout"]  # as a run started before model layouts existed wrote it
    torch.save(state, last)
    check_user_error(run_config(run_biapy, tmp_path, cfg, "--resume"), "layout 1", "cannot be resumed")


@pytest.mark.parametrize("ndim,spatial", [("2D", (32, 32)), ("3D", (8, 16, 16))])
def test_simple_cnn_biapy_layout_is_biapys_network_ending_in_logits(monkeypatch, ndim, spatial):
    """bench/model_ablation.py --arch simple_cnn --design layout=biapy builds BiaPy 3.7.1's simple_CNN: its
    convolutions (3x3, 3x3, 5x5 with 32 then 64 filters, with bias), a dense head on the flattened map, and
    no softmax; the default stays the compact layout."""
    from dataclasses import replace

    from biapy_cls.models import simple_cnn

    spec = ModelSpec("simple_cnn", ndim, 1, 10, spatial)
    assert isinstance(build_model(spec), simple_cnn.SimpleCNN)
    monkeypatch.setattr(simple_cnn, "DESIGN", replace(simple_cnn.DESIGN, layout="biapy"))
    net = build_model(spec)
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(32, 3), (32, 3), (32, 5), (64, 3), (64, 3), (64, 5)]
    head = net.heads[-1]
    assert isinstance(head, nn.Linear) and head.in_features == 64 * torch.tensor(spatial).div(4).prod().item()
    out = net.eval()(torch.randn(3, 1, *spatial))
    assert out.shape == (3, 10) and not torch.allclose(out.sum(1), torch.ones(3))  # logits, not probabilities


def test_efficientnet_is_built_with_the_current_design(monkeypatch):
    """bench/model_ablation.py --arch efficientnet_b0 --design bn_momentum=0.01 changes the model it trains
    (it was silently ignored while every EfficientNet was built with the layout-1 design)."""
    from dataclasses import replace

    from biapy_cls.models import efficientnet

    monkeypatch.setattr(efficientnet, "DESIGN", replace(efficientnet.DESIGN, bn_momentum=0.01, first_to_keep="stem"))
    net = build_model(ModelSpec("efficientnet_b0", "2D", 1, 10, (32, 32)))
    assert {m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)} == {0.01}
    assert net.conv_stem.stride == (1, 1)


def test_a_3d_efficientnet_keeps_a_4_pixel_map_with_a_y_x_only_stem():
    """Layout 3 (docs/models.md: 0.963 against layout 2's 0.939): the 3D stem runs at stride 1 in y-x
    only (z, often thinner, is still halved), then the last stage, down to a 4-pixel final map."""
    net = build_model(ModelSpec("efficientnet_b0", "3D", 1, 10, (16, 32, 32)))
    assert net._conv_stem.stride == (2, 1, 1)
    assert _strides(net)[1:] == [(2, 2, 2)] * 3  # y-x: 32 -> 4 pixels; z: 16 -> 1
    assert net.eval()(torch.randn(2, 1, 16, 32, 32)).shape == (2, 10)


def _strides(net: nn.Module) -> list[tuple[int, ...]]:
    return [m.stride for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)) and max(m.stride) > 1]


@pytest.mark.parametrize("ndim,spatial", [("2D", (32, 32)), ("3D", (16, 32, 32))])
def test_a_layout_1_efficientnet_checkpoint_is_rebuilt_as_it_was(ndim, spatial):
    """Issue 14 changed EfficientNet's strides and initialisation (layout 2) without changing any weight's
    shape: a layout-1 checkpoint would load into the new layers silently. It must get its old ones."""
    from biapy_cls.models import efficientnet

    old = build_model(ModelSpec("efficientnet_b0", ndim, 1, 10, spatial, layout=1), model_cfg())
    new = build_model(ModelSpec("efficientnet_b0", ndim, 1, 10, spatial), model_cfg())
    assert ModelSpec("efficientnet_b0", ndim, 1, 10, spatial).layout == efficientnet.LAYOUT == 3
    bn = nn.BatchNorm2d if ndim == "2D" else nn.BatchNorm3d

    def layers(net: nn.Module) -> tuple:
        norms = [m for m in net.modules() if isinstance(m, bn)]
        return _strides(net), {m.momentum for m in norms}, sum(bool((m.weight == 0).all()) for m in norms)

    # layout 1: stem and first three strided stages at stride 2, the last at 1 (total stride 16), the
    # libraries' batch-norm momentum (timm 0.1, MONAI 0.01), no zero-initialised block
    assert layers(old) == ([(2,) * len(spatial)] * 4, {0.1 if ndim == "2D" else 0.01}, 0)
    assert layers(new) != layers(old)
    new.load_state_dict(old.state_dict())  # the same names and shapes: only the layout tells them apart


def test_a_layout_2_3d_efficientnet_checkpoint_is_rebuilt_as_it_was():
    """Layout 3 changed the 3D strides only (same weights' shapes): a layout-2 3D checkpoint gets its
    strided stem and 2-pixel final map back, and 2D is the same in both layouts."""
    old = build_model(ModelSpec("efficientnet_b0", "3D", 1, 10, (16, 32, 32), layout=2), model_cfg())
    new = build_model(ModelSpec("efficientnet_b0", "3D", 1, 10, (16, 32, 32)), model_cfg())
    assert _strides(old) == [(2, 2, 2)] * 4
    assert {m.momentum for m in old.modules() if isinstance(m, nn.BatchNorm3d)} == {0.1}
    assert _strides(new) != _strides(old)
    new.load_state_dict(old.state_dict())
    two, three = (build_model(ModelSpec("efficientnet_b0", "2D", 1, 10, (32, 32), layout=n), model_cfg())
                  for n in (2, 3))
    assert _strides(two) == _strides(three) == [(2, 2)] * 3


def test_exported_packages_rebuild_the_layout_they_were_trained_with():
    """A BMZ package's architecture kwargs name the layout; packages written before they did are rebuilt
    with the layouts of that time (EfficientNet 1, ViT 2)."""
    from biapy_cls.export.architecture import BiapyClsClassifier, model_kwargs

    old_spec = ModelSpec("efficientnet_b0", "2D", 1, 10, (32, 32), layout=1)
    kwargs = model_kwargs(old_spec, model_cfg())
    assert kwargs["layout"] == 1
    rebuilt = BiapyClsClassifier(**kwargs).net
    assert _strides(rebuilt) == _strides(build_model(old_spec, model_cfg()))
    del kwargs["layout"]
    assert _strides(BiapyClsClassifier(**kwargs).net) == _strides(rebuilt)
    vit = model_kwargs(ModelSpec("vit", "2D", 1, 10, (32, 32)), model_cfg())
    del vit["layout"]
    assert BiapyClsClassifier(**vit).net.__class__.__module__ == "biapy_cls.models.vit"
