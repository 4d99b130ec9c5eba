"""Anti-aliasing fixes: BlurPool layers and ``antialias(model)``.

``antialias`` rewrites, in a copy of a model, exactly the layers the linter flags as aliasing
downsamplers (EQ001-EQ003), keeping parameter names and weights: with BlurPool layers
(``blurpool``, ``filters``) or with adaptive polyphase sampling (``polyphase``).

The layers and filters resolve on first use, so that renderers can read ``fix.antialias.RECIPE``
(``equiv-lint --explain``) without importing torch; ``antialias.py`` imports torch only when called.
"""

from __future__ import annotations

import importlib
from typing import Any

# Bound eagerly: the function shares its name with its module, which importing the module would
# otherwise leave in this attribute.
from pytest_equivariance.fix.antialias import AntialiasReport, antialias

_EXPORTS: dict[str, str] = {
    "AntialiasedConv1d": "blurpool",
    "AntialiasedConv2d": "blurpool",
    "AntialiasedConv3d": "blurpool",
    "BlurPool1d": "blurpool",
    "BlurPool2d": "blurpool",
    "BlurPool3d": "blurpool",
    "MaxBlurPool1d": "blurpool",
    "MaxBlurPool2d": "blurpool",
    "MaxBlurPool3d": "blurpool",
    "BlurAvgPool1d": "blurpool",
    "BlurAvgPool2d": "blurpool",
    "BlurAvgPool3d": "blurpool",
    "blur_avg_pool1d": "filters",
    "blur_avg_pool2d": "filters",
    "blur_avg_pool3d": "filters",
    "PolyphasePool1d": "polyphase",
    "PolyphasePool2d": "polyphase",
    "PolyphasePool3d": "polyphase",
    "PolyphaseMaxPool1d": "polyphase",
    "PolyphaseMaxPool2d": "polyphase",
    "PolyphaseMaxPool3d": "polyphase",
    "PolyphaseAvgPool1d": "polyphase",
    "PolyphaseAvgPool2d": "polyphase",
    "PolyphaseAvgPool3d": "polyphase",
    "PolyphaseConv1d": "polyphase",
    "PolyphaseConv2d": "polyphase",
    "PolyphaseConv3d": "polyphase",
    "polyphase_pool1d": "polyphase",
    "polyphase_pool2d": "polyphase",
    "polyphase_pool3d": "polyphase",
    "binomial_filter": "filters",
    "blur_pool1d": "filters",
    "blur_pool2d": "filters",
    "blur_pool3d": "filters",
}

__all__ = sorted([*_EXPORTS, "AntialiasReport", "antialias"])


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'pytest_equivariance.fix' has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"pytest_equivariance.fix.{module}"), name)
