"""MODEL.SOURCE torchvision and timm without internet: weights files in the libraries' own formats and
names, written into a temporary TORCH_HOME / HF_HOME, must be the tensors the model starts from; an empty
cache stops the run before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biapy_cls.config.defaults import get_cfg_defaults
from biapy_cls.errors import ConfigError, WeightsUnavailable
from biapy_cls.models import ModelSpec, build_model, check_input, pretrained_weights
from conftest import digits_config, write_yaml


def model_cfg(**keys):
    cfg = get_cfg_defaults().MODEL
    cfg.defrost()
    for key, value in keys.items():
        cfg[key] = value
    return cfg


def no_network(monkeypatch):
    """Downloads fail as they do on an offline machine."""
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    no_network(monkeypatch)
    return tmp_path / "torch"


def cache_resnet18(torch_home: Path) -> dict:
    """torchvision's resnet18 state dict saved under the file name its weights enum gives."""
    import torchvision

    weights = torchvision.models.get_model_weights("resnet18").DEFAULT
    torch.manual_seed(123)
    state = torchvision.models.resnet18().state_dict()
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(state, folder / Path(weights.url).name)
    return state


def test_torchvision_loads_the_cached_imagenet_file(torch_home):
    state = cache_resnet18(torch_home)
    cfg = model_cfg(SOURCE="torchvision", TORCHVISION_MODEL_NAME="resnet18")
    model = build_model(ModelSpec("resnet18", "2D", 3, 10, (32, 32), "torchvision"), cfg, pretrained=True)
    assert torch.equal(model.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert model.fc.weight.shape == (10, 512)  # head replaced for the class count
    # one channel: the RGB kernels summed, so a grey image gives the response of its RGB copy
    gray = build_model(ModelSpec("resnet18", "2D", 1, 10, (32, 32), "torchvision"), cfg, pretrained=True)
    assert torch.allclose(gray.conv1.weight, state["conv1.weight"].sum(1, keepdim=True), atol=1e-6)
    assert torch.equal(gray.layer4[0].conv1.weight, state["layer4.0.conv1.weight"])
    # five channels: mean kernel repeated, rescaled so that the sum over channels is the RGB sum
    five = build_model(ModelSpec("resnet18", "2D", 5, 10, (32, 32), "torchvision"), cfg, pretrained=True)
    assert torch.allclose(five.conv1.weight.sum(1), state["conv1.weight"].sum(1), atol=1e-5)


def test_torchvision_weights_bring_their_normalisation(torch_home):
    cfg = model_cfg(SOURCE="torchvision", TORCHVISION_MODEL_NAME="resnet18")
    rgb = pretrained_weights(ModelSpec("resnet18", "2D", 3, 10, (32, 32), "torchvision"), cfg)
    assert rgb.mean == (0.485, 0.456, 0.406) and rgb.std == (0.229, 0.224, 0.225)
    assert pretrained_weights(ModelSpec("resnet18", "2D", 1, 10, (32, 32), "torchvision"), cfg).mean == (
        pytest.approx((0.485 + 0.456 + 0.406) / 3),)
    assert pretrained_weights(ModelSpec("resnet18", "2D", 1, 10, (32, 32), "torchvision"),
                              model_cfg(SOURCE="torchvision", TORCHVISION_PRETRAINED=False)) is None


def test_torchvision_empty_cache_names_file_url_and_folder(torch_home):
    cfg = model_cfg(SOURCE="torchvision", TORCHVISION_MODEL_NAME="resnet18")
    with pytest.raises(WeightsUnavailable) as err:
        pretrained_weights(ModelSpec("resnet18", "2D", 1, 10, (32, 32), "torchvision"), cfg, fetch=True)
    text = str(err.value)
    assert str(torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in text
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in text
    assert "MODEL.TORCHVISION_PRETRAINED False" in text and "network is unreachable" in text


def write_hf_cache(hf_home: Path, repo_id: str, state: dict) -> None:
    """The Hugging Face hub cache layout: models--org--name/refs/main names snapshots/<revision>/."""
    from safetensors.torch import save_file

    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / revision / "model.safetensors"))


def test_timm_loads_from_the_hugging_face_cache(tmp_path, monkeypatch):
    import timm

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    no_network(monkeypatch)
    torch.manual_seed(7)
    state = timm.create_model("resnet18").state_dict()
    write_hf_cache(tmp_path / "hf", "timm/resnet18.a1_in1k", state)
    cfg = model_cfg(SOURCE="timm", TIMM_MODEL_NAME="resnet18")
    model = build_model(ModelSpec("resnet18", "2D", 1, 4, (32, 32), "timm"), cfg, pretrained=True)
    assert torch.equal(model.layer2[0].conv1.weight, state["layer2.0.conv1.weight"])
    assert torch.allclose(model.conv1.weight, state["conv1.weight"].sum(1, keepdim=True), atol=1e-6)
    assert model.fc.weight.shape == (4, 512)
    weights = pretrained_weights(ModelSpec("resnet18", "2D", 3, 4, (32, 32), "timm"), cfg, fetch=True)
    assert weights.file.name == "model.safetensors" and weights.mean == (0.485, 0.456, 0.406)


def test_timm_empty_cache_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    no_network(monkeypatch)
    cfg = model_cfg(SOURCE="timm", TIMM_MODEL_NAME="resnet18")
    with pytest.raises(WeightsUnavailable, match="models--timm--resnet18.a1_in1k.*MODEL.TIMM_PRETRAINED False"):
        pretrained_weights(ModelSpec("resnet18", "2D", 3, 4, (32, 32), "timm"), cfg, fetch=True)


def test_sizes_a_model_cannot_take_are_refused():
    cfg = model_cfg(SOURCE="torchvision", TORCHVISION_MODEL_NAME="maxvit_t")
    with pytest.raises(ConfigError, match="maxvit_t cannot classify 2D images of size"):
        check_input(ModelSpec("maxvit_t", "2D", 1, 10, (32, 32), "torchvision"), cfg)
    vit = model_cfg(SOURCE="torchvision", TORCHVISION_MODEL_NAME="vit_b_16")
    with pytest.raises(ConfigError, match="square DATA.PATCH_SIZE whose side is a multiple"):
        build_model(ModelSpec("vit_b_16", "2D", 1, 10, (40, 40), "torchvision"), vit)


@pytest.mark.parametrize("source, key, name, ndim, message", [
    ("torchvision", "TORCHVISION_MODEL_NAME", "resnet18", "3D", "is a 2D model, but PROBLEM.NDIM is 3D"),
    ("torchvision", "TORCHVISION_MODEL_NAME", "r3d_18", "2D", r"is a video \(3D\) model"),
    ("torchvision", "TORCHVISION_MODEL_NAME", "resnet19", "2D", "is not a torchvision 2D classification model"),
    ("torchvision", "TORCHVISION_MODEL_NAME", "quantized_resnet18", "2D", "cannot be trained"),
    ("torchvision", "TORCHVISION_MODEL_NAME", "", "2D", "MODEL.TORCHVISION_MODEL_NAME is empty"),
    ("timm", "TIMM_MODEL_NAME", "resnet1888", "2D", "is not a timm model. Similar names: resnet18"),
    ("timm", "TIMM_MODEL_NAME", "resnet18", "3D", "builds 2D models"),
])
def test_config_names_are_checked(tmp_path, source, key, name, ndim, message):
    from biapy_cls.configure import load_config

    cfg = digits_config(tmp_path, PROBLEM={"TYPE": "CLASSIFICATION", "NDIM": ndim})
    cfg["MODEL"] = {"SOURCE": source, key: name}
    with pytest.raises(ConfigError, match=message):
        load_config(write_yaml(tmp_path / "c.yaml", cfg))


def test_offline_run_stops_before_writing(tmp_path, torch_home, small_digits_dir, run_biapy):
    cfg = digits_config(small_digits_dir, MODEL={"SOURCE": "torchvision", "TORCHVISION_MODEL_NAME": "resnet18"})
    code, out, err = run_biapy("--config", write_yaml(tmp_path / "c.yaml", cfg), "--result_dir", tmp_path / "out",
                               "--name", "offline")
    assert code == 2
    assert "resnet18-f37072fd.pth" in err and "https://download.pytorch.org/models/" in err
    assert "Traceback" not in err + out
    assert not (tmp_path / "out" / "offline").exists()


@pytest.mark.slow
def test_checkpoint_needs_no_pretrained_weights_to_test(tmp_path, torch_home, small_digits_dir, run_biapy):
    """Train from the cached weights, empty the cache, then a test-only run rebuilds the model from the
    checkpoint alone and normalises with the weights' own mean and std."""
    import shutil

    cache_resnet18(torch_home)
    cfg = digits_config(small_digits_dir, MODEL={"SOURCE": "torchvision", "TORCHVISION_MODEL_NAME": "resnet18"},
                        TRAIN={"ENABLE": True, "EPOCHS": 1, "BATCH_SIZE": 32, "LR": 1e-3, "PATIENCE": -1})
    code, out, err = run_biapy("--config", write_yaml(tmp_path / "a.yaml", cfg), "--result_dir", tmp_path,
                               "--name", "tv")
    assert code == 0, err
    assert "first convolution 'conv1' adapted from 3 to 1 channel(s) (RGB kernels summed)" in out
    assert "far smaller than the 224 images" in out + err
    shutil.rmtree(torch_home)
    checkpoint = tmp_path / "tv" / "checkpoints" / "tv_1-checkpoint-best.pth"
    state = torch.load(checkpoint, weights_only=True)
    assert state["model_spec"]["source"] == "torchvision"
    assert list(state["normalizer"]["channel_mean"]) == [pytest.approx(0.449)]
    test_only = digits_config(small_digits_dir, TRAIN={"ENABLE": False})
    test_only["PATHS"] = {"CHECKPOINT_FILE": str(checkpoint)}
    code, out, err = run_biapy("--config", write_yaml(tmp_path / "b.yaml", test_only), "--result_dir", tmp_path,
                               "--name", "tv_test")
    assert code == 0, err
    assert "torchvision resnet18" in out and "the pretrained weights' own" in out


def test_weights_normalisation_is_per_channel_and_survives_the_checkpoint_format():
    from biapy_cls.data.transforms import Normalizer

    norm = Normalizer.for_weights((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    x = torch.rand(2, 3, 4, 4)
    expected = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    assert torch.allclose(norm(x, 255.0), expected)
    again = Normalizer.from_state_dict(norm.state_dict())
    assert torch.allclose(again(x, 255.0), expected) and not again.needs_fit


def test_fine_tuning_checks_the_source_too():
    from biapy_cls.errors import CheckpointError
    from biapy_cls.models.transfer import load_fine_tune

    theirs = {"model_spec": ModelSpec("efficientnet_b0", "2D", 1, 10, (32, 32)).to_dict(), "model_state": {}}
    with pytest.raises(CheckpointError, match="holds a efficientnet_b0 model, but this run builds a torchvision "
                                              "efficientnet_b0 model"):
        mine = ModelSpec("efficientnet_b0", "2D", 1, 10, (32, 32), "torchvision")
        load_fine_tune(torch.nn.Linear(1, 1), theirs, mine, "old.pth", skip_unmatched=False)


def test_the_config_accepts_exactly_the_registered_sources():
    from biapy_cls.config.settings import MODEL_SOURCES
    from biapy_cls.models import available_sources

    assert set(MODEL_SOURCES) == set(available_sources()) | {"bmz"}  # bmz: export/bmz_source.py
