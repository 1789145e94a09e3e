"""Readable logs: one line per event, on the terminal and in JOB/logs/RUN_log.txt.

Everything the tool says goes through the `biapy_cls` logger. Progress bars (tqdm) go to stderr
only and are not copied into the log file.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

log = logging.getLogger("biapy_cls")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "" if record.levelno == logging.INFO else f"{record.levelname}: "
        text = f"[{self.formatTime(record, '%H:%M:%S')}] {prefix}{record.getMessage()}"
        return printable(text)


def printable(text: str) -> str:
    """File names that are not valid UTF-8 reach Python as lone surrogates (surrogateescape), which no UTF-8
    stream can write ("--- Logging error ---"): shown as \\xNN escapes of their bytes instead."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (it may be replaced, e.g. by test runners)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(log_file: Path | None = None, is_main: bool = True) -> None:
    """Log to stdout (and to `log_file`, appended) on the main process; other processes log errors only."""
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    log.setLevel(logging.INFO if is_main else logging.ERROR)
    log.propagate = False
    console = _StdoutHandler()
    console.setFormatter(_Formatter())
    log.addHandler(console)
    if log_file is not None and is_main:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        file_handler.setFormatter(_Formatter())
        log.addHandler(file_handler)


def close_logging() -> None:
    for handler in list(log.handlers):
        handler.flush()
        if isinstance(handler, logging.FileHandler):
            log.removeHandler(handler)
            handler.close()
