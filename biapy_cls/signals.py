"""SIGTERM handled like Ctrl-C: SLURM, Kubernetes and `kill` send it at a time limit, and a run stopped
that way must keep its last epoch, say "interrupted" and print the resume hint, exiting 143 (128 + 15)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated (a KeyboardInterrupt) in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_cause(err: BaseException) -> str:
    return "SIGTERM (a time limit of the scheduler, or kill)" if isinstance(err, Terminated) else "the user (Ctrl-C)"


def exit_code(err: BaseException, default: int) -> int:
    return EXIT_TERMINATED if isinstance(err, Terminated) else default
