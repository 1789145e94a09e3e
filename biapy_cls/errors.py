"""The tool's own errors: each carries a message a user can act on and the exit code to use.

Anything raised as a `UserError` is printed as one paragraph without a traceback (unless `--debug`).
"""

from __future__ import annotations

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A mistake in the user's config, data, paths or flags. Exit code 2."""

    exit_code = EXIT_USER_ERROR


class ConfigError(UserError):
    """A config key or value is wrong."""


class DataError(UserError):
    """An input folder or image file cannot be used."""


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable or does not fit the config."""


class RunStateError(UserError):
    """The output folder holds a run that would be damaged (finished, or interrupted without --resume)."""


class TrainingInterrupted(Exception):
    """Ctrl-C during training: the last checkpoint was saved; exit 130 with the --resume command."""

    exit_code = EXIT_INTERRUPTED


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class WeightsUnavailable(UserError):
    """Pretrained weights are neither in the cache nor downloadable (offline machine, failed download)."""
