"""Bad input to the public entries ends in one EquivarianceUsageError sentence: no torch error, no
wrong verdict, no allocation of a size that cannot fit."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import pytest_equivariance as pe
from pytest_equivariance import EquivarianceUsageError
from pytest_equivariance.check.transforms import shift


def circular_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular").eval()


class ReturnsNone(nn.Module):
    def forward(self, x):
        return None


class ReturnsIntegers(nn.Module):
    def forward(self, x):
        return (x > 0).long()


class RegularOutput(nn.Module):
    """Four output channels, each a rotation-equivariant scalar map of the input, but distinct.

    As scalar fields the output is exactly C4-equivariant (isotropic kernels, circular padding); as
    one regular field it is not, since a quarter turn would have to permute the channels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular", bias=False)
        with torch.no_grad():
            ring = torch.tensor([[1.0, 2.0, 1.0], [2.0, 0.0, 2.0], [1.0, 2.0, 1.0]])  # unchanged by rot90
            centre = torch.zeros(3, 3)
            centre[1, 1] = 1.0
            for c in range(4):
                self.conv.weight[c] = ring * (c + 1) + centre * 3 * c

    def forward(self, x):
        return {"y": self.conv(x)}


def one_sentence(error: pytest.ExceptionInfo[EquivarianceUsageError]) -> str:
    text = str(error.value)
    assert "\n" not in text and text.endswith("."), text
    assert error.value.__class__.__module__.startswith("pytest_equivariance"), error.value
    return text


# -- empty and meta tensors -------------------------------------------------------------------------

EMPTY = torch.randn(0, 3, 16, 16)
ENTRIES = {
    "check_shift_equivariant": lambda m, x: pe.check_shift_equivariant(m, x),
    "check_shift_invariant": lambda m, x: pe.check_shift_invariant(m, x),
    "check_rotation_equivariant": lambda m, x: pe.check_rotation_equivariant(m, x),
    "check_rotation_invariant": lambda m, x: pe.check_rotation_invariant(m, x),
    "lie_derivative": lambda m, x: pe.lie_derivative(m, x, "translate_x"),
    "attribute": lambda m, x: pe.attribute(m, x, "translate_x"),
    "localize": lambda m, x: pe.localize(m, x, shift((1, 1), (-2, -1)), equivariant=True),
}


@pytest.mark.parametrize("entry", ENTRIES)
def test_an_empty_batch_is_a_usage_error_not_a_pass(entry):
    with pytest.raises(EquivarianceUsageError) as error:
        ENTRIES[entry](circular_net(), EMPTY)
    text = one_sentence(error)
    assert text.startswith(entry) and "empty batch" in text


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_model_on_the_meta_device_is_a_usage_error(entry):
    with pytest.raises(EquivarianceUsageError, match="meta device") as error:
        ENTRIES[entry](circular_net().to("meta"), torch.randn(2, 3, 16, 16))
    assert "weight" in one_sentence(error)


@pytest.mark.parametrize("entry", ENTRIES)
def test_inputs_on_the_meta_device_are_a_usage_error(entry):
    # lie_derivative used to return a meta tensor here, silently.
    with pytest.raises(EquivarianceUsageError, match="inputs on the meta device") as error:
        ENTRIES[entry](circular_net(), torch.randn(2, 3, 16, 16, device="meta"))
    one_sentence(error)


def test_linting_a_meta_model_still_works():
    report = pe.lint_model(nn.Sequential(nn.Conv2d(3, 4, 3, stride=2)).to("meta"), (1, 3, 16, 16))
    assert [f.code for f in report.findings] == ["EQ002"] and not report.errors


# -- sizes are bounded before anything is allocated -------------------------------------------------


def test_a_crop_canvas_larger_than_memory_is_refused_before_allocating():
    with pytest.raises(EquivarianceUsageError, match=r"max_shift=100000 .*canvas.* pass a smaller max_shift") as error:
        pe.check_shift_equivariant(circular_net(), input_shape=(2, 3, 16, 16), mode="crop", max_shift=10**5)
    one_sentence(error)


def test_an_input_shape_larger_than_memory_is_refused_before_allocating():
    with pytest.raises(EquivarianceUsageError, match=r"input_shape=\(1000000, 3, 1024, 1024\) needs 12.6 TB"):
        pe.check_shift_invariant(circular_net(), input_shape=(10**6, 3, 1024, 1024))


@pytest.mark.parametrize("check", [pe.check_shift_equivariant, pe.check_rotation_invariant])
def test_trials_are_bounded(check):
    with pytest.raises(EquivarianceUsageError, match="up to 10000"):
        check(circular_net(), input_shape=(1, 3, 8, 8), trials=10**9)


def test_a_group_of_a_billion_rotations_is_refused():
    with pytest.raises(EquivarianceUsageError, match="between 2 and 10000"):
        pe.check_rotation_equivariant(circular_net(), input_shape=(1, 3, 8, 8), group="C1000000000")


# -- names that name nothing are errors, never defaults ---------------------------------------------


def test_an_output_fields_key_that_names_no_output_is_an_error_not_a_pass():
    model = RegularOutput()
    # With the right key the model fails, so falling back to scalar fields was a wrong verdict.
    right = pe.check_rotation_equivariant(model, input_shape=(2, 3, 16, 16), group="C4", output_fields={"y": "regular"})
    assert not right.passed
    assert pe.check_rotation_equivariant(model, input_shape=(2, 3, 16, 16), group="C4").passed
    with pytest.raises(EquivarianceUsageError, match=r"names the output 'Y'.*\['y'\]") as error:
        pe.check_rotation_equivariant(model, input_shape=(2, 3, 16, 16), group="C4", output_fields={"Y": "regular"})
    one_sentence(error)


@pytest.mark.parametrize("entry", [pe.lie_derivative, pe.attribute])
@pytest.mark.parametrize("generator", [42, None, ["translate_x", 3], b"rotate"])
def test_a_generator_that_is_not_a_name_is_a_usage_error(entry, generator):
    with pytest.raises(EquivarianceUsageError, match="generator=") as error:
        entry(circular_net(), torch.randn(1, 3, 8, 8), generator)
    assert one_sentence(error).startswith(entry.__name__)


# -- models without a float output ------------------------------------------------------------------


@pytest.mark.parametrize("entry", [pe.lie_derivative, pe.attribute])
@pytest.mark.parametrize(("model", "said"), [(ReturnsNone, "returned None"), (ReturnsIntegers, "tensor of int64")])
def test_a_model_without_a_float_output_is_named_as_such(entry, model, said):
    # Not "cannot be differentiated in forward mode", and never a profile that reads as exact.
    with pytest.raises(EquivarianceUsageError, match=said) as error:
        entry(model(), torch.randn(2, 3, 8, 8), ["translate_x", "rotate"])
    text = one_sentence(error)
    assert text.startswith(entry.__name__) and "forward mode" not in text


# -- the linter and the model rewrite ----------------------------------------------------------------


@pytest.mark.parametrize("example", ["a,b", (-1, 3, 4, 4), (1, 3, 0, 4), 3.5, [torch.zeros(1), "x"], (True, 3)])
def test_lint_model_refuses_what_is_neither_a_shape_nor_tensors(example):
    with pytest.raises(EquivarianceUsageError, match="example_input_or_shape=") as error:
        pe.lint_model(circular_net(), example)
    one_sentence(error)


@pytest.mark.parametrize(("keyword", "value", "said"), [
    ("skip", 5, "skip=5"), ("skip", [1], "skip=[1]"), ("inplace", "yes", "inplace='yes'"),
    ("example_input", "1,3,8,8", "example_input="),
])
def test_antialias_refuses_bad_arguments(keyword, value, said):
    with pytest.raises(EquivarianceUsageError, match=re.escape(said)) as error:
        pe.antialias(circular_net(), **{keyword: value})
    one_sentence(error)


def test_a_model_class_instead_of_an_instance_is_named():
    for entry in (lambda m: pe.check_shift_equivariant(m, input_shape=(1, 3, 8, 8)), pe.lint_model, pe.antialias,
                  lambda m: pe.lie_derivative(m, torch.randn(1, 3, 8, 8), "rotate")):
        with pytest.raises(EquivarianceUsageError, match="got the class Conv2d, not an instance of it"):
            entry(nn.Conv2d)
