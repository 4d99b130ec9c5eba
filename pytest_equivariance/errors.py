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


def shown(value: object, limit: int = 60) -> str:
    """Return ``value`` as an error message shows it: one short line (a tensor by its shape and dtype).

    A message quotes what the user passed, but a tensor's or a long list's repr spans many lines.
    """
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None and not isinstance(value, (str, bytes)):
        return f"<{type(value).__name__} of shape {tuple(shape)}, {str(dtype).removeprefix('torch.')}>"
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
