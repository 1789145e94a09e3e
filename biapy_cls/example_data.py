"""The example data: scikit-learn's bundled handwritten digits (1797 real 8x8 scans, no download) written
as a folder-per-class dataset of 32x32 PNGs, or of 3D tif volumes. Used by `make demo`
(scripts/make_example_data.py), the notebooks and the tests.

    from biapy_cls.example_data import write_digits
    write_digits("data/digits")                    # data/digits/train/0_zero/digit_0000.png ...
    write_digits("data/digits3d", volumes=True)    # (16, 32, 32) uint8 tif stacks
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASS_NAMES = ["0_zero", "1_one", "2_two", "3_three", "4_four", "5_five", "6_six", "7_seven", "8_eight", "9_nine"]


def digits_images(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) uint8 images and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images8 = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images8])
    return images, digits.target.astype(np.int64)


def extrude(image: np.ndarray, depth: int, rng: np.random.Generator) -> np.ndarray:
    """(depth, y, x) volume: `image` repeated along z with per-slice shift and intensity jitter."""
    volume = np.empty((depth, *image.shape), dtype=np.uint8)
    for z in range(depth):
        dy, dx = rng.integers(-2, 3, size=2)
        shifted = np.roll(image, (int(dy), int(dx)), axis=(0, 1))
        volume[z] = np.clip(shifted.astype(np.float32) * rng.uniform(0.7, 1.0), 0, 255).astype(np.uint8)
    return volume


def write_image(path: Path, image: np.ndarray, fmt: str) -> None:
    if fmt == "npy":
        np.save(path.with_suffix(".npy"), image)
    elif fmt == "tif":
        import tifffile

        tifffile.imwrite(path.with_suffix(".tif"), image)
    else:
        import imageio.v3 as iio

        iio.imwrite(path.with_suffix(f".{fmt}"), image)


def write_digits(out_dir: str | Path, size: int = 32, test_fraction: float = 0.2, seed: int = 0, fmt: str = "png",
                 copies: int = 1, limit: int = 0, volumes: bool = False, depth: int = 16) -> str:
    """Write OUT/train/<class>/ and OUT/test/<class>/ (stratified, seeded split); returns what was written.
    `limit`: only the first N images of each class; `copies`: the training set written that many times;
    `volumes`: each digit extruded along z into a (depth, size, size) stack with per-slice jitter."""
    from sklearn.model_selection import train_test_split

    out = Path(out_dir)
    if (out / "train").exists() or (out / "test").exists():
        return f"{out} already holds train/ or test/: nothing written. Remove it first to write it again."
    if volumes:
        fmt = "npy" if fmt == "npy" else "tif"
    images, labels = digits_images(size)
    index = np.arange(len(labels))
    if limit:
        index = np.concatenate([np.flatnonzero(labels == k)[:limit] for k in range(10)])
    train_idx, test_idx = train_test_split(index, test_size=test_fraction, stratify=labels[index],
                                           random_state=seed)
    rng = np.random.default_rng(seed)
    for split, chosen, n_copies in (("train", train_idx, copies), ("test", test_idx, 1)):
        for name in CLASS_NAMES:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        for copy in range(n_copies):
            suffix = f"_copy{copy}" if n_copies > 1 else ""
            for i in sorted(chosen):
                image = extrude(images[i], depth, rng) if volumes else images[i]
                write_image(out / split / CLASS_NAMES[labels[i]] / f"digit_{i:04d}{suffix}", image, fmt)
    shape = f"{depth}x{size}x{size}" if volumes else f"{size}x{size}"
    return (f"Wrote {len(train_idx) * copies} training and {len(test_idx)} test {'volumes' if volumes else 'images'} "
            f"({shape} {fmt}) to {out}/train and {out}/test.")
