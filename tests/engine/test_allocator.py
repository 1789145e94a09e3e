"""engine/allocator.py: on glibc, memory freed by one step is reused by the next without page faults; the
user's own malloc settings are left alone and said so in the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from biapy_cls.engine import allocator

GLIBC = sys.platform.startswith("linux") and allocator._c_library().startswith("glibc")

# A training step's pattern, with glibc's malloc itself: the forward pass allocates 16 activations of 2 MB,
# the backward pass frees them one by one while allocating as many gradients, which are freed at the end.
STEPS = textwrap.dedent("""
    import ctypes, json, resource, sys
    from biapy_cls.engine.allocator import keep_freed_memory
    note = keep_freed_memory() if sys.argv[1] == "keep" else ""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes, libc.memset.argtypes = [ctypes.c_void_p], [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]

    def block():
        pointer = libc.malloc(2 << 20)
        libc.memset(pointer, 1, 2 << 20)
        return pointer

    faults = []
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        activations, gradients = [block() for _ in range(16)], []
        while activations:
            libc.free(activations.pop())
            gradients.append(block())
        for pointer in gradients:
            libc.free(pointer)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"note": note, "faults": faults[2:]}))
""")


def run_steps(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in allocator.USER_VARIABLES and k != "LD_PRELOAD"}
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True,
                          env={**clean, **env})
    return json.loads(done.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_memory_is_reused_without_page_faults():
    default, kept = run_steps("default"), run_steps("keep")
    # glibc's defaults hand the freed 32 MB back to the kernel: every step faults 8,192 pages of 4 KB back
    # in (hence the test can fail); kept, the next step reuses them
    assert min(default["faults"]) > 5000, default
    assert max(kept["faults"]) < 100, kept
    assert "kept for reuse" in kept["note"]


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_user_malloc_settings_are_left_alone():
    tuned = run_steps("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert "MALLOC_" in tuned["note"] and "kept for reuse" not in tuned["note"]
    assert min(tuned["faults"]) > 5000  # the user's setting (glibc's default trim) is what applies


def test_other_allocators_are_left_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", "")
    monkeypatch.setenv("LD_PRELOAD", "/opt/lib/libprofile.so:/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    if GLIBC:
        assert "libjemalloc.so.2" in allocator.keep_freed_memory()
    monkeypatch.setattr(allocator, "_applied", "")
    monkeypatch.delenv("LD_PRELOAD")
    monkeypatch.setattr(allocator, "_c_library", lambda: "")  # musl, as in Alpine images
    assert allocator.keep_freed_memory() == "the system's malloc"


def test_the_run_log_says_how_memory_is_managed(monkeypatch):
    from biapy_cls.engine.runtime import setup_runtime

    monkeypatch.setattr(allocator, "_applied", "")
    for name in allocator.USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    runtime = setup_runtime(None, 1)
    assert runtime.device.type == "cpu"
    assert runtime.memory == ("freed CPU memory kept for reuse between steps (glibc: up to 256 MB)" if GLIBC
                              else "the system's malloc")
