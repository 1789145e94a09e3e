"""CPU memory between training steps: on Linux with glibc, keep freed blocks for reuse.

PyTorch allocates every activation and gradient of a step with malloc and frees it at the end of the
step. glibc's defaults hand large freed blocks back to the kernel (it trims the heap once more than
twice its mmap threshold is free at the top, and maps blocks above that threshold on their own), so the
next step asks for the same memory again and the kernel zero-fills it page by page: thousands of page
faults per simple_cnn step at 32x32 on this project's CI machine, ~5-20% of the step's time. Raising the
thresholds keeps that memory in the process: the peak a run needs anyway, plus at most TRIM_THRESHOLD
kept free. PyTorch's own advice for CPU training is another allocator (jemalloc, tcmalloc via
LD_PRELOAD); this is the same effect with the allocator every Linux Python already has.

Nothing is changed where the user has chosen: MALLOC_*_ variables, GLIBC_TUNABLES for malloc, or an
allocator preloaded with LD_PRELOAD; nor on other C libraries or systems.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest dynamic threshold: blocks below it come from the heap
TRIM_THRESHOLD = 256 << 20  # free memory kept at the top of the heap before any is handed back
TOP_PAD = 16 << 20  # extra requested from the kernel each time the heap grows
USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX",
                  "MALLOC_MMAP_MAX_")

_applied = ""


def keep_freed_memory() -> str:
    """Apply the thresholds once per process where glibc's malloc is in use and the user has not tuned it;
    returns a short phrase for the run log saying what was done or why not."""
    global _applied
    if _applied:
        return _applied
    reason = _left_alone()
    if reason:
        _applied = reason
        return reason
    libc = ctypes.CDLL(None)  # the process's own C library: glibc, checked above
    done = [libc.mallopt(param, value) == 1 for param, value in
            ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))]
    _applied = ("freed CPU memory kept for reuse between steps (glibc: up to "
                f"{TRIM_THRESHOLD >> 20} MB)") if all(done) else "glibc refused the malloc settings: its defaults"
    return _applied


def _left_alone() -> str:
    """Why the thresholds are left alone, or '' where they apply."""
    if not sys.platform.startswith("linux") or not _c_library().startswith("glibc"):
        return "the system's malloc"  # macOS, Windows, musl: none of glibc's trimming to undo
    if any(name in os.environ for name in USER_VARIABLES) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "malloc as set by the MALLOC_* / GLIBC_TUNABLES variables"
    # libjemalloc, libtcmalloc, libmimalloc...; LD_PRELOAD lists libraries separated by ':' or spaces
    allocators = [path for path in os.environ.get("LD_PRELOAD", "").replace(":", " ").split() if "malloc" in path]
    if allocators:
        return f"the preloaded allocator ({os.path.basename(allocators[0])})"
    return ""


def _c_library() -> str:
    """The C library this process runs on, e.g. 'glibc 2.36' ('' where it is not glibc): asked of the C
    library itself (platform.libc_ver reads the Python executable's file instead)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):  # not a GNU C library
        return ""
