"""Datasets of 2D images or 3D volumes, in memory or read lazily, and the loaders that batch them.

Size policy (the same at train, validation and test): every image is brought to the spatial size of
DATA.PATCH_SIZE. With DATA.REFLECT_TO_COMPLETE_SHAPE, axes shorter than the patch are first padded by
reflection (centred); any axis that still differs is resized with (anti-aliased) linear interpolation.
Images already of the patch size are used untouched.

In memory (IN_MEMORY True) the images are decoded once into one compact array in their own dtype
(uint8 stays uint8, uint16 stays uint16) and batches are cut from it with one indexing operation.
Lazily (IN_MEMORY False) each image is read when needed, in DataLoader worker processes.
DATA.PREPROCESS (a `preprocess` callable) runs on each image as read, before the size policy: once at
loading in memory, per read when lazy.
Both yield batches `(images, labels, indices)`; `images` keep their stored values and the dataset's
`value_range` says what maps to 1.0, so that normalization happens once, on batches, on the device.
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from biapy_cls.data.discover import SampleList
from biapy_cls.data.io import dtype_range, read_image

log = logging.getLogger("biapy_cls")


@dataclass(frozen=True)
class ImageSpec:
    """What every image is turned into: channels-first, `spatial` size, `channels` channels."""

    ndim: str  # "2D" or "3D"
    spatial: tuple[int, ...]  # (y, x) or (z, y, x)
    channels: int
    force_rgb: bool = False
    reflect_pad: bool = False

    @classmethod
    def from_patch_size(cls, ndim: str, patch_size: tuple[int, ...], force_rgb: bool, reflect_pad: bool) -> ImageSpec:
        return cls(ndim, tuple(int(v) for v in patch_size[:-1]), int(patch_size[-1]), force_rgb, reflect_pad)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.channels, *self.spatial)


def resize(arr: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """Resize a channels-first array to `spatial`, keeping its dtype (integers rounded and clipped)."""
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None]
    if len(spatial) == 2:
        x = F.interpolate(x, size=spatial, mode="bilinear", align_corners=False, antialias=True)
    else:
        x = F.interpolate(x, size=spatial, mode="trilinear", align_corners=False)
    out = x[0].numpy()
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(arr.dtype)


def reflect_pad(arr: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """Pad axes shorter than `spatial` by reflection, centred; longer axes are left alone."""
    pads = [(0, 0)]
    for have, want in zip(arr.shape[1:], spatial):
        extra = max(want - have, 0)
        pads.append((extra // 2, extra - extra // 2))
    return np.pad(arr, pads, mode="reflect" if min(arr.shape[1:]) > 1 else "edge")


def load_sample(path, spec: ImageSpec, preprocess=None, array: np.ndarray | None = None) -> np.ndarray:
    """Read one file (or take `array`, an image in memory), preprocess it and bring it to `spec`:
    channels-first, patch-sized, dtype kept."""
    arr = read_image(path, spec.ndim, spec.channels, spec.force_rgb, array)
    if preprocess is not None:
        arr = preprocess(arr)
    arr = np.moveaxis(arr, -1, 0)
    if spec.reflect_pad and any(h < w for h, w in zip(arr.shape[1:], spec.spatial)):
        arr = reflect_pad(arr, spec.spatial)
    if tuple(arr.shape[1:]) != spec.spatial:
        arr = resize(arr, spec.spatial)
    return arr


def storage_dtype(dtype: np.dtype) -> np.dtype:
    """Compact dtype for in-memory storage: uint8/uint16 kept, anything else float32."""
    dtype = np.dtype(dtype)
    if dtype in (np.dtype(np.uint8), np.dtype(np.uint16)):
        return dtype
    return np.dtype(np.float32)


def common_storage(a: np.dtype, b: np.dtype) -> np.dtype:
    """The storage dtype that holds images of both dtypes."""
    if a == b:
        return a
    if {a, b} <= {np.dtype(np.uint8), np.dtype(np.uint16)}:
        return np.dtype(np.uint16)
    return np.dtype(np.float32)


def to_storage(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert one image to the storage dtype keeping its meaning: uint8 -> uint16 scales by 257 (so
    that the full ranges agree); any other conversion to float32 divides by the source dtype's range."""
    if arr.dtype == dtype:
        return arr
    if dtype == np.dtype(np.uint16) and arr.dtype == np.dtype(np.uint8):
        return arr.astype(np.uint16) * 257
    return (arr.astype(np.float32) / dtype_range(arr.dtype)).astype(np.float32)


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images, labels, sample indices


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    # uint8 and uint16 stay as they are: a batch is copied to the device in its stored dtype (2-4x fewer
    # bytes than float32) and converted there (`to_unit`); torch.uint16 supports the copy and `.float()`.
    return torch.from_numpy(np.ascontiguousarray(images))


class InMemoryDataset(Dataset):
    """All images decoded once into one (N, C, *spatial) array of a compact dtype."""

    def __init__(self, samples: SampleList, spec: ImageSpec, desc: str = "Loading images", threads: int = 0,
                 preprocess=None, arrays: list[np.ndarray] | None = None):
        """`arrays`: the images themselves, in memory (the Python API's predict); `samples` then only name them."""
        self.samples, self.spec, self.preprocess = samples, spec, preprocess
        self.labels = torch.from_numpy(samples.labels)
        self.images = self._decode_all(desc, threads or min(8, os.cpu_count() or 1), arrays)
        self.value_range = dtype_range(self.images.dtype)

    def _decode_all(self, desc: str, threads: int, arrays: list[np.ndarray] | None = None) -> np.ndarray:
        images: np.ndarray | None = None
        sources = arrays if arrays is not None else [None] * len(self.samples)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            decoded = pool.map(lambda pa: load_sample(pa[0], self.spec, self.preprocess, pa[1]),
                               zip(self.samples.paths, sources))
            bar = tqdm(decoded, total=len(self.samples), desc=desc, unit="img", leave=False, disable=None)
            for i, arr in enumerate(bar):
                if images is None:
                    images = np.empty((len(self.samples), *self.spec.shape), dtype=storage_dtype(arr.dtype))
                wanted = common_storage(images.dtype, storage_dtype(arr.dtype))
                if wanted != images.dtype:  # a wider image turned up: widen what is stored so far
                    widened = np.empty(images.shape, dtype=wanted)
                    widened[:i] = to_storage(images[:i], wanted)
                    images = widened
                images[i] = to_storage(arr, images.dtype)
        assert images is not None
        return images

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return _as_tensor(self.images[index]), self.labels[index], index

    def __getitems__(self, indices: list[int]) -> Batch:
        # One fancy-indexing operation per batch instead of one Python call per image.
        idx = np.asarray(indices)
        return _as_tensor(self.images[idx]), self.labels[idx], torch.from_numpy(idx)

    @property
    def nbytes(self) -> int:
        return self.images.nbytes


class LazyDataset(Dataset):
    """Images read from disk when asked for, on the scale of the first image's dtype: uint8/uint16 images of
    that dtype as they are (converted to float on the device, as in memory), any other as float32."""

    def __init__(self, samples: SampleList, spec: ImageSpec, preprocess=None):
        self.samples, self.spec, self.preprocess = samples, spec, preprocess
        self.labels = torch.from_numpy(samples.labels)
        # The first image fixes the scale, as in memory: uint8 -> 255, uint16 -> 65535, floats -> 1.
        first = load_sample(samples.paths[0], spec, preprocess)
        self.value_range = dtype_range(storage_dtype(first.dtype))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        arr = load_sample(self.samples.paths[index], self.spec, self.preprocess)
        own = dtype_range(arr.dtype)
        if own == self.value_range and arr.dtype in (np.uint8, np.uint16):
            # Pillow's arrays are read-only: torch warns on wrapping one (once per run, in the user's output),
            # so those are copied (a copy of the image, ~10 us for 224x224 RGB); others are wrapped as they are.
            return torch.from_numpy(np.require(arr, requirements=["C", "W"])), self.labels[index], index
        values = arr.astype(np.float32)
        if own != self.value_range:
            values *= self.value_range / own
        return torch.from_numpy(values), self.labels[index], index


def build_dataset(samples: SampleList, spec: ImageSpec, in_memory: bool, desc: str, threads: int = 0,
                  preprocess=None) -> Dataset:
    if in_memory:
        return InMemoryDataset(samples, spec, desc, threads, preprocess)
    return LazyDataset(samples, spec, preprocess)


class Replicated(Dataset):
    """DATA.TRAIN.REPLICATE: `dataset` seen `times` times per epoch (each copy in its own shuffled place)."""

    def __init__(self, dataset: Dataset, times: int):
        self.dataset, self.times = dataset, times
        self.value_range = dataset.value_range

    def __len__(self) -> int:
        return len(self.dataset) * self.times

    def __getitem__(self, index: int):
        return self.dataset[index % len(self.dataset)]

    def __getitems__(self, indices: list[int]):
        n = len(self.dataset)
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__([i % n for i in indices])
        return [self.dataset[i % n] for i in indices]


def replicate(dataset: Dataset, times: int) -> Dataset:
    return Replicated(dataset, times) if times > 1 else dataset


def collate(items) -> Batch:
    if isinstance(items, tuple):  # already a batch, from InMemoryDataset.__getitems__
        return items
    images, labels, indices = zip(*items)
    if len({x.dtype for x in images}) > 1:  # a lazy batch mixing stored dtypes: every image is on one scale
        images = [x.float() for x in images]
    return torch.stack(images), torch.stack(labels), torch.as_tensor(indices)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    workers: int,
    pin_memory: bool,
    rank: int = 0,
    world_size: int = 1,
    train: bool = False,
) -> DataLoader:
    """A DataLoader whose order depends only on (seed, epoch): call `loader.sampler.set_epoch(e)`.

    The same DistributedSampler serves one process and many: with several ranks each sees its shard.
    Training drops a last batch of a single image, which BatchNorm cannot normalise.
    """
    sampler = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
    )
    per_rank = math.ceil(len(dataset) / world_size)
    drop_last = train and per_rank % batch_size == 1 and per_rank > 1
    in_memory = isinstance(getattr(dataset, "dataset", dataset), InMemoryDataset)
    workers = 0 if in_memory else workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=workers > 0,
    )
