"""pytest-equivariance: check that PyTorch models are shift- and rotation-equivariant.

The public API is imported lazily, so that loading the pytest plugin (or ``import
pytest_equivariance``) does not import torch. Everything listed in ``__all__`` resolves on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_equivariance._version import __version__

# name -> module that defines it; one place for each public name.
_EXPORTS: dict[str, str] = {
    # static linter
    "lint": "pytest_equivariance.lint",
    "lint_model": "pytest_equivariance.lint",
    "Finding": "pytest_equivariance.lint.findings",
    "ModelReport": "pytest_equivariance.lint.findings",
    "Severity": "pytest_equivariance.lint.findings",
    # dynamic checks
    "CheckResult": "pytest_equivariance.check.result",
    "Trial": "pytest_equivariance.check.result",
    "check_shift_equivariant": "pytest_equivariance.check.api",
    "check_shift_invariant": "pytest_equivariance.check.api",
    "check_rotation_equivariant": "pytest_equivariance.check.api",
    "check_rotation_invariant": "pytest_equivariance.check.api",
    "check_equivariant": "pytest_equivariance.check.api",
    "lie_derivative": "pytest_equivariance.check.lie",
    "attribute": "pytest_equivariance.check.attribution",
    "localize": "pytest_equivariance.check.localize",
    "Batches": "pytest_equivariance.check.batches",
    "points": "pytest_equivariance.check.geometry",
    "boxes": "pytest_equivariance.check.geometry",
    "detections": "pytest_equivariance.check.detections",
    "Profile": "pytest_equivariance.check.result",
    "LayerError": "pytest_equivariance.check.result",
    "assert_shift_equivariant": "pytest_equivariance.assertions",
    "assert_shift_invariant": "pytest_equivariance.assertions",
    "assert_rotation_equivariant": "pytest_equivariance.assertions",
    "assert_rotation_invariant": "pytest_equivariance.assertions",
    "assert_equivariant": "pytest_equivariance.assertions",
    "assert_lint_clean": "pytest_equivariance.assertions",
    # fixes
    "BlurPool1d": "pytest_equivariance.layers.blurpool",
    "BlurPool2d": "pytest_equivariance.layers.blurpool",
    "BlurPool3d": "pytest_equivariance.layers.blurpool",
    "MaxBlurPool1d": "pytest_equivariance.layers.blurpool",
    "MaxBlurPool2d": "pytest_equivariance.layers.blurpool",
    "MaxBlurPool3d": "pytest_equivariance.layers.blurpool",
    "AntialiasedConv1d": "pytest_equivariance.layers.blurpool",
    "AntialiasedConv2d": "pytest_equivariance.layers.blurpool",
    "AntialiasedConv3d": "pytest_equivariance.layers.blurpool",
    "blur_pool1d": "pytest_equivariance.layers.filters",
    "blur_pool2d": "pytest_equivariance.layers.filters",
    "blur_pool3d": "pytest_equivariance.layers.filters",
    "BlurAvgPool1d": "pytest_equivariance.layers.blurpool",
    "BlurAvgPool2d": "pytest_equivariance.layers.blurpool",
    "BlurAvgPool3d": "pytest_equivariance.layers.blurpool",
    "blur_avg_pool1d": "pytest_equivariance.layers.filters",
    "blur_avg_pool2d": "pytest_equivariance.layers.filters",
    "blur_avg_pool3d": "pytest_equivariance.layers.filters",
    "PolyphasePool1d": "pytest_equivariance.layers.polyphase",
    "PolyphasePool2d": "pytest_equivariance.layers.polyphase",
    "PolyphasePool3d": "pytest_equivariance.layers.polyphase",
    "PolyphaseMaxPool1d": "pytest_equivariance.layers.polyphase",
    "PolyphaseMaxPool2d": "pytest_equivariance.layers.polyphase",
    "PolyphaseMaxPool3d": "pytest_equivariance.layers.polyphase",
    "PolyphaseAvgPool1d": "pytest_equivariance.layers.polyphase",
    "PolyphaseAvgPool2d": "pytest_equivariance.layers.polyphase",
    "PolyphaseAvgPool3d": "pytest_equivariance.layers.polyphase",
    "PolyphaseConv1d": "pytest_equivariance.layers.polyphase",
    "PolyphaseConv2d": "pytest_equivariance.layers.polyphase",
    "PolyphaseConv3d": "pytest_equivariance.layers.polyphase",
    "polyphase_pool1d": "pytest_equivariance.layers.polyphase",
    "polyphase_pool2d": "pytest_equivariance.layers.polyphase",
    "polyphase_pool3d": "pytest_equivariance.layers.polyphase",
    "antialias": "pytest_equivariance.fix.antialias",
    # errors
    "EquivarianceUsageError": "pytest_equivariance.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'pytest_equivariance' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from pytest_equivariance.assertions import (
        assert_equivariant,
        assert_lint_clean,
        assert_rotation_equivariant,
        assert_rotation_invariant,
        assert_shift_equivariant,
        assert_shift_invariant,
    )
    from pytest_equivariance.check.api import (
        check_equivariant,
        check_rotation_equivariant,
        check_rotation_invariant,
        check_shift_equivariant,
        check_shift_invariant,
    )
    from pytest_equivariance.check.attribution import attribute
    from pytest_equivariance.check.batches import Batches
    from pytest_equivariance.check.detections import detections
    from pytest_equivariance.check.geometry import boxes, points
    from pytest_equivariance.check.lie import lie_derivative
    from pytest_equivariance.check.localize import localize
    from pytest_equivariance.check.result import CheckResult, LayerError, Profile, Trial
    from pytest_equivariance.errors import EquivarianceUsageError
    from pytest_equivariance.fix.antialias import antialias
    from pytest_equivariance.layers.blurpool import (
        AntialiasedConv1d,
        AntialiasedConv2d,
        AntialiasedConv3d,
        BlurAvgPool1d,
        BlurAvgPool2d,
        BlurAvgPool3d,
        BlurPool1d,
        BlurPool2d,
        BlurPool3d,
        MaxBlurPool1d,
        MaxBlurPool2d,
        MaxBlurPool3d,
    )
    from pytest_equivariance.layers.filters import (
        blur_avg_pool1d,
        blur_avg_pool2d,
        blur_avg_pool3d,
        blur_pool1d,
        blur_pool2d,
        blur_pool3d,
    )
    from pytest_equivariance.layers.polyphase import (
        PolyphaseAvgPool1d,
        PolyphaseAvgPool2d,
        PolyphaseAvgPool3d,
        PolyphaseConv1d,
        PolyphaseConv2d,
        PolyphaseConv3d,
        PolyphaseMaxPool1d,
        PolyphaseMaxPool2d,
        PolyphaseMaxPool3d,
        PolyphasePool1d,
        PolyphasePool2d,
        PolyphasePool3d,
        polyphase_pool1d,
        polyphase_pool2d,
        polyphase_pool3d,
    )
    from pytest_equivariance.lint import lint, lint_model
    from pytest_equivariance.lint.findings import Finding, ModelReport, Severity
