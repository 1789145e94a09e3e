#!/usr/bin/env python3
"""Write a MedMNIST .npz file as train/val/test folders with one sub-folder per class.

    python scripts/medmnist_npz_to_folders.py pathmnist.npz data/pathmnist \\
        --labels "adipose,background,debris,lymphocytes,mucus,smooth muscle,normal colon mucosa,\\
cancer-associated stroma,colorectal adenocarcinoma epithelium"
    python scripts/medmnist_npz_to_folders.py organmnist3d.npz data/organ3d --labels-json organ_labels.json

The .npz holds the arrays train_images, train_labels, val_images, val_labels, test_images and
test_labels (any split may be missing). Images are (N, H, W) or (N, H, W, C) for 2D datasets and
(N, D, H, W) or (N, D, H, W, C) for 3D ones; labels are (N,) or (N, 1) class indices. Multi-label
datasets (ChestMNIST) do not fit a folder-per-class tree and are refused.

Output: OUT/train/<k>_<class name>/train_000000.png, OUT/val/..., OUT/test/...  The index prefix keeps
the folders in the dataset's class order (biapy-cls numbers classes by natural folder order). Without
class names the folders are named 0, 1, 2, ... Class names come from --labels (comma-separated, in
index order) or --labels-json (a JSON object {"0": "name", ...}, as in MedMNIST's INFO['label']).
2D images are written as PNG (default) or TIF; 3D volumes as TIF (z, y, x[, c]).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

EXIT_USER_ERROR = 2
SPLITS = ("train", "val", "test")


class ScriptError(Exception):
    """A problem with the input file or the options, told to the user."""


def safe_folder_name(name: str) -> str:
    return re.sub(r'[\\/:*?"<>|\s]+', "_", name.strip()).strip("._") or "_"


def class_names(labels: str | None, labels_json: Path | None, n_classes: int) -> list[str]:
    """Folder names, in class-index order."""
    if labels and labels_json:
        raise ScriptError("Give the class names with --labels or with --labels-json, not both.")
    if labels_json:
        try:
            table = json.loads(Path(labels_json).read_text(encoding="utf-8"))
            names = [table[str(k)] for k in range(len(table))]
        except (OSError, ValueError) as e:
            raise ScriptError(f"Cannot read the class names from '{labels_json}': {e}.") from None
        except KeyError as e:
            raise ScriptError(
                f"'{labels_json}' must map every index 0..{len(table) - 1} to a name; {e} is missing."
            ) from None
    elif labels:
        names = [name.strip() for name in labels.split(",")]
    else:
        return [str(k) for k in range(n_classes)]
    if len(names) < n_classes:
        raise ScriptError(f"{len(names)} class names were given, but the labels go up to {n_classes - 1}: "
                          f"give {n_classes} names, in class-index order.")
    return [f"{k}_{safe_folder_name(name)}" for k, name in enumerate(names)]


def image_ndim(images: np.ndarray, ndim: str) -> str:
    """'2D' or '3D' for an (N, ...) image array."""
    if ndim != "auto":
        want = {"2D": (3, 4), "3D": (4, 5)}[ndim]
        if images.ndim not in want:
            raise ScriptError(f"--ndim {ndim} needs an image array of {' or '.join(map(str, want))} dimensions, "
                              f"but it has shape {images.shape}.")
        return ndim
    if images.ndim == 3:
        return "2D"
    if images.ndim == 4:  # (N, H, W, C) with few channels, or (N, D, H, W)
        return "2D" if images.shape[-1] in (1, 3, 4) else "3D"
    if images.ndim == 5:
        return "3D"
    raise ScriptError(f"Images of shape {images.shape} are neither 2D (N, H, W[, C]) nor 3D (N, D, H, W[, C]).")


def flat_labels(labels: np.ndarray, split: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ScriptError(
            f"{split}_labels has shape {labels.shape}: several labels per image (a multi-label dataset such as "
            "ChestMNIST). A folder-per-class tree holds one class per image, so this dataset cannot be converted."
        )
    return labels.astype(np.int64)


def write_image(path: Path, image: np.ndarray, fmt: str) -> None:
    if fmt == "tif":
        import tifffile

        tifffile.imwrite(path, image)
    else:
        from PIL import Image

        Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(path)


def convert(npz_path: Path, out_dir: Path, fmt: str = "auto", labels: str | None = None,
            labels_json: Path | None = None, ndim: str = "auto") -> dict[str, int]:
    """Write the tree; return the number of images per split."""
    try:
        data = np.load(npz_path)
    except (OSError, ValueError) as e:
        raise ScriptError(f"Cannot read '{npz_path}' as a .npz file: {e}.") from None
    splits = [s for s in SPLITS if f"{s}_images" in data.files and f"{s}_labels" in data.files]
    if not splits:
        raise ScriptError(f"'{npz_path}' holds {', '.join(data.files) or 'nothing'}, but none of the pairs "
                          "train_images/train_labels, val_images/val_labels, test_images/test_labels.")
    arrays = {s: (data[f"{s}_images"], flat_labels(data[f"{s}_labels"], s)) for s in splits}
    kinds = {image_ndim(images, ndim) for images, _ in arrays.values()}
    if len(kinds) > 1:
        raise ScriptError(f"The splits of '{npz_path}' mix 2D and 3D images: use --ndim to say which they are.")
    kind = kinds.pop()
    fmt = ("png" if kind == "2D" else "tif") if fmt == "auto" else fmt
    if kind == "3D" and fmt == "png":
        raise ScriptError("PNG holds 2D images only; write 3D volumes with --format tif.")
    for split, (images, split_labels) in arrays.items():
        if len(images) != len(split_labels):
            raise ScriptError(
                f"{split}_images has {len(images)} images but {split}_labels has {len(split_labels)} labels."
            )
        if len(split_labels) and split_labels.min() < 0:
            raise ScriptError(f"{split}_labels holds a negative class index ({split_labels.min()}).")
    n_classes = int(max(lab.max() for _, lab in arrays.values() if len(lab))) + 1
    names = class_names(labels, labels_json, n_classes)
    if (out_dir / splits[0]).exists() and any((out_dir / splits[0]).iterdir()):
        raise ScriptError(f"'{out_dir / splits[0]}' already exists and is not empty: nothing was written. "
                          "Remove it, or choose another output folder.")
    counts = {}
    for split, (images, split_labels) in arrays.items():
        for name in names:  # every class folder, even if empty in this split, so all splits agree
            (out_dir / split / name).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, split_labels)):
            write_image(out_dir / split / names[label] / f"{split}_{i:06d}.{fmt}", image, fmt)
        counts[split] = len(images)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("npz", type=Path, help="a MedMNIST .npz file (e.g. pathmnist.npz, organmnist3d_64.npz)")
    parser.add_argument("out_dir", type=Path, help="folder to write train/, val/ and test/ into")
    parser.add_argument("--format", choices=["auto", "png", "tif"], default="auto",
                        help="file format: auto = png for 2D, tif for 3D (default)")
    parser.add_argument("--labels", help="class names in index order, comma-separated")
    parser.add_argument("--labels-json", type=Path, help='JSON file {"0": "name", "1": "name", ...}')
    parser.add_argument("--ndim", choices=["auto", "2D", "3D"], default="auto",
                        help="2D or 3D images; auto: (N, H, W, C) with C in 1, 3, 4 is 2D, other 4-D arrays 3D")
    args = parser.parse_args(argv)
    try:
        counts = convert(args.npz, args.out_dir, args.format, args.labels, args.labels_json, args.ndim)
    except ScriptError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"Wrote {', '.join(f'{n} {split}' for split, n in counts.items())} images to {args.out_dir}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
