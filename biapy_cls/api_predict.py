"""Prediction on images held in memory (`BiaPy.predict`): the same steps as test() on files, no file written.

The arrays go through the very functions that files go through (axis rules, channels, resizing or
padding to the patch size, storage dtype and value range, normalisation, test-time augmentation), so
that predicting an array gives what predictions.csv gives for the same image saved as a file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from yacs.config import CfgNode as CN

from biapy_cls.data.dataset import ImageSpec, InMemoryDataset, build_loader
from biapy_cls.data.discover import SampleList
from biapy_cls.data.transforms import Normalizer, make_prepare
from biapy_cls.engine.inference import predict
from biapy_cls.engine.runtime import Runtime, amp_dtype
from biapy_cls.errors import DataError


def _one_image(arr: np.ndarray, spatial: int, channels: int, force_rgb: bool) -> bool:
    """Whether an array with one axis more than the spatial ones is one image with channels last
    (rather than a batch of channel-less images): its last axis is a channel count the model takes."""
    last = arr.shape[-1]
    return last == channels or (last == 1 and force_rgb) or (channels, last) in ((3, 4), (1, 2))


def split_images(images, ndim: str, channels: int, force_rgb: bool = False,
                 size: tuple[int, ...] | None = None) -> tuple[list[np.ndarray], bool]:
    """(list of single images, whether one image was given). Rules, with S the number of spatial axes
    (2 in 2D, 3 in 3D): a list or tuple holds one image per item; an array with S axes is one image; with
    S+2 axes a batch (n, *spatial, c); with S+1 axes one image with channels last when its last axis fits
    the model's channels, otherwise a batch of single-channel images (n, *spatial) - unless it is one image
    of the model's `size` whose channels do not fit: refused, since as a batch it would be `size[0]` slices
    of nonsense, each given a class."""
    spatial = 3 if ndim == "3D" else 2
    if isinstance(images, (list, tuple)):
        return [np.asarray(_to_numpy(im)) for im in images], False
    arr = np.asarray(_to_numpy(images))
    if arr.ndim == spatial or (arr.ndim == spatial + 1 and _one_image(arr, spatial, channels, force_rgb)):
        return [arr], True
    if (arr.ndim == spatial + 1 and size is not None and tuple(arr.shape[:spatial]) == tuple(size)
            and arr.shape[-1] <= 4 and tuple(arr.shape[1:]) != tuple(size)):
        raise DataError(
            f"predict() got an array of shape {arr.shape}: one {'x'.join(map(str, size))} image with "
            f"{arr.shape[-1]} channels, but the model takes {channels} channel(s), so it would be read as a batch of "
            f"{arr.shape[0]} images of {'x'.join(map(str, arr.shape[1:]))} pixels. Convert the image to {channels} "
            "channel(s) (e.g. grey: image.mean(axis=-1)), or pass a batch with a channel axis, (n, y, x, c)."
        )
    if arr.ndim in (spatial + 1, spatial + 2):
        return list(arr), False
    want = "(z, y, x[, c])" if spatial == 3 else "(y, x[, c])"
    raise DataError(f"predict() got an array of shape {arr.shape}; a {ndim} model takes one image {want}, a batch "
                    f"with a leading axis, or a list of images.")


def _to_numpy(image):
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    return image


def predict_arrays(images, model: torch.nn.Module, normalizer: Normalizer, spec: ImageSpec, cfg: CN,
                   runtime: Runtime, batch_size: int = 64, preprocess=None) -> np.ndarray:
    """(n_images, n_classes) probabilities of in-memory images, in the order given. `preprocess`: the
    test images' DATA.PREPROCESS steps (DataPlan.preprocess_for("TEST"))."""
    arrays, _ = split_images(images, spec.ndim, spec.channels, spec.force_rgb, spec.spatial)
    if not arrays:
        return np.zeros((0, model_classes(model)), dtype=np.float32)
    names = [Path(f"image {i} given to predict()") for i in range(len(arrays))]
    samples = SampleList(names, np.full(len(arrays), -1, dtype=np.int64), Path("."))
    dataset = InMemoryDataset(samples, spec, "Preparing images", preprocess=preprocess, arrays=arrays)
    single = Runtime(runtime.device)  # this process alone, even under torch.distributed.run
    loader = build_loader(dataset, batch_size, False, 0, 0, False)
    return predict(model, loader, make_prepare(normalizer, None, single.cuda), single, tta=cfg.TEST.AUGMENTATION,
                   tta_mode=cfg.TEST.AUGMENTATION_MODE, amp_dtype=amp_dtype(cfg.TRAIN.AMP, single))


def model_classes(model: torch.nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return last[-1].out_features if last else 0
