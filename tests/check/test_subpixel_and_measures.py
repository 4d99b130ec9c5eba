"""Sub-pixel shifts, PSNR, all-shift consistency and measure="lie" in the checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from check_models import CORNER_SHIFTS, CornerClassifier, corner_images
from pytest_equivariance import check_rotation_invariant, check_shift_equivariant, check_shift_invariant
from pytest_equivariance.check.resample import fourier_shift, spectral_derivative
from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.report.html import render_html
from pytest_equivariance.report.terminal import failure_report, render

SHAPE = (2, 3, 32, 32)


def _circular(relu: bool, stride: int = 1) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"),
              nn.Conv2d(8, 4, 5, stride=stride, padding=2, padding_mode="circular")]
    if relu:
        layers.insert(1, nn.ReLU())
    return nn.Sequential(*layers)


class _LowPassDecimate(nn.Module):
    """Keep frequencies below a quarter of the sampling rate, then take every second pixel."""

    def forward(self, x):
        spectrum = torch.fft.fft2(x)
        fy = torch.fft.fftfreq(x.shape[-2]).abs()[:, None]
        fx = torch.fft.fftfreq(x.shape[-1]).abs()[None, :]
        low = torch.fft.ifft2(spectrum * ((fy < 0.25) & (fx < 0.25))).real
        return low[..., ::2, ::2]


def test_fourier_shift_is_roll_for_integers_and_composes():
    x = torch.randn(1, 2, 9, 11, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(fourier_shift(x, (2, -3), (-2, -1)), torch.roll(x, (2, -3), (-2, -1)))
    halves = fourier_shift(fourier_shift(x, (0.5, 0.25), (-2, -1)), (0.5, 0.75), (-2, -1))
    assert torch.allclose(halves, torch.roll(x, (1, 1), (-2, -1)), atol=1e-12)
    # Even sizes: the Nyquist bin's sign is ambiguous, so a half shift keeps only its real part;
    # signals without energy there compose exactly.
    even = fourier_shift(torch.randn(1, 1, 8, 8, dtype=torch.float64), (0.5, 0), (-2, -1))
    assert torch.allclose(fourier_shift(fourier_shift(even, (0.25, 0), (-2, -1)), (0.75, 0), (-2, -1)),
                          torch.roll(even, (1, 0), (-2, -1)), atol=1e-12)
    assert fourier_shift(x, (0.3, 0), (-2, -1)).dtype == x.dtype


def test_spectral_derivative_of_a_sine():
    n = 16
    u = torch.arange(n, dtype=torch.float64)
    x = torch.sin(2 * math.pi * 3 * u / n)
    assert torch.allclose(spectral_derivative(x, -1), 2 * math.pi * 3 / n * torch.cos(2 * math.pi * 3 * u / n),
                          atol=1e-12)


def test_a_linear_circular_network_passes_fractional_shifts_and_a_relu_fails_them():
    linear = check_shift_equivariant(_circular(False), input_shape=SHAPE, subpixel=True, trials=8, localize=False)
    assert linear.passed, linear.worst
    assert any(not float(d).is_integer() for t in linear.trials for d in t.params["shift"])
    assert linear.trials[0].transform == "shift (dy=+0.5, dx=+0)"
    nonlinear = check_shift_equivariant(_circular(True), input_shape=SHAPE, subpixel=True, trials=8, localize=False)
    assert not nonlinear.passed
    whole = check_shift_equivariant(_circular(True), input_shape=SHAPE, trials=8, localize=False)
    assert whole.passed  # every integer shift commutes exactly: only sub-pixel shifts show the aliasing


def test_explicit_fractional_shifts_and_strided_outputs():
    result = check_shift_equivariant(_circular(False), input_shape=SHAPE, shifts=[(0, 0.5), (0.25, -1.5)],
                                     localize=False)
    assert result.passed and [t.params["shift"] for t in result.trials] == [[0, 0.5], [0.25, -1.5]]
    # On a stride-2 output a half-pixel input shift is a quarter of an output pixel: exact for a
    # model that band-limits below the output's Nyquist frequency before subsampling ...
    strided = check_shift_equivariant(_LowPassDecimate(), input_shape=SHAPE, shifts=[(0, 0.5), (0.5, 2)],
                                      localize=False)
    assert strided.passed, strided.worst
    assert strided.lattice == (2, 2)
    # ... and not for a strided conv, which aliases between its lattice points.
    assert not check_shift_equivariant(_circular(False, stride=2), input_shape=SHAPE, shifts=[(0, 0.5)],
                                       localize=False).passed


def test_drawn_sub_pixel_shifts_act_on_a_strided_output_as_fractions_of_its_pixels():
    # A drawn shift such as (dy=-3, dx=0.25) has a whole-pixel entry off the stride-2 lattice: being
    # band-limited, it moves the output by (-1.5, 0.125) output pixels, which the ideal decimator does.
    ideal = check_shift_equivariant(_LowPassDecimate(), input_shape=SHAPE, subpixel=True, localize=False)
    assert ideal.passed and ideal.lattice == (2, 2), ideal.worst
    odd = check_shift_equivariant(_LowPassDecimate(), input_shape=SHAPE, shifts=[(1, 0.5), (-3, 0.25)], localize=False)
    assert odd.passed, odd.worst
    # A strided conv aliases: figures, not a crash.
    strided = check_shift_equivariant(_circular(False, stride=2), input_shape=SHAPE, subpixel=True, localize=False)
    assert not strided.passed and strided.worst_error > 0.1 and strided.lattice == (2, 2)
    # Whole-pixel shifts off the lattice are still refused: they cannot commute with a strided output.
    with pytest.raises(EquivarianceUsageError, match="does not map onto the output grid"):
        check_shift_equivariant(_LowPassDecimate(), input_shape=SHAPE, shifts=[(1, 0)])


def test_sub_pixel_shifts_need_a_mode_that_can_make_them():
    with pytest.raises(EquivarianceUsageError, match="Sub-pixel shifts need mode='circular'"):
        check_shift_equivariant(_circular(False), input_shape=SHAPE, shifts=[(0, 0.5)], mode="zero")
    with pytest.raises(EquivarianceUsageError, match="a crop's output is not periodic"):
        check_shift_equivariant(_circular(False), input_shape=SHAPE, subpixel=True, mode="crop")
    pooled = nn.Sequential(_circular(False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    crop = check_shift_invariant(pooled, input_shape=SHAPE, shifts=[(0, 0.5)], mode="crop", atol=1.0, localize=False)
    assert crop.trials[0].params["shift"] == [0, 0.5] and "crop mode" in crop.notes[0]


def test_psnr_is_high_for_exact_models_and_low_for_aliasing_ones():
    exact = check_shift_equivariant(_circular(False), input_shape=SHAPE, subpixel=True, trials=6, localize=False)
    assert exact.psnr >= 80
    assert check_shift_equivariant(_circular(True), input_shape=SHAPE, trials=4, localize=False).psnr == math.inf
    torch.manual_seed(0)
    aliasing = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), nn.MaxPool2d(2),
                             nn.Upsample(scale_factor=2, mode="nearest"))
    result = check_shift_equivariant(aliasing, input_shape=SHAPE, trials=6, localize=False)
    assert result.psnr < 40
    assert result.figures()["psnr"] == result.psnr


def test_min_psnr_decides_the_verdict():
    torch.manual_seed(0)
    aliasing = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), nn.MaxPool2d(2),
                             nn.Upsample(scale_factor=2, mode="nearest"))
    strict = check_shift_equivariant(aliasing, input_shape=SHAPE, trials=6, localize=False, min_psnr=40)
    lenient = check_shift_equivariant(aliasing, input_shape=SHAPE, trials=6, localize=False, min_psnr=5)
    assert not strict.passed and lenient.passed
    text = render(failure_report(strict), color=False)
    assert "PSNR" in text and "min_psnr=40 dB" in text
    assert "PSNR (worst)" in render_html([strict])


def test_all_shift_consistency_counts_images_that_survive_every_shift():
    # check_models.corner_images: three images in four keep their class under the first shift, one
    # under the second; only image 0 keeps it under both (three keep it under either).
    result = check_shift_invariant(CornerClassifier(), corner_images(), shifts=CORNER_SHIFTS, localize=False)
    assert [t.consistency for t in result.trials] == [0.75, 0.25]
    assert result.all_shift_consistency == 0.25
    exact = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 5))
    assert check_shift_invariant(exact, input_shape=(8, 3, 32, 32), trials=4, localize=False).all_shift_consistency == 1.0


def test_measure_lie_has_one_trial_per_generator():
    exact = check_shift_equivariant(_circular(False), input_shape=SHAPE, measure="lie", localize=False)
    assert exact.passed and exact.measure == "lie"
    assert [t.transform for t in exact.trials] == ["Lie derivative translate_x", "Lie derivative translate_y"]
    broken = check_shift_equivariant(_circular(True), input_shape=SHAPE, measure="lie", localize=False)
    assert not broken.passed and broken.trials[0].rel_l2 > 0.1
    rotation = check_rotation_invariant(nn.Sequential(_circular(False), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                                        input_shape=(2, 3, 33, 33), measure="lie", localize=False)
    assert [t.params["generator"] for t in rotation.trials] == ["rotate"]
    with pytest.raises(EquivarianceUsageError, match="measure='psnr' is not accepted; pass 'error' or 'lie'"):
        check_shift_equivariant(_circular(False), input_shape=SHAPE, measure="psnr")


def test_reports_draw_the_error_against_sub_pixel_shifts():
    result = check_shift_equivariant(_circular(True), input_shape=SHAPE, subpixel=True, trials=6, localize=False)
    page = render_html([result])
    assert "sub-pixel shift length" in page and "0.5 px" in page
    assert "<th class=\"num\">PSNR</th>" in page
    data = result.to_json()
    assert data["figures"]["psnr"] == result.psnr and data["trials"][0]["psnr"] is not None
