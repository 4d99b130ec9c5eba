"""Exact attribution walks real torchvision architectures and blames their strided stems."""

from __future__ import annotations

import pytest
import torch

from optional import require
from pytest_equivariance import attribute
from pytest_equivariance.inputs import natural_images
from pytest_equivariance.seeding import seeded

torchvision = require("torchvision")
pytestmark = pytest.mark.zoo


# Depthwise and grouped convolutions, SE blocks with in-place activations, channel shuffles,
# LayerNorm over permuted channels, stochastic depth and 7x7 kernels on 2x2 maps.
@pytest.mark.parametrize("name, stem", [
    ("mobilenet_v3_small", "features.0.0"),
    ("efficientnet_b0", "features.0.0"),
    ("shufflenet_v2_x0_5", "conv1.0"),
    ("convnext_tiny", "features.0.0"),
])
def test_attribution_names_the_strided_stem(name: str, stem: str) -> None:
    with seeded(0):
        model = getattr(torchvision.models, name)(weights=None).eval()
    profile = attribute(model, natural_images((2, 3, 64, 64)), ("translate_x", "translate_y"), circular_padding=True)
    assert "module by module" not in profile.method  # the whole model was walked as a graph
    assert profile.culprit is not None and profile.culprit.qualname == stem
    assert profile.culprit.params.get("stride") in (2, 4, [2, 2], [4, 4])
    assert sum(layer.share for layer in profile.layers) == pytest.approx(1.0)
    assert torch.isfinite(torch.tensor(profile.end_to_end))
