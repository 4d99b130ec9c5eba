"""Rescaling checks: exact models pass the ideal resampler, aliasing ones fail, scale channels move.

A network of 1×1 convolutions is linear per pixel, so it commutes with any resampler that acts on
each channel alike; a 3×3 kernel has no scale (it covers three pixels at every size), and a ReLU
makes harmonics that alias on the coarser grid.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from pytest_equivariance import (
    EquivarianceUsageError,
    assert_scale_equivariant,
    check_scale_equivariant,
    check_scale_invariant,
    scale_channels,
)
from pytest_equivariance.check import rescaling, runner
import rahman2023_reference
from check_models import seeded

SHAPE = (2, 3, 32, 32)


def pointwise() -> nn.Module:
    return seeded(lambda: nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)))


def relu_between() -> nn.Module:
    return seeded(lambda: nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 4, 1)))


def fixed_3x3() -> nn.Module:
    return seeded(lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"))


class GlobalAverage(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean((-2, -1))


@pytest.mark.parametrize("mode", ["fourier", "antialias"])
def test_pointwise_network_commutes_with_rescaling_by_two_and_a_half(mode):
    result = check_scale_equivariant(pointwise(), input_shape=SHAPE, mode=mode, localize=False)
    assert result.passed, result.trials
    assert [t.params["scale"] for t in result.trials] == [0.5, 2.0]
    assert [t.transform for t in result.trials] == ["scale ×0.5", "scale ×2"]
    assert max(t.max_abs for t in result.trials) < 1e-5
    assert max(t.channel_error for t in result.trials) < 1e-10


def test_the_antialias_border_margin_is_measured_and_the_ideal_resampler_needs_none():
    interpolated = check_scale_equivariant(pointwise(), input_shape=SHAPE, mode="antialias", localize=False)
    ideal = check_scale_equivariant(pointwise(), input_shape=SHAPE, localize=False)
    assert any("from the border" in note for note in interpolated.notes)
    assert not any("from the border" in note for note in ideal.notes)


def test_volumes_rescale_along_three_dims():
    result = check_scale_equivariant(seeded(lambda: nn.Conv3d(2, 3, 1)), input_shape=(1, 2, 8, 8, 8), localize=False)
    assert result.passed and result.dims == (-3, -2, -1)


def test_labelled_batches_of_a_loader_give_accuracy_and_consistency_under_rescaling():
    images = smooth_images((8, 3, 32, 32), seed=2)
    labels = torch.arange(8) % 4
    loader = [(images[:4], labels[:4]), (images[4:], labels[4:])]
    classifier = seeded(lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                              nn.Flatten(), nn.Linear(8, 4)))
    result = check_scale_invariant(classifier, loader, scales=[0.5, 2], localize=False, progress=False)
    assert result.images == 8 and result.accuracy is not None
    assert all(t.accuracy is not None and t.consistency is not None for t in result.trials)
    with torch.no_grad():
        small = classifier(F.interpolate(images, size=(16, 16), mode="bilinear", antialias=True)).argmax(1)
    antialiased = check_scale_invariant(classifier, loader, scale=0.5, mode="antialias", localize=False, progress=False)
    assert antialiased.trials[0].accuracy == pytest.approx(float((small == labels).float().mean()))


@pytest.mark.parametrize("mode", ["fourier", "antialias"])
def test_the_profile_names_the_layer_where_scale_equivariance_breaks(mode):
    relu = check_scale_equivariant(relu_between(), input_shape=SHAPE, mode=mode, scale=0.5, localize=True)
    assert (relu.profile.culprit.qualname, relu.profile.culprit.op) == ("1", "nn.ReLU")
    assert relu.profile.layers[0].error < relu.profile.layers[0].noise  # the 1x1 convolution before it is exact
    kernel = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"))
    late = check_scale_equivariant(seeded(lambda: kernel), input_shape=SHAPE, mode=mode, scale=2, localize=True)
    assert late.profile.culprit.qualname == "1"


def test_global_average_is_invariant_to_ideal_rescaling():
    result = check_scale_invariant(GlobalAverage(pointwise()), input_shape=SHAPE, localize=False)
    assert result.passed and max(t.max_abs for t in result.trials) < 1e-5


@pytest.mark.parametrize("build", [fixed_3x3, relu_between], ids=["fixed 3x3", "relu between 1x1"])
@pytest.mark.parametrize("mode", ["fourier", "antialias"])
def test_kernels_and_nonlinearities_break_scale_equivariance(build, mode):
    result = check_scale_equivariant(build(), input_shape=SHAPE, mode=mode, localize=False)
    assert not result.passed
    assert all(not t.passed and t.channel_error > 1e-3 for t in result.trials)


def test_the_band_neither_grid_holds_is_not_charged():
    # Upscaling by 2 then comparing: the model's output on the finer grid has frequencies its
    # counterpart cannot hold; they are left out, so a pointwise square (all of whose new harmonics
    # of a band-limited input lie in the band of the finer grid, where only the finer side has them)
    # still fails, but only by what falls inside the shared band.
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    band = rescaling.fourier_band(x, [16, 16], (-2, -1))
    spectrum = torch.fft.fft2(band).abs()
    assert spectrum[..., 8, :].max() < 1e-9 and spectrum[..., :, 8].max() < 1e-9  # the Nyquist bins go
    half = rescaling.fourier_band(x, [8, 8], (-2, -1))
    freqs = torch.fft.fftfreq(16, d=1 / 16).abs()
    outside = (freqs[:, None] >= 4) | (freqs[None, :] >= 4)
    assert torch.fft.fft2(half).abs()[..., outside].max() < 1e-9
    assert torch.allclose(torch.fft.fft2(half)[..., ~outside], torch.fft.fft2(x)[..., ~outside])


def test_drawn_factors_map_sizes_onto_whole_pixels():
    result = check_scale_invariant(GlobalAverage(pointwise()), input_shape=(1, 3, 24, 40), scale_range=(0.5, 2.0),
                                   trials=3, seed=3, localize=False)
    factors = [t.params["scale"] for t in result.trials]
    assert len(factors) == 3 and all(0.5 <= f <= 2 and f != 1 for f in factors)
    assert all((f * 24).is_integer() and (f * 40).is_integer() for f in factors)


def test_rescaled_inputs_of_different_sizes_run_in_separate_chunks():
    jobs = [("a", torch.zeros(2, 1, 4, 4)), ("b", torch.zeros(2, 1, 8, 8)), ("c", torch.zeros(1, 1, 8, 8))]
    out = dict(runner.run_batches(nn.Identity(), jobs, 16))
    assert [tuple(out[k][0][1].shape) for k in "abc"] == [(2, 1, 4, 4), (2, 1, 8, 8), (1, 1, 8, 8)]


def test_lie_derivative_of_scale_passes_a_pointwise_network():
    result = check_scale_equivariant(pointwise(), input_shape=(1, 3, 16, 16), measure="lie")
    assert result.passed and result.trials[0].params == {"generator": "scale"}
    assert not check_scale_equivariant(fixed_3x3(), input_shape=(1, 3, 16, 16), measure="lie").passed


# -- scale channels: a SESN / DISCO-style layer ---------------------------------------------------


def hermite_basis(sigma: float, radius: int, order: int = 2) -> torch.Tensor:
    """Hermite–Gaussian filters ``H_i(y/σ) H_j(x/σ) exp(−(x² + y²)/2σ²) / σ²`` for ``i + j <= order``.

    SESN's steerable basis (Sosnovik et al. 2020): dilating ``σ`` dilates every filter, and the
    ``1/σ²`` keeps a filter's integral, so a filter at ``2σ`` on an image twice the size sees what the
    one at ``σ`` saw.
    """
    u = torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma
    hermite = [torch.ones_like(u), 2 * u, 4 * u * u - 2]
    gauss = torch.exp(-u * u / 2)
    out = [hermite[i][:, None] * hermite[j][None, :] * gauss[:, None] * gauss[None, :] / sigma**2
           for i in range(order + 1) for j in range(order + 1 - i)]
    return torch.stack(out)


class ScaleConv(nn.Module):
    """One scale-convolution: learned weights on a fixed basis, shared across ``len(sigmas)`` dilations.

    Returns ``(batch, out, scales, H, W)``, SESN's layout; circular padding keeps it translation-exact.
    """

    def __init__(self, cin: int, cout: int, sigmas: tuple[float, ...]) -> None:
        super().__init__()
        self.sigmas = sigmas
        basis = hermite_basis(1.0, 1)
        self.weight = nn.Parameter(torch.randn(cout, cin, basis.shape[0]) / cin)
        self.bias = nn.Parameter(torch.randn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for sigma in self.sigmas:
            radius = math.ceil(4 * sigma)
            kernel = torch.einsum("oib,bhw->oihw", self.weight.double(), hermite_basis(sigma, radius)).to(x.dtype)
            padded = F.pad(x, (radius,) * 4, mode="circular")
            outs.append(F.conv2d(padded, kernel, self.bias))
        return torch.stack(outs, dim=2)


SIGMAS = (1.5, 3.0, 6.0)


def scale_conv() -> nn.Module:
    return seeded(lambda: ScaleConv(3, 4, SIGMAS))


def smooth_images(shape=(2, 3, 64, 64), seed=0) -> torch.Tensor:
    """Random images band-limited below a quarter of their Nyquist frequency (what a downscale keeps)."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return rescaling.fourier_band(x, [shape[-2] // 4, shape[-1] // 4], (-2, -1))


#: SESN and DISCO measure a layer's scale equivariance by the normalised squared error
#: ‖L_s Φ(f) − Φ(L_s f)‖² / ‖L_s Φ(f)‖²; the check's per-channel figure is that error per channel, and
#: this bound is the one Rahman & Yeh's test asserts of it (the strictest of the three papers').
SESN_TOLERANCE = 1e-5


def test_scale_convolution_passes_with_its_scale_channels_declared():
    x = smooth_images()
    result = check_scale_equivariant(scale_conv(), x, output_fields=scale_channels(3, axis=2, base=2),
                                     max_channel_error=SESN_TOLERANCE, localize=False)
    assert result.passed, [(t.transform, t.channel_error) for t in result.trials]
    assert max(t.channel_error for t in result.trials) < SESN_TOLERANCE
    assert result.fields == {"output": "scale_channels(3, axis=2, base=2)"}
    undeclared = check_scale_equivariant(scale_conv(), x, max_channel_error=SESN_TOLERANCE, localize=False)
    assert not undeclared.passed and undeclared.max_channel_error == SESN_TOLERANCE
    from pytest_equivariance.report.terminal import headline
    from pytest_equivariance.report.text import format_result

    assert "per-channel error" in headline(undeclared) and "exceeds max_channel_error 1.0e-05" in headline(undeclared)
    assert "per-channel relative error (Rahman & Yeh) <= " in format_result(undeclared)


def test_scale_convolution_fails_without_the_declaration_and_a_plain_cnn_fails():
    x = smooth_images()
    undeclared = check_scale_equivariant(scale_conv(), x, max_channel_error=SESN_TOLERANCE, localize=False)
    assert not undeclared.passed and min(t.channel_error for t in undeclared.trials) > 1e3 * SESN_TOLERANCE
    plain = seeded(lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"), nn.ReLU(),
                                         nn.Conv2d(8, 4, 3, padding=1, padding_mode="circular")))
    result = check_scale_equivariant(plain, x, max_channel_error=SESN_TOLERANCE, localize=False)
    assert not result.passed and min(t.channel_error for t in result.trials) > 1e3 * SESN_TOLERANCE


def test_factors_of_scale_channels_are_whole_steps_of_their_base():
    from pytest_equivariance.check.scales import base_steps

    assert base_steps(2.0, (0.25, 4), 4, [64]) == [0.5, 2.0, 0.25, 4.0]  # one step each way first
    assert base_steps(2.0, (0.25, 4), 4, [6]) == [0.5, 2.0, 4.0]  # a quarter of 6 pixels is no grid
    assert base_steps(2 ** 0.5, (0.5, 2), 2, [64]) == [0.5, 2.0]  # one step of √2 is no grid for 64 pixels
    x = smooth_images()
    with pytest.raises(EquivarianceUsageError, match="No factor in scale_range"):
        check_scale_equivariant(scale_conv(), x, output_fields=scale_channels(3, base=2), scale_range=(0.6, 1.5))


def test_scale_channels_move_by_one_step_per_factor_of_the_base():
    field = scale_channels(3, axis=1, base=2)
    y = torch.arange(6.0).view(1, 6, 1, 1)  # two blocks of three scales
    assert field.act(y, -1).flatten().tolist() == [1, 2, 0, 4, 5, 0]
    assert field.act(y, 1).flatten().tolist() == [0, 0, 1, 0, 3, 4]
    assert field.kept((1, 6, 1, 1), 1).flatten().tolist() == [False, True, True, False, True, True]
    assert field.steps(0.5) == -1 and field.steps(4) == 2 and field.steps(3) is None


# -- Rahman & Yeh's figure ------------------------------------------------------------------------


def feature_net() -> nn.Module:
    return seeded(lambda: nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, padding_mode="circular"), nn.GELU(),
                                        nn.Conv2d(6, 4, 1)))


@pytest.mark.parametrize("mode", ["fourier", "antialias"])
def test_summed_channel_error_equals_rahman_and_yeh_loop(mode):
    x = smooth_images((3, 3, 32, 32), seed=1)
    resolutions = [32, 24, 16]
    theirs = rahman2023_reference.get_equivarience_error(
        feature_net(), [(x, None)], list(resolutions), mode="ideal" if mode == "fourier" else "bilinear")
    result = check_scale_equivariant(feature_net(), x, scales=[r / 32 for r in resolutions[1:]], mode=mode, margin=0,
                                     localize=False)
    ours = result.channel_error / len(resolutions)  # their sum over scales, over all resolutions
    assert result.channel_error == sum(t.channel_error for t in result.trials)
    assert float(theirs) > 1e-4  # a model that is not exactly equivariant: the figure is not trivially 0
    assert ours == pytest.approx(float(theirs), rel=1e-4)


# -- a real classifier ----------------------------------------------------------------------------


def test_resnet18_scale_invariance_runs_on_cpu_and_reaches_the_reports():
    torchvision = pytest.importorskip("torchvision")
    from pytest_equivariance.report.html import render_html
    from pytest_equivariance.report.text import format_result

    model = seeded(lambda: torchvision.models.resnet18(num_classes=10))
    result = check_scale_invariant(model, input_shape=(2, 3, 64, 64), localize=False)
    assert result.kind == "scale_invariant" and len(result.trials) == 2
    assert all(t.consistency is not None and t.prob_change is not None for t in result.trials)
    text = format_result(result)
    assert "scale invariance" in text and "scale ×" in text
    html = render_html([result])
    assert "scale ×0.5" in html and "scale ×2" in html  # the trials table
    assert "Largest error at each rescaling factor" in html and "0.5×" in html  # the figure by factor
    data = result.to_json()
    assert [t["params"]["scale"] for t in data["trials"]] == [0.5, 2.0]
    assert "consistency" in data["figures"] and "channel_error" not in data["figures"]  # invariance: no maps


def test_scale_figures_reach_the_baseline_under_the_check_kind():
    from pytest_equivariance.gates.entries import entries_from_results

    result = check_scale_equivariant(relu_between(), input_shape=SHAPE, localize=False)
    assert not result.passed
    (entry,) = entries_from_results([dataclasses.replace(result, test_id="t.py::test")])
    assert entry.key.kind == "scale_equivariant"
    assert entry.figures["channel_error"] == pytest.approx(sum(t.channel_error for t in result.trials))


# -- usage errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        ({"mode": "bilinear"}, "is not a resampler"),
        ({"scale": 0.3}, "is not a whole number of pixels"),
        ({"scale": -1}, "positive factor"),
        ({"scales": [1, 2]}, "other than 1"),
        ({"scales": [0.5], "scale": 2}, "Both"),
        ({"scale_range": (2, 0.5)}, "low < high"),
        ({"scale": 0.75, "output_fields": scale_channels(2, axis=1)}, "not a whole number of steps"),
        ({"output_fields": "regular"}, "is not a scale field"),
        ({"output_fields": scale_channels(3, axis=1)}, "blocks of 3 scales"),
    ],
)
def test_usage_errors(kwargs, phrase):
    with pytest.raises(EquivarianceUsageError, match=phrase):
        check_scale_equivariant(pointwise(), input_shape=SHAPE, localize=False, **kwargs)


def test_scale_channels_arguments_are_checked():
    with pytest.raises(EquivarianceUsageError, match="base"):
        scale_channels(3, base=1)
    with pytest.raises(EquivarianceUsageError, match="positive number of scales"):
        scale_channels(0)


def test_antialias_needs_an_image_plane_and_assert_twin_raises():
    with pytest.raises(EquivarianceUsageError, match="resizes images of 2 spatial dims"):
        check_scale_equivariant(nn.Conv1d(3, 4, 1), input_shape=(1, 3, 16), mode="antialias")
    with pytest.raises(AssertionError, match="scale equivariance"):
        assert_scale_equivariant(fixed_3x3(), input_shape=SHAPE, localize=False)


def test_the_per_channel_verdict_reports_the_leaf_furthest_over_its_limit():
    # Leaf 0 has the larger absolute error (x1000), leaf 1 the larger per-channel error (a wider kernel).
    class TwoMaps(nn.Module):
        def forward(self, x):
            return (1000 * F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
                    1e-3 * F.avg_pool2d(x, 7, 1, 3, count_include_pad=False))

    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    alone = [check_scale_equivariant(nn.Sequential(TwoMaps(), Pick(i)), x, scales=[2.0], localize=False)
             .trials[0].channel_error for i in (0, 1)]
    assert alone[0] < alone[1]
    limit = sum(alone) / 2
    result = check_scale_equivariant(TwoMaps(), x, scales=[2.0], localize=False, max_channel_error=limit)
    (trial,) = result.trials
    assert not result.passed and trial.leaf == "[1]" and trial.channel_error == pytest.approx(alone[1])


class Pick(nn.Module):
    def __init__(self, i: int) -> None:
        super().__init__()
        self.i = i

    def forward(self, outputs):
        return outputs[self.i]
