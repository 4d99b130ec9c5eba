"""Errors a user can cause.

Every message is one sentence that names the cause and the remedy, so shells (the CLI, the pytest
plugin) can print it as it is, without a traceback.
"""

from __future__ import annotations


class EquivarianceUsageError(Exception):
    """A mistake in how the tool was called: bad arguments, paths, shapes, config or baseline files.

    ``str(error)`` is the complete, user-facing sentence; ``hint`` optionally carries the remedy
    separately for renderers that show it on its own line.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ModelLoadError(EquivarianceUsageError):
    """A target could not be turned into a model: missing file, import error, constructor arguments."""


class InputShapeError(EquivarianceUsageError):
    """The example input shape is malformed, or the model rejects it."""


class BaselineError(EquivarianceUsageError):
    """A robustness baseline file is missing, corrupt or of an unknown version."""


class ConfigError(EquivarianceUsageError):
    """A settings file (``[tool.equiv-lint]`` in pyproject.toml) is malformed or has unknown keys."""
