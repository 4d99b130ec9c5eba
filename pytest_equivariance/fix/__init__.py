"""Anti-aliasing fixes: BlurPool layers and ``antialias(model)``.

``antialias`` rewrites, in a copy of a model, exactly the layers the linter flags as aliasing
downsamplers (EQ001-EQ003), keeping parameter names and weights.
"""

from pytest_equivariance.fix.antialias import AntialiasReport, antialias
from pytest_equivariance.fix.blurpool import (
    AntialiasedConv1d,
    AntialiasedConv2d,
    AntialiasedConv3d,
    BlurPool1d,
    BlurPool2d,
    BlurPool3d,
    MaxBlurPool1d,
    MaxBlurPool2d,
    MaxBlurPool3d,
)
from pytest_equivariance.fix.filters import binomial_filter, blur_pool1d, blur_pool2d, blur_pool3d

__all__ = [
    "AntialiasReport",
    "AntialiasedConv1d",
    "AntialiasedConv2d",
    "AntialiasedConv3d",
    "BlurPool1d",
    "BlurPool2d",
    "BlurPool3d",
    "MaxBlurPool1d",
    "MaxBlurPool2d",
    "MaxBlurPool3d",
    "antialias",
    "binomial_filter",
    "blur_pool1d",
    "blur_pool2d",
    "blur_pool3d",
]
