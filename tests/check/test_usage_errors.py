"""Every argument a user can get wrong raises EquivarianceUsageError naming it, with a remedy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from check_models import circular_net, pooled_classifier, strided_net
from pytest_equivariance.check.api import (
    check_equivariant,
    check_rotation_equivariant,
    check_rotation_invariant,
    check_shift_equivariant,
    check_shift_invariant,
)
from pytest_equivariance.errors import EquivarianceUsageError, InputShapeError

SHAPE = (1, 3, 16, 16)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"mode": "reflect"}, "mode='reflect'"),
        ({"max_shift": 0}, "max_shift=0"),
        ({"max_shift": -2}, "max_shift=-2"),
        ({"max_shift": 1.5}, "max_shift=1.5"),
        ({"shifts": [(1, 2, 3)]}, "shifts=(1, 2, 3)"),
        ({"shifts": [1]}, "shifts=1"),
        ({"shift": (1,)}, "shift=(1,)"),
        ({"shift": (1, 0), "shifts": [(0, 1)]}, "Both shift and shifts"),
        ({"shifts": []}, "shifts=[]"),
        ({"shifts": "1,2"}, "shifts='1,2'"),
        ({"trials": 0}, "trials=0"),
        ({"dims": (-3, -1)}, "dims=(-3, -1)"),
        ({"dims": (-1, -1)}, "repeats"),
        ({"dims": "hw"}, "dims='hw'"),
        ({"atol": -1.0}, "atol=-1.0"),
        ({"rtol": float("nan")}, "rtol=nan"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": "x"}, "seed='x'"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"localize": "yes"}, "localize='yes'"),
        ({"device": "tpu:7"}, "device='tpu:7'"),
        ({"min_consistency": 0.9}, "min_consistency"),
        ({"input_shape": (1, 3, 0, 16)}, "input_shape=(1, 3, 0, 16)"),
        ({"margin": -1}, "margin=-1"),
    ],
)
def test_bad_shift_arguments(kwargs, words):
    kwargs.setdefault("input_shape", SHAPE)
    with pytest.raises(EquivarianceUsageError) as info:
        check_shift_equivariant(circular_net(), **kwargs)
    message = str(info.value)
    assert words in message
    assert message.endswith(".")
    assert "pass" in message or "use" in message or "drop" in message


def test_off_lattice_shift_on_a_strided_output_is_a_usage_error():
    with pytest.raises(EquivarianceUsageError, match=r"does not map onto the output grid.*multiples of \(2, 2\)"):
        check_shift_equivariant(strided_net(), input_shape=SHAPE, shifts=[(2, 2), (1, 0)])


def test_max_shift_below_the_stride_is_a_usage_error():
    with pytest.raises(EquivarianceUsageError, match="max_shift=1 is smaller than the output stride 2"):
        check_shift_equivariant(strided_net(), input_shape=SHAPE, max_shift=1)


def test_cuda_device_without_cuda_is_a_usage_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(EquivarianceUsageError, match="device='cuda'"):
        check_shift_equivariant(circular_net(), input_shape=SHAPE, device="cuda")


def test_input_shape_the_model_rejects():
    with pytest.raises(EquivarianceUsageError, match=r"rejected inputs of shape \(N, 5, 16, 16\)") as info:
        check_shift_equivariant(circular_net(), input_shape=(1, 5, 16, 16))
    assert isinstance(info.value.__cause__, RuntimeError)  # nothing lost: the model's error is chained


def test_inputs_and_input_shape_together():
    with pytest.raises(EquivarianceUsageError, match="Both inputs and input_shape"):
        check_shift_equivariant(circular_net(), torch.zeros(SHAPE), input_shape=SHAPE)


def test_inputs_that_are_not_a_tensor():
    # A list is a list of batches: its first batch is named, and what it should have been.
    with pytest.raises(EquivarianceUsageError, match=r"needs the images of batch 0 of the inputs as a tensor, got float"):
        check_shift_equivariant(circular_net(), [[1.0]])
    with pytest.raises(EquivarianceUsageError, match="needs inputs as a tensor or an iterable of batches, got a str"):
        check_shift_equivariant(circular_net(), "images.pt")


def test_inputs_without_spatial_dims():
    with pytest.raises(InputShapeError, match="no spatial dims"):
        check_shift_equivariant(nn.Linear(3, 3), torch.zeros(2, 3))


def test_not_a_module():
    with pytest.raises(EquivarianceUsageError, match="not a torch.nn.Module"):
        check_shift_equivariant(lambda x: x, input_shape=SHAPE)


def test_nan_output_is_a_usage_error():
    class Broken(nn.Module):
        def forward(self, x):
            return x * float("nan")

    with pytest.raises(EquivarianceUsageError, match="NaN or inf"):
        check_shift_equivariant(Broken(), input_shape=SHAPE)


def test_inf_output_only_under_a_transform_is_a_usage_error():
    class InfAtCorner(nn.Module):
        def forward(self, x):
            return x + torch.where(x[..., :1, :1] > 0.5, torch.inf, 0.0)

    # Finite for the reference; the shift moves the bright pixel into the corner.
    x = torch.zeros(1, 1, 4, 4)
    x[..., 1, 1] = 1.0
    with pytest.raises(EquivarianceUsageError, match=r"NaN or inf for the input under shift"):
        check_shift_equivariant(InfAtCorner(), x, shifts=[(-1, -1)])


def test_equivariance_of_a_classifier_output_is_a_usage_error():
    with pytest.raises(EquivarianceUsageError, match="no spatial dims.*invariance check"):
        check_shift_equivariant(pooled_classifier(), input_shape=SHAPE)


def test_min_consistency_without_class_scores():
    with pytest.raises(EquivarianceUsageError, match="min_consistency needs classifier outputs"):
        check_shift_invariant(circular_net(), input_shape=SHAPE, min_consistency=0.9)


def test_output_size_not_a_fraction_of_the_input():
    model = nn.Conv2d(3, 3, 3)  # "valid" conv: 16 -> 14
    with pytest.raises(EquivarianceUsageError, match="not an integer fraction.*mode='crop'"):
        check_shift_equivariant(model, input_shape=SHAPE)


def test_crop_canvas_too_small():
    with pytest.raises(InputShapeError, match="leaves no crop"):
        check_shift_equivariant(circular_net(), torch.zeros(1, 3, 8, 8), mode="crop", max_shift=4)


def test_zero_mode_with_nothing_left_to_compare():
    with pytest.raises(EquivarianceUsageError, match="Nothing is left to compare"):
        check_shift_equivariant(circular_net(padding_mode="zeros"), input_shape=(1, 3, 8, 8), mode="zero", shifts=[(6, 0)])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"mode": "circular"}, "mode='circular'"),
        ({"angles": [45]}, "not a multiple of 90"),
        ({"angle": 30.0}, "mode='interp'"),
        ({"angles": ["twist"]}, "'twist'"),
        ({"angles": [float("inf")]}, "inf"),
        ({"angles": []}, "angles=[]"),
        ({"angle": 90, "angles": [180]}, "Both angle and angles"),
        ({"dims": (-1,)}, "not a plane"),
        ({"trials": -3}, "trials=-3"),
    ],
)
def test_bad_rotation_arguments(kwargs, words):
    with pytest.raises(EquivarianceUsageError) as info:
        check_rotation_equivariant(circular_net(), input_shape=SHAPE, **kwargs)
    assert words in str(info.value)


def test_rotation_of_1d_inputs():
    with pytest.raises(EquivarianceUsageError, match="two spatial dims"):
        check_rotation_invariant(circular_net(ndim=1), input_shape=(1, 3, 16))


@pytest.mark.parametrize(
    "transforms, words",
    [([], "transforms is empty"), ([lambda x: x], "not an (input_fn, output_fn) pair"), ([(abs, 3)], "not callable")],
)
def test_bad_custom_transforms(transforms, words):
    with pytest.raises(EquivarianceUsageError) as info:
        check_equivariant(circular_net(), torch.zeros(SHAPE), transforms)
    assert words in str(info.value)


def test_checks_print_no_warning_of_torch_in_a_fresh_process():
    # torch warns about torch.jit.script when forward-mode AD first loads its decompositions; a
    # failing check (attribution) and the Lie derivative must not pass that on to the user.
    import subprocess
    import sys

    script = (
        "import torch\n"
        "from pytest_equivariance import attribute, check_shift_invariant, lie_derivative\n"
        "m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))\n"
        "assert not check_shift_invariant(m, input_shape=(2, 3, 16, 16)).passed\n"
        "lie_derivative(m, torch.randn(1, 3, 16, 16), ['translate_x'])\n"
        "attribute(m, torch.randn(1, 3, 16, 16))\n"
    )
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
