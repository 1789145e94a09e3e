"""Find classes and image files in folder-per-class trees, and split them.

Class index = position of the class folder's name in natural, case-insensitive order
(`class_2` before `class_10`). The training mapping is THE mapping: validation and test folders are
matched to it by name.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biapy_cls.errors import DataError

log = logging.getLogger("biapy_cls")

IMAGE_EXTENSIONS_2D = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
IMAGE_EXTENSIONS_3D = (".tif", ".tiff", ".npy", ".nii", ".nii.gz")
# Files that operating systems and tools drop into folders; never data, never worth a warning.
OS_LITTER = {"thumbs.db", "desktop.ini", "__macosx", "$recycle.bin", "icon\r"}


def natural_key(name: str) -> list:
    """Sort key that orders digits by value and letters case-insensitively: img2 < img10 < Img11."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def is_litter(name: str) -> bool:
    return name.startswith(".") or name.lower() in OS_LITTER


def image_extensions(ndim: str) -> tuple[str, ...]:
    return IMAGE_EXTENSIONS_3D if ndim == "3D" else IMAGE_EXTENSIONS_2D


def has_image_extension(path: Path, extensions: tuple[str, ...]) -> bool:
    name = path.name.lower()
    return any(name.endswith(ext) for ext in extensions)


@dataclass
class SampleList:
    """Image files with their class indices (-1 when unlabelled), in a stable natural order."""

    paths: list[Path]
    labels: np.ndarray  # int64, one per path
    root: Path

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: np.ndarray) -> SampleList:
        return SampleList([self.paths[i] for i in indices], self.labels[indices], self.root)

    def relative_names(self) -> list[str]:
        """Names relative to the root, with '/' separators: the `filename` column of predictions.csv."""
        return [p.relative_to(self.root).as_posix() for p in self.paths]


def _check_dir(path: str | Path, key: str) -> Path:
    if not str(path).strip():
        raise DataError(f"{key} is empty: set it to the folder that holds your images.")
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{key} points to '{root}', which does not exist. Check the path in your YAML file.")
    if not root.is_dir():
        raise DataError(f"{key} points to '{root}', which is a file, not a folder of class sub-folders.")
    return root


def list_class_folders(root: Path) -> list[Path]:
    folders = [p for p in root.iterdir() if p.is_dir() and not is_litter(p.name)]
    return sorted(folders, key=lambda p: natural_key(p.name))


def _list_images(folder: Path, extensions: tuple[str, ...], recursive: bool) -> tuple[list[Path], list[Path]]:
    """Image files of a folder in natural order, and the non-image files found beside them."""
    entries = folder.rglob("*") if recursive else folder.iterdir()
    images, others = [], []
    for p in entries:
        if not p.is_file() or any(is_litter(part) for part in p.relative_to(folder).parts):
            continue
        (images if has_image_extension(p, extensions) else others).append(p)
    key = lambda p: [natural_key(part) for part in p.relative_to(folder).parts]  # noqa: E731
    return sorted(images, key=key), sorted(others, key=key)


def _warn_skipped(others: list[Path], root: Path, extensions: tuple[str, ...]) -> None:
    if not others:
        return
    shown = ", ".join(p.relative_to(root).as_posix() for p in others[:10])
    more = f" and {len(others) - 10} more" if len(others) > 10 else ""
    log.warning(
        f"Skipped {len(others)} file(s) under '{root}' that are not images ({', '.join(extensions)}): {shown}{more}"
    )


def discover_labelled(
    root_path: str | Path, key: str, ndim: str, class_names: list[str] | None = None
) -> tuple[SampleList, list[str]]:
    """Read a folder-per-class tree.

    With `class_names` None (training data) the class folders define the classes. Otherwise (validation,
    test) each folder is matched by name to `class_names`; a folder with an unknown name is an error.
    A known class may be missing (e.g. absent from the test set).
    """
    root = _check_dir(root_path, key)
    extensions = image_extensions(ndim)
    folders = list_class_folders(root)
    if not folders:
        loose, _ = _list_images(root, extensions, recursive=False)
        hint = f" It holds {len(loose)} image file(s) directly:" if loose else ""
        raise DataError(
            f"{key} ('{root}') has no class sub-folders.{hint} Put the images of each class in a sub-folder "
            f"named after the class, e.g. {root}/class_a/img1.png, {root}/class_b/img2.png."
        )
    if class_names is None:
        class_names = [f.name for f in folders]
    else:
        unknown = [f.name for f in folders if f.name not in class_names]
        if unknown:
            raise DataError(
                f"{key} ('{root}') has class folder(s) {unknown} that the training data does not have "
                f"(training classes: {class_names}). Rename or remove them, or set DATA.TEST.LOAD_GT False "
                "to predict without labels."
            )
    paths, labels, skipped = [], [], []
    for folder in folders:
        images, others = _list_images(folder, extensions, recursive=True)
        skipped += others
        if not images:
            raise DataError(
                f"The class folder '{folder}' ({key}) holds no image files ({', '.join(extensions)}). "
                "Add images to it or remove it."
            )
        paths += images
        labels += [class_names.index(folder.name)] * len(images)
    _warn_skipped(skipped, root, extensions)
    return SampleList(paths, np.asarray(labels, dtype=np.int64), root), class_names


def discover_unlabelled(root_path: str | Path, key: str, ndim: str) -> SampleList:
    """Every image under a folder, flat or in sub-folders, in natural order; labels are -1."""
    root = _check_dir(root_path, key)
    extensions = image_extensions(ndim)
    images, others = _list_images(root, extensions, recursive=True)
    _warn_skipped(others, root, extensions)
    if not images:
        raise DataError(f"{key} ('{root}') holds no image files ({', '.join(extensions)}).")
    return SampleList(images, np.full(len(images), -1, dtype=np.int64), root)


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int, shuffle: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with `fraction` of every class in val (rounded; at least one image of
    every class with two or more images). With `shuffle` False, each class's last images go to val."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        if shuffle:
            idx = rng.permutation(idx)
        n_val = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        train_idx.append(idx[: len(idx) - n_val])
        val_idx.append(idx[len(idx) - n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def stratified_folds(
    labels: np.ndarray, n_folds: int, fold: int, seed: int, shuffle: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) for cross-validation: fold `fold` (1-based) of `n_folds` is validation."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels)
    if counts[counts > 0].min() < n_folds:
        raise DataError(
            f"DATA.VAL.CROSS_VAL_NFOLD is {n_folds} but the smallest class has only {counts[counts > 0].min()} "
            "training image(s): lower DATA.VAL.CROSS_VAL_NFOLD or add images."
        )
    skf = StratifiedKFold(n_splits=n_folds, shuffle=shuffle, random_state=seed if shuffle else None)
    train_idx, val_idx = list(skf.split(np.zeros(len(labels)), labels))[fold - 1]
    return np.sort(train_idx), np.sort(val_idx)
