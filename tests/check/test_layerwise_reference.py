"""attribute() ranks layers as the reference's layer-wise estimator does (Gruver et al. 2023).

The reference (``layerwise_reference.py``, ported with its licence) estimates each leaf module's
``‖J_{k→out} L_k‖²`` of the softmax output from 100 random probes; attribute() computes the same
terms exactly with ``method="bilinear"``, the reference's local definition. Rankings are compared
over the layers both give a non-zero value: random-init timm resnets zero the last batch norm of
each block, which makes the terms of whole branches exactly zero in both.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optional import require
from pytest_equivariance import attribute
from pytest_equivariance.inputs import natural_images
from pytest_equivariance.seeding import seeded

pytestmark = pytest.mark.zoo


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    for rank, index in enumerate(order):
        out[index] = float(rank)
    return out


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return cov / (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5


def test_spearman_of_a_known_ranking() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def _build(source: str) -> nn.Module:
    if source == "timm":
        timm = require("timm")
        return timm.create_model("resnet18", pretrained=False)
    torchvision = require("torchvision")
    return torchvision.models.resnet18(weights=None)


@pytest.mark.parametrize("source", ["torchvision", "timm"])
# The reference registers non-full backward hooks (register_backward_hook), whose grad_input its
# estimator reads; a full hook passes other gradients, so the port keeps them and torch's
# deprecation warning about them is silenced here, for this test only.
@pytest.mark.filterwarnings("ignore:Using a non-full backward hook when the forward contains multiple:FutureWarning")
def test_ranking_agrees_with_the_reference_estimator(source: str) -> None:
    import layerwise_reference as reference

    with seeded(0):
        model = _build(source).eval()
    # The reference's forward hooks would read inputs already overwritten by in-place activations.
    for module in model.modules():
        if getattr(module, "inplace", None) is True:
            module.inplace = False
    x = natural_images((4, 3, 64, 64))
    handles = reference.apply_hooks(model, "translation")
    try:
        estimates = reference.compute_equivariance_attribution(
            model, x, num_probes=100, generator=torch.Generator().manual_seed(0)
        )
    finally:
        for handle in handles:
            handle.remove()
    theirs = {}
    for (name, _, _, call), probes in estimates.items():
        base = name[: len(name) - len(str(call))] if call else name
        theirs[(base, call)] = sum(float(p.mean()) for p in probes) / len(probes)

    profile = attribute(nn.Sequential(model, nn.Softmax(dim=1)), x, "translate_x", method="bilinear")
    ours, calls = {}, {}
    for layer in profile.layers:
        name = layer.qualname.removeprefix("0.")
        calls[name] = calls.get(name, -1) + 1
        ours[(name, calls[name])] = layer.share

    both = [key for key in theirs if theirs[key] > 0 and ours.get(key, 0) > 0]
    assert len(both) >= 10
    assert spearman([theirs[k] for k in both], [ours[k] for k in both]) >= 0.8
    assert max(both, key=theirs.__getitem__) == max(both, key=ours.__getitem__)
    # What the reference calls exactly zero, attribute() does too.
    assert all(ours.get(key, 0) == 0 for key, value in theirs.items() if value == 0)
