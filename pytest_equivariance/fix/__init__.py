"""Fixes driven by the linter's findings: ``antialias(model)`` and the ``--fix`` source rewrites.

``antialias`` rewrites, in a copy of a model, exactly the layers the linter flags as aliasing
downsamplers (EQ001-EQ003), keeping parameter names and weights, with the layers of
:mod:`pytest_equivariance.layers` (BlurPool or adaptive polyphase sampling); ``source`` makes the
same change in the user's files (``equiv-lint --fix``), and ``signature`` is what a safe fix keeps.
The layers are re-exported here (``from pytest_equivariance.fix import BlurPool2d``).

Renderers read ``fix.antialias.RECIPE`` (``equiv-lint --explain``) without importing torch:
``antialias.py`` imports torch only when called, and the layers resolve on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

# Bound eagerly: the function shares its name with its module, which importing the module would
# otherwise leave in this attribute.
from pytest_equivariance.fix.antialias import AntialiasReport, antialias
from pytest_equivariance.layers import __all__ as _LAYERS

__all__ = sorted([*_LAYERS, "AntialiasReport", "antialias"])


def __getattr__(name: str) -> Any:
    if name not in _LAYERS:
        raise AttributeError(f"module 'pytest_equivariance.fix' has no attribute {name!r}")
    return getattr(importlib.import_module("pytest_equivariance.layers"), name)
