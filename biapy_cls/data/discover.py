"""Find classes and image files in folder-per-class trees, and split them.

Class index = position of the class folder's name in natural, case-insensitive order
(`class_2` before `class_10`); names that differ only by case are refused (see `refuse_case_twins`).
The training mapping is THE mapping: validation and test folders are
matched to it by name.
"""

from __future__ import annotations

import logging
import os
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


def total_key(name: str) -> tuple:
    """Natural, case-insensitive order, then the exact name: a total order, so `Zero` and `zero` (or
    `a01`/`a1`) always come in the same order whatever the file system lists first."""
    return (natural_key(name), name)


def _readable_dir(folder: Path, key: str) -> None:
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DataError(
            f"Permission denied: the folder '{folder}' ({key}) cannot be read by this user, so its images cannot "
            "be used. Fix its permissions (e.g. chmod -R u+rX) or move the images elsewhere."
        )


def list_class_folders(root: Path, key: str = "the data folder") -> list[Path]:
    _readable_dir(root, key)
    folders = [p for p in root.iterdir() if p.is_dir() and not is_litter(p.name)]
    return sorted(folders, key=lambda p: total_key(p.name))


def refuse_case_twins(folders: list[Path], root: Path, key: str) -> None:
    """Refuse class folders whose names differ only by case (`Zero` and `zero`).

    Refused rather than ordered: on Windows and macOS, where most analysts look at their data, the file
    system is case-insensitive, so the two folders are one folder there. Such a tree cannot be copied to
    (or re-created on) those machines without merging or losing a class, a checkpoint's class names would
    name classes no test folder there can hold, and it is almost always one class split by a typo."""
    by_folded: dict[str, list[str]] = {}
    for folder in folders:
        by_folded.setdefault(folder.name.casefold(), []).append(folder.name)
    twins = [names for names in by_folded.values() if len(names) > 1]
    if twins:
        pairs = "; ".join(" and ".join(f"'{n}'" for n in names) for names in twins)
        raise DataError(
            f"{key} ('{root}') has class folders whose names differ only by case: {pairs}. On Windows and macOS "
            "(case-insensitive file systems) they would be one folder, so the classes would depend on the machine. "
            "If they hold the same class, move the images into one folder; if they are different classes, give "
            "them names that differ by more than case (e.g. 'zero_a' and 'zero_b')."
        )


def _list_images(folder: Path, extensions: tuple[str, ...], recursive: bool,
                 key: str = "the data folder") -> tuple[list[Path], list[Path]]:
    """Image files of a folder in natural order, and the files not used as (path, reason).

    Symlinked files and sub-folders are followed (a sub-folder reached twice, e.g. by a link loop, is read
    once); an unreadable sub-folder is an error, never silently dropped."""
    _readable_dir(folder, key)
    images, others = [], []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=recursive):
        here = Path(dirpath)
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        if here != folder:
            _readable_dir(here, key)
        dirnames[:] = [d for d in dirnames if not is_litter(d)] if recursive else []
        for name in filenames:
            if is_litter(name):
                continue
            p = here / name
            if not p.is_file():  # a dangling or looping symbolic link, a socket, ...
                others.append((p, "a broken or looping symbolic link" if p.is_symlink() else "not a regular file"))
            elif has_image_extension(p, extensions):
                images.append(p)
            else:
                others.append((p, "not an image file"))
        # a symlink to a folder that os.walk does not follow (not recursive) or that does not resolve
        for d in list(dirnames):
            if (here / d).is_symlink() and not (here / d).exists():
                others.append((here / d, "a broken symbolic link"))
    order = lambda p: [total_key(part) for part in p.relative_to(folder).parts]  # noqa: E731
    return sorted(images, key=order), sorted(others, key=lambda item: order(item[0]))


def _warn_skipped(others: list[tuple[Path, str]], root: Path, extensions: tuple[str, ...]) -> None:
    """One summary line, then every file not used with its reason (in the log)."""
    if not others:
        return
    by_reason: dict[str, int] = {}
    for _, reason in others:
        by_reason[reason] = by_reason.get(reason, 0) + 1
    summary = ", ".join(f"{n} {reason}" for reason, n in by_reason.items())
    log.warning(f"Skipped {len(others)} file(s) under '{root}' ({summary}; images are {', '.join(extensions)}):\n"
                + "\n".join(f"  {p.relative_to(root).as_posix()}: {reason}" for p, reason in others))


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
    folders = list_class_folders(root, key)
    refuse_case_twins(folders, root, key)
    if not folders:
        loose, _ = _list_images(root, extensions, recursive=False, key=key)
        hint = f" It holds {len(loose)} image file(s) directly:" if loose else ""
        unlabelled = (" If these test images have no labels, set DATA.TEST.LOAD_GT False to predict their classes."
                      if key == "DATA.TEST.PATH" else "")
        raise DataError(
            f"{key} ('{root}') has no class sub-folders.{hint} Put the images of each class in a sub-folder "
            f"named after the class, e.g. {root}/class_a/img1.png, {root}/class_b/img2.png.{unlabelled}"
        )
    if class_names is None:
        class_names = [f.name for f in folders]
    else:
        unknown = [f.name for f in folders if f.name not in class_names]
        if unknown:
            folded = {n.casefold(): n for n in class_names}
            near = [f"'{n}' is '{folded[n.casefold()]}' there" for n in unknown if n.casefold() in folded]
            case_hint = f" Class names are matched with their case ({'; '.join(near)})." if near else ""
            raise DataError(
                f"{key} ('{root}') has class folder(s) {unknown} that the training data does not have "
                f"(training classes: {class_names}).{case_hint} Rename or remove them, or set DATA.TEST.LOAD_GT "
                "False to predict without labels."
            )
    paths, labels, skipped = [], [], []
    for folder in folders:
        images, others = _list_images(folder, extensions, recursive=True, key=key)
        skipped += others
        if not images:
            raise DataError(f"The class folder '{folder}' ({key}) holds no image files ({', '.join(extensions)})."
                            f"{wrong_ndim_hint(others, ndim)} Add images to it or remove it.")
        paths += images
        labels += [class_names.index(folder.name)] * len(images)
    _warn_skipped(skipped, root, extensions)
    return SampleList(paths, np.asarray(labels, dtype=np.int64), root), class_names


def discover_unlabelled(root_path: str | Path, key: str, ndim: str) -> SampleList:
    """Every image under a folder, flat or in sub-folders, in natural order; labels are -1."""
    root = _check_dir(root_path, key)
    extensions = image_extensions(ndim)
    images, others = _list_images(root, extensions, recursive=True, key=key)
    _warn_skipped(others, root, extensions)
    if not images:
        raise DataError(f"{key} ('{root}') holds no image files ({', '.join(extensions)})."
                        f"{wrong_ndim_hint(others, ndim)}")
    return SampleList(images, np.full(len(images), -1, dtype=np.int64), root)


def wrong_ndim_hint(others: list[tuple[Path, str]], ndim: str) -> str:
    """When a folder holds only images of the other dimensionality (PNGs in a 3D run), say so."""
    other_ndim = "2D" if ndim == "3D" else "3D"
    found = [p for p, _ in others if has_image_extension(p, image_extensions(other_ndim))]
    if not found:
        return ""
    kinds = sorted({p.name.lower().rsplit(".", 1)[-1].upper() for p in found})
    return (f" It holds {len(found)} {'/'.join(kinds)} file(s) (e.g. '{found[0].name}'), a {other_ndim} format, "
            f"but PROBLEM.NDIM is {ndim}: if these are {other_ndim} images, set PROBLEM.NDIM {other_ndim} (and a "
            f"{4 if other_ndim == '3D' else 3}-value DATA.PATCH_SIZE).")


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
