#!/usr/bin/env python3
"""Write scikit-learn's bundled handwritten digits as a folder-per-class image dataset.

    python scripts/make_example_data.py data/digits

1797 real 8x8 scans of handwritten digits (shipped inside scikit-learn, no download), upscaled to
32x32 8-bit PNG, split in a stratified, seeded way into

    data/digits/train/0_zero/digit_0000.png ...   data/digits/test/9_nine/digit_1796.png

Class folders are named "<digit>_<word>" so that their natural order is the digits' order.

    python scripts/make_example_data.py data/digits3d --3d --depth 16

writes volumetric digits instead: each digit extruded along z into a (depth, size, size) uint8 tif
stack, every slice shifted by up to 2 pixels and scaled in intensity (0.7-1.0) at random (seeded), so
that the slices differ as in a real stack. Same train/test class tree.
"""

from __future__ import annotations

import argparse
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder to create; train/ and test/ are written inside")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="fraction of each class for test (default 0.2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--format", choices=["png", "tif", "npy", "bmp", "jpg"], default="png", help="file format")
    parser.add_argument(
        "--copies", type=int, default=1, help="write the training set this many times (for scaling tests)"
    )
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images of each class (0 = all)")
    parser.add_argument("--3d", dest="volumes", action="store_true",
                        help="write 3D volumes (tif stacks, z,y,x): each digit extruded along z with per-slice jitter")
    parser.add_argument("--depth", type=int, default=16, help="slices of each 3D volume (default 16)")
    args = parser.parse_args(argv)
    if args.volumes and args.format not in ("tif", "npy", "png"):
        parser.error("--3d writes tif (default) or npy volumes")
    fmt = ("npy" if args.format == "npy" else "tif") if args.volumes else args.format

    from sklearn.model_selection import train_test_split

    out = Path(args.out_dir)
    if (out / "train").exists() or (out / "test").exists():
        print(f"{out} already holds train/ or test/: nothing written. Remove it first to write it again.")
        return 0
    images, labels = digits_images(args.size)
    index = np.arange(len(labels))
    if args.limit:
        index = np.concatenate([np.flatnonzero(labels == k)[: args.limit] for k in range(10)])
    train_idx, test_idx = train_test_split(index, test_size=args.test_fraction, stratify=labels[index],
                                           random_state=args.seed)
    rng = np.random.default_rng(args.seed)
    for split, chosen, copies in (("train", train_idx, args.copies), ("test", test_idx, 1)):
        for name in CLASS_NAMES:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        for copy in range(copies):
            suffix = f"_copy{copy}" if copies > 1 else ""
            for i in sorted(chosen):
                image = extrude(images[i], args.depth, rng) if args.volumes else images[i]
                write_image(out / split / CLASS_NAMES[labels[i]] / f"digit_{i:04d}{suffix}", image, fmt)
    shape = f"{args.depth}x{args.size}x{args.size}" if args.volumes else f"{args.size}x{args.size}"
    print(
        f"Wrote {len(train_idx) * args.copies} training and {len(test_idx)} test "
        f"{'volumes' if args.volumes else 'images'} "
        f"({shape} {fmt}) to {out}/train and {out}/test."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
