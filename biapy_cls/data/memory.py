"""How much memory the splits loaded with IN_MEMORY need, checked before any image is decoded.

A run holds its training and validation images at the same time (the training phase), then its test
images (the test phase: the training arrays are gone by then). Each phase is checked on its own, with
every split that phase loads in memory; a refusal gives the figure and the way out for each split.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from biapy_cls.errors import DataError


@dataclass(frozen=True)
class InMemorySplit:
    """One split that would be decoded into memory: its images, where they come from, the key that says so."""

    label: str  # "training", "validation", "test"
    n_images: int
    source: str  # e.g. "DATA.VAL.PATH ('/data/val')"
    in_memory_key: str  # the key that, set False, reads these images from disk instead


def available_memory() -> int | None:
    """Bytes of memory free for this process (Linux and macOS), or None when unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(splits: list[InMemorySplit], shape: tuple[int, ...], size_source: str,
                 size_fix: str | None = "a smaller DATA.PATCH_SIZE", available: int | None = None) -> None:
    """Refuse IN_MEMORY loading that cannot fit, before anything is decoded: every image is stored at
    `shape` (channels first), at least one byte per value (uint8; 16-bit images take two, float four).
    `size_source` says where the size comes from, e.g. "DATA.PATCH_SIZE (20000, 20000, 1)"; `size_fix`
    how to make it smaller (None where the size is fixed, e.g. by a checkpoint)."""
    splits = [s for s in splits if s.n_images > 0]
    per_image = math.prod(shape)
    need = sum(s.n_images for s in splits) * per_image
    free = available_memory() if available is None else available
    if not splits or free is None or need <= 0.8 * free:
        return
    keys = list(dict.fromkeys(s.in_memory_key for s in splits))
    parts = " + ".join(f"{s.n_images} {s.label} images of {s.source} ({s.n_images * per_image / 1e9:.1f} GB)"
                       for s in splits)
    verb, together = ("is", "") if len(keys) == 1 else ("are", " together")
    use = f"Use {size_fix}, or set " if size_fix else "Set "
    raise DataError(
        f"{' and '.join(keys)} {verb} True, but {parts} at {size_source} need at least {need / 1e9:.1f} GB of memory"
        f"{together} (one byte per value), and {free / 1e9:.1f} GB are free. {use}"
        f"{' and '.join(k + ' False' for k in keys)} to read those images from disk as needed."
    )
