"""The anti-aliased layers: BlurPool, max-blur and blur-average pools, anti-aliased convs, polyphase sampling.

The bottom layer of the package: it imports nothing of ours but errors, and the linter, the checks
and ``antialias`` all build on it. ``filters`` holds the pure functions (binomial filters, blur and
polyphase subsampling), ``blurpool`` and ``polyphase`` the ``nn.Module`` drop-ins. The names resolve
on first use, so that reading this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'pytest_equivariance.layers' has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"pytest_equivariance.layers.{module}"), name)
