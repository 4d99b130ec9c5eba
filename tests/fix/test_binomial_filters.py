"""Binomial filters: normalisation, frequency response, functional blur pooling."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.layers.filters import (
    binomial_coefficients,
    binomial_filter,
    blur_padding,
    blur_pool1d,
    blur_pool2d,
    blur_pool3d,
)


def response(taps: list[float], omega: float) -> complex:
    """Discrete-time Fourier transform of the taps at angular frequency ``omega``."""
    return sum(t * complex(math.cos(-omega * n), math.sin(-omega * n)) for n, t in enumerate(taps))


@pytest.mark.parametrize("size", range(1, 8))
def test_dc_gain_is_one(size: int) -> None:
    assert abs(response(binomial_coefficients(size), 0.0) - 1) < 1e-12


@pytest.mark.parametrize("size", range(2, 8))
def test_zero_at_nyquist(size: int) -> None:
    assert abs(response(binomial_coefficients(size), math.pi)) < 1e-12


def test_size_one_is_no_blur() -> None:
    # Size 1 is plain subsampling (for ablations): it passes Nyquist unattenuated.
    assert binomial_coefficients(1) == [1.0]
    assert abs(response([1.0], math.pi)) == pytest.approx(1.0)


@pytest.mark.parametrize("size", range(2, 8))
def test_response_is_monotone_low_pass(size: int) -> None:
    # |H(w)| = cos(w/2)^(size-1): decreasing from 1 at DC to 0 at Nyquist.
    taps = binomial_coefficients(size)
    omegas = [math.pi * k / 16 for k in range(17)]
    mags = [abs(response(taps, w)) for w in omegas]
    assert all(a >= b - 1e-12 for a, b in zip(mags, mags[1:]))
    for w, m in zip(omegas, mags):
        assert m == pytest.approx(math.cos(w / 2) ** (size - 1), abs=1e-12)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("size", [2, 3, 5, 7])
def test_nd_filter_sums_to_one_and_kills_nyquist(ndim: int, size: int) -> None:
    f = binomial_filter(size, ndim, dtype=torch.float64)
    assert f.shape == (size,) * ndim
    assert f.sum().item() == pytest.approx(1.0)
    assert (f >= 0).all()
    spectrum = torch.fft.fftn(f, s=(8,) * ndim).abs()
    assert spectrum[(0,) * ndim].item() == pytest.approx(1.0)
    # Zero response wherever any axis sits at Nyquist (index 4 of 8).
    for axis in range(ndim):
        assert spectrum.select(axis, 4).abs().max().item() < 1e-12


def test_blur_of_nyquist_signal_is_zero_and_of_constant_is_constant() -> None:
    alternating = (torch.arange(16.0) % 2 * 2 - 1).expand(1, 2, 16, 16) * (
        torch.arange(16.0) % 2 * 2 - 1
    ).view(16, 1)
    out = blur_pool2d(alternating.contiguous(), stride=1, padding_mode="circular")
    assert out.abs().max().item() < 1e-6
    const = torch.full((1, 2, 9, 9), 3.0)
    for mode in ("reflect", "replicate", "circular"):
        assert torch.allclose(blur_pool2d(const, stride=2, padding_mode=mode), torch.full((1, 2, 5, 5), 3.0))


@pytest.mark.parametrize("size", range(1, 8))
@pytest.mark.parametrize("n", [7, 8, 9, 16])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_output_length_is_ceil(size: int, n: int, stride: int) -> None:
    out = blur_pool1d(torch.randn(1, 3, n), stride=stride, filter_size=size)
    assert out.shape == (1, 3, math.ceil(n / stride))


def test_even_sizes_pad_extra_on_the_right() -> None:
    assert blur_padding(4, 2) == [1, 2, 1, 2]
    assert blur_padding(3, 1) == [1, 1]


def test_functional_3d_shape() -> None:
    assert blur_pool3d(torch.randn(2, 3, 5, 8, 9), stride=2).shape == (2, 3, 3, 4, 5)


@pytest.mark.parametrize(
    "kwargs",
    [{"filter_size": 0}, {"filter_size": 8}, {"padding_mode": "mirror"}, {"stride": 0}],
)
def test_bad_arguments_are_usage_errors(kwargs: dict) -> None:
    with pytest.raises(EquivarianceUsageError, match="use"):
        blur_pool2d(torch.randn(1, 1, 8, 8), **kwargs)


def test_wrong_rank_is_a_usage_error() -> None:
    with pytest.raises(EquivarianceUsageError, match="batch"):
        blur_pool2d(torch.randn(3, 8, 8))


def test_reflect_falls_back_to_replicate_on_tiny_maps() -> None:
    x = torch.randn(1, 2, 1, 1)
    assert torch.allclose(blur_pool2d(x, 2, 5, "reflect"), x)
