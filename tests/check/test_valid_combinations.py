"""Every documented combination of arguments runs: a result, or one usage-error sentence, never a crash.

The fuzz tests throw *bad* arguments at each entry; this throws *valid* ones, combined: each check
kind × mode × ``subpixel`` × ``measure`` × dims × dtype × 1-, 2- and 3-D inputs × models that keep
the grid, downsample (a strided conv) or pool it away, with tensors and loaders as inputs. A
combination the docs allow must give a result; one that cannot be defined (sub-pixel shifts in
zero mode, say) must be refused with an ``EquivarianceUsageError`` — nothing else may escape.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from pytest_equivariance import (
    CheckResult,
    EquivarianceUsageError,
    attribute,
    check_rotation_equivariant,
    check_rotation_invariant,
    check_shift_equivariant,
    check_shift_invariant,
    lie_derivative,
)

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
SIZE = {1: (16,), 2: (8, 8), 3: (4, 8, 8)}


def model(nd: int, kind: str, invariant: bool) -> nn.Module:
    """A tiny circular network on ``nd``-D inputs: ``"same"`` grid, ``"strided"`` (stride 2) or ``"pooled"``."""
    torch.manual_seed(0)
    conv = CONV[nd]
    layers: list[nn.Module] = [conv(2, 3, 3, padding=1, padding_mode="circular"), nn.ReLU()]
    if kind == "strided":
        layers.append(conv(3, 3, 3, stride=2, padding=1, padding_mode="circular"))
    if kind == "pooled" or invariant:
        layers += [nn.Flatten(2), _Mean(), nn.Linear(3, 4)]
    return nn.Sequential(*layers).eval()


class _Mean(nn.Module):
    def forward(self, x):
        return x.mean(-1)


@st.composite
def calls(draw):
    nd = draw(st.sampled_from([1, 2, 3]))
    family = draw(st.sampled_from(["shift", "rotation"] if nd >= 2 else ["shift"]))
    invariant = draw(st.booleans())
    # A pooled output has nothing to shift back: equivariance checks get the spatial models only.
    shape_kind = draw(st.sampled_from(["same", "strided", "pooled"] if invariant else ["same", "strided"]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    kwargs: dict = {"trials": 2, "localize": draw(st.sampled_from([False, None])), "seed": draw(st.integers(0, 3))}
    spatial = SIZE[nd]
    if family == "shift":
        kwargs["mode"] = draw(st.sampled_from(["circular", "crop", "zero"]))
        kwargs["subpixel"] = draw(st.booleans())
        kwargs["measure"] = draw(st.sampled_from(["error", "lie"])) if nd == 2 else "error"
        if draw(st.booleans()):
            kwargs["dims"] = draw(st.sampled_from([-1, tuple(range(-min(nd, 2), 0))]))
        kwargs["max_shift"] = draw(st.integers(1, 4))
    else:
        kwargs["mode"] = draw(st.sampled_from(["exact", "interp"]))
        if nd == 3:
            kwargs["dims"] = (-2, -1)
        if draw(st.booleans()) and kwargs["mode"] == "exact":
            kwargs["group"] = draw(st.sampled_from(["C4", "D4", "C2"]))
    if draw(st.booleans()):
        kwargs["min_psnr"] = 20.0
    inputs_kind = draw(st.sampled_from(["shape", "tensor", "loader"]))
    return nd, family, invariant, shape_kind, dtype, kwargs, spatial, inputs_kind


#: What a valid-looking draw may still be refused for, because it cannot be defined: the beginning of
#: each sentence (any other refusal of a documented combination is a defect).
UNDEFINED = (
    "Sub-pixel shifts need mode='circular'",  # zero mode shifts whole pixels of zeros in
    "Sub-pixel shifts of an equivariant output need mode='circular'",  # a crop's output is not periodic
    "max_shift=1 is smaller than the output stride",  # no shift maps onto a strided output's grid
    "Nothing is left to compare in output",  # the border margin covers a tiny output
    "In crop mode the inputs are the canvas",  # the canvas leaves no crop of a tiny input
    "measure='lie' differentiates along the image plane",  # Lie derivatives need (H, W)
)

ENTRIES = {
    ("shift", False): check_shift_equivariant,
    ("shift", True): check_shift_invariant,
    ("rotation", False): check_rotation_equivariant,
    ("rotation", True): check_rotation_invariant,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls())
def test_valid_combinations_give_a_result_or_a_usage_error(call):
    nd, family, invariant, shape_kind, dtype, kwargs, spatial, inputs_kind = call
    net = model(nd, shape_kind, invariant).to(dtype)
    x = torch.randn(3, 2, *spatial, dtype=dtype, generator=torch.Generator().manual_seed(1))
    if inputs_kind == "shape" and dtype == torch.float32:  # generated inputs are float32
        args, kwargs = (), {**kwargs, "input_shape": tuple(x.shape)}
    elif inputs_kind == "loader":
        args = ([x[:2], x[2:]],)  # a list of batches: the streaming path
    else:
        args = (x,)
    entry = ENTRIES[(family, invariant)]
    try:
        result = entry(net, *args, **kwargs)
    except EquivarianceUsageError as error:
        message = str(error)
        other = "rotation" if family == "shift" else "shift "
        assert other not in message, message  # the sentence speaks of the check that was called
        assert message.startswith(UNDEFINED), message  # a documented combination refused: a defect
        return
    assert isinstance(result, CheckResult)
    assert result.trials, kwargs


@pytest.mark.parametrize("nd", [2])
@pytest.mark.parametrize("shape_kind", ["same", "strided", "pooled"])
def test_lie_derivative_and_attribute_take_every_model_shape(nd, shape_kind):
    net = model(nd, shape_kind, invariant=False)
    x = torch.randn(2, 2, *SIZE[nd], generator=torch.Generator().manual_seed(1))
    for call in (lambda: lie_derivative(net, x, ["translate_x", "rotate"]), lambda: attribute(net, x, "translate_x")):
        try:
            call()
        except EquivarianceUsageError as error:
            assert str(error).strip()
