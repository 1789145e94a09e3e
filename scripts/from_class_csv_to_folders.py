#!/usr/bin/env python3
"""Turn a CSV of (filename, class) into the folder-per-class tree that biapy-cls reads.

    python scripts/from_class_csv_to_folders.py labels.csv images/ data/train
    python scripts/from_class_csv_to_folders.py labels.csv images/ data/train --mode symlink

labels.csv (a header row naming the columns; other columns are ignored):

    filename,class
    img_001.png,healthy
    sub/img_002.tif,tumour

becomes data/train/healthy/img_001.png, data/train/tumour/img_002.tif. Filenames are relative to the
images folder (absolute paths are used as they are). Every row is checked before anything is written:
missing files, empty classes and files listed with two classes are all reported, and the script exits
with status 2. If two listed files share a name (sub1/a.png, sub2/a.png), their folder path is kept in
the new name (sub1_a.png, sub2_a.png).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

EXIT_USER_ERROR = 2
MAX_LISTED = 10


class ScriptError(Exception):
    """A problem with the CSV, the images or the output folder, told to the user."""


def safe_folder_name(name: str) -> str:
    """A class name usable as a folder name on every system."""
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name.strip()).strip(". ") or "_"


def _listing(items: list[str]) -> str:
    more = f" ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def read_rows(csv_path: Path, filename_column: str, class_column: str, header: bool) -> list[tuple[str, str]]:
    """(filename, class) pairs, in file order."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except OSError as e:
        raise ScriptError(f"Cannot read the CSV file '{csv_path}': {e.strerror or e}.") from None
    if not rows:
        raise ScriptError(f"The CSV file '{csv_path}' is empty.")
    if header:
        names = [c.strip().lower() for c in rows[0]]
        missing = [c for c in (filename_column, class_column) if c.lower() not in names]
        if missing:
            raise ScriptError(
                f"The first row of '{csv_path}' ({', '.join(rows[0])}) has no column named {' or '.join(missing)}. "
                "Name the columns with --filename-column and --class-column, or use --no-header if the file "
                "has no header row (then the first two columns are used)."
            )
        i_file, i_class = names.index(filename_column.lower()), names.index(class_column.lower())
        rows = rows[1:]
    else:
        i_file, i_class = 0, 1
    pairs = []
    for number, row in enumerate(rows, start=2 if header else 1):
        if len(row) <= max(i_file, i_class):
            raise ScriptError(f"Row {number} of '{csv_path}' has {len(row)} column(s): {','.join(row)!r}.")
        pairs.append((row[i_file].strip(), row[i_class].strip()))
    return pairs


def plan_copies(pairs: list[tuple[str, str]], images_dir: Path) -> list[tuple[Path, Path]]:
    """(source file, destination relative to the output folder); raises ScriptError listing every problem."""
    classes: dict[str, str] = {}
    problems = []
    for name, label in pairs:
        if not name:
            problems.append("a row has an empty filename")
        elif not label:
            problems.append(f"'{name}' has an empty class")
        elif classes.setdefault(name, label) != label:
            problems.append(f"'{name}' is listed with two classes ('{classes[name]}' and '{label}')")
    missing = [name for name in classes if not (images_dir / name).is_file()]
    if missing:
        problems.append(
            f"{len(missing)} file(s) listed in the CSV do not exist under '{images_dir}': {_listing(missing)}"
        )
    if problems:
        raise ScriptError("Nothing was written. " + "; ".join(problems) + ".")
    base_counts = Counter((safe_folder_name(label), Path(name).name) for name, label in classes.items())
    plan = []
    for name, label in classes.items():
        folder = safe_folder_name(label)
        target = Path(name).name
        if base_counts[(folder, target)] > 1:  # keep the sub-folders in the name to tell them apart
            target = "_".join(Path(name).parts).lstrip("_/\\")
        plan.append((images_dir / name, Path(folder) / target))
    return plan


def place(source: Path, dest: Path, mode: str) -> None:
    if mode == "copy":
        shutil.copy2(source, dest)
    elif mode == "hardlink":
        os.link(source, dest)
    else:
        os.symlink(source.resolve(), dest)


def convert(csv_path: Path, images_dir: Path, out_dir: Path, mode: str = "copy", filename_column: str = "filename",
            class_column: str = "class", header: bool = True, overwrite: bool = False) -> Counter:
    """Build the tree; return the number of images per class folder."""
    if not images_dir.is_dir():
        raise ScriptError(f"The images folder '{images_dir}' does not exist.")
    plan = plan_copies(read_rows(csv_path, filename_column, class_column, header), images_dir)
    existing = [str(rel) for _, rel in plan if (out_dir / rel).exists() or (out_dir / rel).is_symlink()]
    if existing and not overwrite:
        raise ScriptError(
            f"Nothing was written: {len(existing)} file(s) already exist in '{out_dir}': {_listing(existing)}. "
            "Choose an empty output folder, or add --overwrite to replace them."
        )
    counts: Counter = Counter()
    for source, rel in plan:
        dest = out_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists() or dest.is_symlink():
            dest.unlink()
        try:
            place(source, dest, mode)
        except OSError as e:
            hint = (
                " Hard links only work within one file system: use --mode copy or symlink."
                if mode == "hardlink"
                else ""
            )
            raise ScriptError(f"Could not {mode} '{source}' to '{dest}': {e.strerror or e}.{hint}") from None
        counts[rel.parts[0]] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path, help="CSV file with a filename column and a class column")
    parser.add_argument("images_dir", type=Path, help="folder the filenames in the CSV are relative to")
    parser.add_argument("out_dir", type=Path, help="folder to write, one sub-folder per class (e.g. data/train)")
    parser.add_argument("--mode", choices=["copy", "hardlink", "symlink"], default="copy",
                        help="copy the images (default), hard-link them (no extra space, same file system) or "
                             "symlink them (no extra space; the originals must stay where they are)")
    parser.add_argument(
        "--filename-column", default="filename", help="header of the filename column (default filename)"
    )
    parser.add_argument("--class-column", default="class", help="header of the class column (default class)")
    parser.add_argument(
        "--no-header", action="store_true", help="the CSV has no header row: column 1 = filename, 2 = class"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace files that already exist in out_dir")
    args = parser.parse_args(argv)
    try:
        counts = convert(args.csv, args.images_dir, args.out_dir, args.mode, args.filename_column, args.class_column,
                         not args.no_header, args.overwrite)
    except ScriptError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    summary = ", ".join(f"{name}: {n}" for name, n in sorted(counts.items()))
    print(
        f"Wrote {sum(counts.values())} images ({args.mode}) in {len(counts)} class folders under {args.out_dir} "
        f"({summary})."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
