"""Test-time augmentation (TEST.AUGMENTATION): the combined prediction over flips and 90-degree rotations."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from biapy_cls.engine.inference import predict, predict_batch
from biapy_cls.engine.runtime import Runtime
from conftest import digits_config, write_yaml


def model_for(ndim: int) -> nn.Module:
    """A small network that is not invariant to flips or rotations."""
    torch.manual_seed(0)
    conv = nn.Conv2d if ndim == 2 else nn.Conv3d
    return nn.Sequential(conv(2, 4, 3), nn.Flatten(), nn.LazyLinear(5)).eval()


def dihedral_2d(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 symmetries of the square, written out."""
    t = x.transpose(-2, -1)
    return [x, x.flip(-1), x.flip(-2), x.flip(-2).flip(-1), t, t.flip(-1), t.flip(-2), t.flip(-2).flip(-1)]


def views_3d(x: torch.Tensor) -> list[torch.Tensor]:
    flips = [
        x,
        x.flip(2),
        x.flip(3),
        x.flip(4),
        x.flip(2).flip(3),
        x.flip(2).flip(4),
        x.flip(3).flip(4),
        x.flip(2).flip(3).flip(4),
    ]
    return flips + [f.transpose(-2, -1).flip(-1) for f in flips]


@pytest.mark.parametrize(("shape", "expected_views"), [((3, 2, 10, 10), dihedral_2d), ((2, 2, 4, 6, 6), views_3d)])
def test_tta_equals_the_mean_of_the_model_over_the_transformed_inputs(shape, expected_views):
    x = torch.rand(shape)
    model = model_for(len(shape) - 2)
    with torch.no_grad():
        model(x)
        expected = torch.stack([torch.softmax(model(v), 1) for v in expected_views(x)]).mean(0)
        assert torch.allclose(predict_batch(model, x, tta=True), expected, atol=1e-6)
        assert not torch.allclose(predict_batch(model, x, tta=False), expected, atol=1e-4)


def test_max_and_min_modes_and_one_forward_pass_per_view():
    x = torch.rand(3, 2, 10, 10)
    model = model_for(2)
    with torch.no_grad():
        model(x)
        per_view = torch.stack([torch.softmax(model(v), 1) for v in dihedral_2d(x)])
        top = per_view.amax(0)
        low = per_view.amin(0)
        assert torch.allclose(predict_batch(model, x, True, "max"), top / top.sum(1, keepdim=True), atol=1e-6)
        assert torch.allclose(predict_batch(model, x, True, "min"), low / low.sum(1, keepdim=True), atol=1e-6)
        # TTA costs views x plain inference: every pass holds the batch's 3 images, never all 24 views at once.
        sizes = []
        hook = model.register_forward_hook(lambda module, args, out: sizes.append(args[0].shape[0]))
        predict_batch(model, x, True)
        hook.remove()
        assert sizes == [3] * 8


def test_non_square_images_use_flips_only():
    x = torch.rand(2, 2, 8, 12)
    model = model_for(2)
    with torch.no_grad():
        model(x)
        flips = [x, x.flip(-1), x.flip(-2), x.flip(-2).flip(-1)]
        expected = torch.stack([torch.softmax(model(v), 1) for v in flips]).mean(0)
        assert torch.allclose(predict_batch(model, x, tta=True), expected, atol=1e-6)


def test_predict_over_a_loader_keeps_dataset_order():
    images = torch.rand(7, 2, 10, 10)

    class Data(torch.utils.data.Dataset):
        value_range = 1.0

        def __len__(self):
            return 7

        def __getitem__(self, i):
            return images[i], torch.tensor(0), i

    loader = torch.utils.data.DataLoader(Data(), batch_size=3, sampler=[6, 5, 4, 3, 2, 1, 0])
    model = model_for(2)
    with torch.no_grad():
        model(images)
        expected = predict_batch(model, images, tta=True)
    probs = predict(model, loader, lambda x, r, t: x, Runtime(torch.device("cpu")), tta=True)
    assert torch.allclose(torch.from_numpy(probs), expected, atol=1e-6)


@pytest.mark.slow
def test_cli_test_only_run_with_tta_writes_other_probabilities(tmp_path, small_digits_dir, run_biapy):
    cfg = digits_config(
        small_digits_dir, AUGMENTOR={"ENABLE": True, "HFLIP": True, "ELASTIC": True, "AUG_NUM_SAMPLES": 3}
    )
    cfg["TRAIN"]["EPOCHS"] = 1
    cfg["DATA"]["NORMALIZATION"] = {"TYPE": "zero_mean_unit_variance", "MEASURE_BY": "dataset"}
    config = write_yaml(tmp_path / "c.yaml", cfg)
    assert run_biapy("--config", config, "--result_dir", tmp_path, "--name", "plain")[0] == 0  # tests without TTA
    assert (tmp_path / "plain" / "results" / "plain_1" / "aug" / "plain_1_aug_samples.png").is_file()
    checkpoint = tmp_path / "plain" / "checkpoints" / "plain_1-checkpoint-best.pth"
    code, out, err = run_biapy("--config", config, "--result_dir", tmp_path, "--name", "tta", "TRAIN.ENABLE", "False",
                               "PATHS.CHECKPOINT_FILE", checkpoint, "TEST.AUGMENTATION", "True")
    assert code == 0, err
    assert "test-time augmentation" in out
    stats = torch.load(checkpoint, weights_only=True)["normalizer"]  # measured once on the training set
    assert 0 < stats["mean"] < 255 and stats["std"] > 1
    assert f"(mean {stats['mean']:g}, std {stats['std']:g})" in out  # and used by the test-only run
    plain = pd.read_csv(tmp_path / "plain" / "results" / "plain_1" / "predictions.csv")
    tta = pd.read_csv(tmp_path / "tta" / "results" / "tta_1" / "predictions.csv")
    assert plain["filename"].tolist() == tta["filename"].tolist()
    prob_columns = [c for c in plain.columns if c.startswith("prob")]
    assert prob_columns
    assert (plain[prob_columns] - tta[prob_columns]).abs().to_numpy().max() > 1e-4  # csv keeps 6 decimals
    assert tta[prob_columns].sum(axis=1).round(4).eq(1).all()
