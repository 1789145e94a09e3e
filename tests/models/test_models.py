"""Every architecture in 2D and 3D: builds, trains one step, gives logits of the right shape; and the
ViT sizing, EfficientNet stride policy, pretrained weights, fine-tuning and freezing helpers."""

from __future__ import annotations

import logging

import pytest
import torch

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.errors import CheckpointError, ConfigError
from biapy_cls.models import ModelSpec, available_architectures, build_model, normalize_architecture
from biapy_cls.models.transfer import freeze_matching, load_fine_tune, load_pretrained

EFFICIENTNETS = [f"efficientnet_b{i}" for i in range(8)]
# 3D EfficientNets are slow on a CPU (depthwise Conv3d has no fast CPU kernel; B7 3D takes tens of
# seconds per step on a shared 2-core machine): B0 with 1 and 3 channels and B7, the widest and deepest,
# with 3 stand for the family there; B1-B6 differ from them only in the width and depth coefficients.
CASES = ([(a, "2D", c) for a in ["simple_cnn", "vit", *EFFICIENTNETS] for c in (1, 3)]
         + [(a, "3D", c) for a in ["simple_cnn", "vit", "efficientnet_b0"] for c in (1, 3)]
         + [("efficientnet_b7", "3D", 3)])
SIZES = {"2D": (20, 28), "3D": (4, 8, 12)}  # small and non-square: the hard case for every model


def model_cfg(**keys):
    cfg = get_cfg_defaults().MODEL
    for key, value in keys.items():
        cfg[key] = value
    return cfg


def test_every_architecture_is_registered():
    assert set(available_architectures()) == {"simple_cnn", "vit", *EFFICIENTNETS}
    assert normalize_architecture("EfficientNetB3") == "efficientnet_b3"
    assert normalize_architecture("ViT") == "vit"


@pytest.mark.parametrize("arch,ndim,channels", CASES)
def test_build_forward_backward_step(arch, ndim, channels):
    torch.manual_seed(0)
    spatial = SIZES[ndim]
    spec = ModelSpec(arch, ndim, channels, 3, spatial)
    model = build_model(spec, model_cfg())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(2, channels, *spatial)
    logits = model(x)
    assert logits.shape == (2, 3)
    # logits, not probabilities: no softmax inside the models
    assert not torch.allclose(logits.softmax(1).sum(1), logits.sum(1))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, 3)


def test_efficientnet_heads_match_their_width():
    """BiaPy hard-codes B0's 1280-wide head, which breaks B2-B7; each variant has its own width."""
    widths = {}
    for arch in ("efficientnet_b0", "efficientnet_b2", "efficientnet_b7"):
        model = build_model(ModelSpec(arch, "2D", 1, 5, (32, 32)), model_cfg())
        widths[arch] = model.classifier.in_features
        assert model.classifier.out_features == 5
    assert widths == {"efficientnet_b0": 1280, "efficientnet_b2": 1408, "efficientnet_b7": 2560}


def test_vit_auto_sizes_suit_small_patches(caplog):
    from biapy_cls.models.vit import vit_sizes

    with caplog.at_level(logging.INFO, logger="biapy_cls"):
        small = vit_sizes(ModelSpec("vit", "2D", 1, 10, (32, 32)), model_cfg())
    assert small["tokens"] == (8, 8) and small["dim"] <= 256 and small["depth"] <= 6
    assert small["dim"] % small["heads"] == 0
    assert "token 8x8" in caplog.text
    vol = vit_sizes(ModelSpec("vit", "3D", 1, 10, (16, 32, 32)), model_cfg())
    assert vol["tokens"] == (4, 8, 8)
    big = vit_sizes(ModelSpec("vit", "2D", 3, 10, (224, 224)), model_cfg())
    assert big["tokens"] == (16, 16)


def test_vit_honours_user_keys_and_presets():
    from biapy_cls.models.vit import vit_sizes

    spec = ModelSpec("vit", "2D", 1, 10, (32, 48))
    set_keys = vit_sizes(spec, model_cfg(VIT_TOKEN_SIZE=8, VIT_EMBED_DIM=96, VIT_NUM_LAYERS=2, VIT_NUM_HEADS=3))
    assert (set_keys["tokens"], set_keys["dim"], set_keys["depth"], set_keys["heads"]) == ((8, 8), 96, 2, 3)
    base = vit_sizes(spec, model_cfg(VIT_MODEL="vit_base_patch16"))
    assert (base["tokens"], base["dim"], base["depth"], base["heads"]) == ((16, 16), 768, 12, 12)
    model = build_model(ModelSpec("vit", "2D", 1, 4, (30, 45)), model_cfg(VIT_TOKEN_SIZE=8, VIT_EMBED_DIM=32,
                                                                       VIT_NUM_LAYERS=1, VIT_NUM_HEADS=2))
    assert model(torch.randn(2, 1, 30, 45)).shape == (2, 4)  # not multiples of the token: padded


@pytest.mark.parametrize("spatial,dropped", [((224, 224), 0), ((32, 32), 1), ((28, 28), 1), ((16, 32, 32), 1),
                                             ((8, 8), 3)])
def test_efficientnet_keeps_small_inputs_spatial(spatial, dropped):
    from biapy_cls.models.efficientnet import strides_to_drop

    assert strides_to_drop(spatial) == dropped


def test_pretrained_weights_adapt_first_conv_and_skip_head(tmp_path):
    source = build_model(ModelSpec("efficientnet_b0", "2D", 3, 1000, (32, 32)), model_cfg())
    path = tmp_path / "timm_b0.pth"
    torch.save(source.state_dict(), path)
    target = build_model(ModelSpec("efficientnet_b0", "2D", 1, 4, (32, 32)), model_cfg())
    load_pretrained(target, str(path))
    assert target.conv_stem.weight.shape[1] == 1
    assert torch.allclose(target.conv_stem.weight, source.conv_stem.weight.sum(1, keepdim=True))
    assert torch.equal(target.blocks[1][0].conv_pw.weight, source.blocks[1][0].conv_pw.weight)
    assert target.classifier.out_features == 4

    # with PRETRAINED_WEIGHTS set, the ViT keeps timm's plain patch embedding so that timm files fit
    plain = model_cfg(VIT_TOKEN_SIZE=4, PRETRAINED_WEIGHTS=str(tmp_path / "vit.pth"))
    vit_src = build_model(ModelSpec("vit", "2D", 3, 1000, (32, 32)), plain)
    torch.save({"state_dict": vit_src.vit.state_dict()}, tmp_path / "vit.pth")
    vit = build_model(ModelSpec("vit", "2D", 2, 4, (48, 48)), plain)
    load_pretrained(vit, str(tmp_path / "vit.pth"))  # pos_embed resampled from 8x8 to 12x12 tokens
    assert torch.equal(vit.vit.blocks[0].attn.qkv.weight, vit_src.vit.blocks[0].attn.qkv.weight)
    assert vit.vit.patch_embed.proj.weight.shape[1] == 2
    with pytest.raises(ConfigError, match="does not exist"):
        load_pretrained(vit, str(tmp_path / "missing.pth"))


def test_fine_tune_checks_and_skips_unmatched(caplog):
    old_spec = ModelSpec("simple_cnn", "2D", 1, 10, (32, 32))
    old = build_model(old_spec, model_cfg())
    checkpoint = {"model_spec": old_spec.to_dict(), "model_state": old.state_dict(), "class_names": list("abcdefghij")}
    new_spec = ModelSpec("simple_cnn", "2D", 1, 3, (32, 32))
    with pytest.raises(CheckpointError, match="SKIP_UNMATCHED_LAYERS"):
        load_fine_tune(build_model(new_spec, model_cfg()), checkpoint, new_spec, "old.pth", skip_unmatched=False)
    vit_spec = ModelSpec("vit", "2D", 1, 10, (32, 32))
    with pytest.raises(CheckpointError, match="simple_cnn model"):
        load_fine_tune(build_model(vit_spec, model_cfg()), checkpoint, vit_spec, "old.pth", skip_unmatched=False)
    new = build_model(new_spec, model_cfg())
    with caplog.at_level(logging.INFO, logger="biapy_cls"):
        load_fine_tune(new, checkpoint, new_spec, "old.pth", skip_unmatched=True)
    assert torch.equal(new.features[0].weight, old.features[0].weight)
    assert "head.weight" in caplog.text


def test_freeze_matching_excludes_parameters():
    model = build_model(ModelSpec("simple_cnn", "2D", 1, 3, (16, 16)), model_cfg())
    n = freeze_matching(model, [r"^features\."])
    assert n > 0
    assert all(not p.requires_grad for name, p in model.named_parameters() if name.startswith("features."))
    assert model.head.weight.requires_grad
    with pytest.raises(ConfigError, match="matches no parameter"):
        freeze_matching(model, ["no_such_layer"])
