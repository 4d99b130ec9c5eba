"""Lie derivatives: spectral ones against band-limited finite differences, bilinear ones against the reference."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lie_reference as reference
from optional import require
from pytest_equivariance import lie_derivative
from pytest_equivariance.check.lie import GENERATORS, spectral_generator
from pytest_equivariance.check.resample import fourier_shift
from pytest_equivariance.check.transforms import disk_mask, rotate
from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.inputs import natural_images

timm = require("timm")
torchvision = require("torchvision")


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _exp(name: str, x: torch.Tensor, h: float, terms: int = 8) -> torch.Tensor:
    """exp(h G) x by its series: the band-limited transform by h along the generator."""
    out, term = x.clone(), x.clone()
    for k in range(1, terms):
        term = spectral_generator(name, term) * (h / k)
        out = out + term
    return out


def _classifier(kind: str) -> nn.Module:
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10) if kind == "timm" else torchvision.models.resnet18(num_classes=10)
    return model.double().eval()


@pytest.mark.parametrize("kind", ["timm", "torchvision"])
def test_spectral_derivatives_equal_band_limited_central_differences(kind, images):
    model = _classifier(kind)
    lie = lie_derivative(model, images, list(GENERATORS))
    assert set(lie) == set(GENERATORS)
    for name, derivative in lie.items():
        # A step small enough that no ReLU or max pool switches between the two sides.
        h = 1e-7 * float(images.norm() / spectral_generator(name, images).norm())
        with torch.no_grad():
            difference = (model(_exp(name, images, h)) - model(_exp(name, images, -h))) / (2 * h)
        assert derivative.shape == (2, 10)
        assert float((derivative - difference).norm() / difference.norm()) <= 1e-4, name


def _circular(relu: bool) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"), nn.Conv2d(8, 4, 5, padding=2, padding_mode="circular")]
    if relu:
        layers.insert(1, nn.ReLU())
    return nn.Sequential(*layers).double()


@pytest.mark.parametrize("name", ["translate_x", "translate_y"])
def test_a_linear_circular_network_has_a_zero_translation_derivative_and_a_relu_breaks_it(name, images):
    for relu, bound in ((False, 1e-9), (True, None)):
        model = _circular(relu)
        derivative = lie_derivative(model, images, name)  # an image output: compared transformed back
        with torch.no_grad():
            pushed = torch.func.jvp(model, (images,), (spectral_generator(name, images),))[1]
        relative = float(derivative.norm() / pushed.norm())
        if bound is not None:
            assert relative <= bound
        else:
            assert relative > 1e-2  # the nonlinearity aliases: no integer shift shows it


def test_output_can_be_forced(images):
    model = _circular(False)
    invariant = lie_derivative(model, images, "translate_x", output="invariant")
    assert float(invariant.abs().max()) > 1e-3  # the feature map moves with the input
    with pytest.raises(EquivarianceUsageError, match="output='equivariant' needs image outputs"):
        lie_derivative(_classifier("timm"), images, "rotate", output="equivariant")


@pytest.mark.parametrize("factory", ["timm_resnet", "vit"])
def test_bilinear_matches_the_reference_code(factory, images):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the reference builds its affine matrices in the default dtype
    try:
        torch.manual_seed(0)
        if factory == "vit":
            timm.layers.set_fused_attn(False)  # fused attention has no double backward for the reference
            model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, num_classes=10)
        else:
            model = timm.create_model("resnet18", num_classes=10)
        model = model.double().eval()
        theirs = {
            "translate_x": reference.translation_lie_deriv(model, images, "x") * (-2 / 31),
            "translate_y": reference.translation_lie_deriv(model, images, "y") * (-2 / 31),
            "rotate": -reference.rotation_lie_deriv(model, images),
            "scale": reference.scale_lie_deriv(model, images),
        }
        ours = lie_derivative(model, images, list(theirs), method="bilinear")
    finally:
        torch.set_default_dtype(previous)
        timm.layers.set_fused_attn(True)
    for name, value in theirs.items():
        value = value.detach()
        assert float((ours[name] - value).norm() / value.norm()) <= 1e-6, name


def test_bilinear_equivariant_outputs_match_the_reference(images):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1)).double()
        theirs = reference.translation_lie_deriv(model, images, "x").detach() * (-2 / 31)
        ours = lie_derivative(model, images, "translate_x", method="bilinear")
    finally:
        torch.set_default_dtype(previous)
    assert float((ours - theirs).norm() / theirs.norm()) <= 1e-6


def test_conventions_translation_moves_content_toward_plus_w_per_pixel():
    x = natural_images((1, 1, 32, 32), seed=3, dtype=torch.float64)
    identity = nn.Identity()
    derivative = lie_derivative(identity, x, "translate_x", output="invariant")
    h = 1e-4
    difference = (fourier_shift(x, (0, h), (-2, -1)) - fourier_shift(x, (0, -h), (-2, -1))) / (2 * h)
    assert torch.allclose(derivative, difference, atol=1e-6 * float(difference.abs().max()))
    moved = lie_derivative(identity, x, "translate_y", output="invariant")
    difference = (fourier_shift(x, (h, 0), (-2, -1)) - fourier_shift(x, (-h, 0), (-2, -1))) / (2 * h)
    assert torch.allclose(moved, difference, atol=1e-6 * float(difference.abs().max()))


def test_conventions_rotation_is_counterclockwise_per_radian():
    # The checks' own rotation (counterclockwise as displayed, like torch.rot90(k=1)) by a small angle.
    x = natural_images((1, 1, 33, 33), seed=4, dtype=torch.float64, exponent=2.0)
    x = x * disk_mask(x.shape, (-2, -1), dtype=x.dtype, device=x.device)
    derivative = lie_derivative(nn.Identity(), x, "rotate", output="invariant")
    degrees = 1.0
    difference = (rotate(x, degrees, (-2, -1)) - rotate(x, -degrees, (-2, -1))) / (2 * math.radians(degrees))
    inside = disk_mask(x.shape, (-2, -1), dtype=x.dtype, device=x.device, margin=4).bool()
    cosine = torch.nn.functional.cosine_similarity(derivative[inside], difference[inside], dim=0)
    assert float(cosine) > 0.85  # the same direction (the other would give about -0.9); bilinear resampling blurs
    ratio = float(derivative[inside].norm() / difference[inside].norm())
    assert 0.8 < ratio < 1.25  # and per radian


def test_bad_arguments_end_in_one_sentence(images):
    model = _circular(False)
    cases = [
        (images.long(), "translate_x", "needs floating-point inputs"),
        (images[0], "translate_x", "acts on images of shape (N, C, H, W), got (3, 32, 32)"),
        (images, "shear", "Unknown generator 'shear'; use one of translate_x, translate_y, rotate, scale"),
        (images, ["rotate", "rotate"], "repeat one"),
    ]
    for inputs, generator, message in cases:
        with pytest.raises(EquivarianceUsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            lie_derivative(model, inputs, generator)
    with pytest.raises(EquivarianceUsageError, match="Unknown method 'exact'"):
        lie_derivative(model, images, "rotate", method="exact")


class _NoForwardAD(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


def test_an_op_without_forward_mode_ad_is_named(images):
    class Net(nn.Module):
        def forward(self, x):
            return _NoForwardAD.apply(x).mean((2, 3))

    with pytest.raises(EquivarianceUsageError, match=r"cannot be differentiated in forward mode \(.*\); .*shifts=\[\(0, 0.5\)\]"):
        lie_derivative(Net(), images, "translate_x")


def test_the_model_runs_in_eval_mode_and_is_restored(images):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten()).double().train()
    a = lie_derivative(model, images, "translate_x")
    b = lie_derivative(model, images, "translate_x", batch_size=1)
    assert torch.allclose(a, b)  # dropout off, and chunking does not change the figures
    assert model.training
