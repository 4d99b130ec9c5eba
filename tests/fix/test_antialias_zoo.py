"""antialias on real torchvision models: built on the meta device, so no weights are computed."""

from __future__ import annotations

import pytest
import torch

from optional import require
from pytest_equivariance.fix import antialias
from pytest_equivariance.inputs import natural_images
from pytest_equivariance.lint import lint

torchvision = require("torchvision")

pytestmark = pytest.mark.zoo

CODES = ["EQ001", "EQ002", "EQ003"]
SHAPE = (1, 3, 224, 224)

# name -> qualnames antialias must replace (from the architectures themselves).
EXPECTED = {
    "resnet18": [
        "conv1", "maxpool", "layer2.0.conv1", "layer2.0.downsample.0", "layer3.0.conv1",
        "layer3.0.downsample.0", "layer4.0.conv1", "layer4.0.downsample.0",
    ],
    "vgg16": ["features.4", "features.9", "features.16", "features.23", "features.30"],
    "mobilenet_v2": [
        "features.0.0", "features.2.conv.1.0", "features.4.conv.1.0", "features.7.conv.1.0",
        "features.14.conv.1.0",
    ],
    "densenet121": [
        "features.conv0", "features.pool0", "features.transition1.pool",
        "features.transition2.pool", "features.transition3.pool",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_zoo_model_is_lint_clean_after_antialias_and_keeps_its_state_dict(name: str) -> None:
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(weights=None)
    before = lint(model, SHAPE, select=CODES)
    assert sorted(f.qualname for f in before) == sorted(EXPECTED[name])
    fixed = antialias(model, example_input=SHAPE)
    report = fixed.antialias_report
    assert sorted(report.changed_qualnames) == sorted(EXPECTED[name])
    assert report.skipped == []
    assert lint(fixed, SHAPE, select=CODES) == []
    assert [n for n, _ in fixed.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert list(fixed.state_dict()) == list(model.state_dict())
    result = fixed.load_state_dict(model.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_resnet18_logits_steady_at_least_3x_under_one_pixel_shifts() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    fixed = antialias(model, example_input=(1, 3, 64, 64)).eval()
    images = natural_images((2, 3, 64, 64), seed=0)

    def largest_change(m: torch.nn.Module) -> float:
        with torch.inference_mode():
            base = m(images)
            return max(
                (m(torch.roll(images, s, dims=(-2, -1))) - base).abs().max().item()
                for s in ((1, 0), (0, 1), (1, 1))
            )

    before, after = largest_change(model), largest_change(fixed)
    assert before > 3 * after, (before, after)
