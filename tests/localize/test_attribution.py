"""attribute(): exact per-layer terms of the Lie derivative, their shares, and what failing checks report."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optional import require
import pytest_equivariance as pe
from pytest_equivariance.check import tangent_walk
from pytest_equivariance.check.attribution import attribute, lie_terms
from pytest_equivariance.check.lie import lie_derivative
from pytest_equivariance.check.result import CheckResult
from pytest_equivariance.inputs import natural_images
from pytest_equivariance.report.profile import profile_text
from pytest_equivariance.seeding import seeded
from test_localize import Branchy  # data-dependent control flow: fx cannot trace it

SHIFTS = ("translate_x", "translate_y")


def circular_conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="circular")


def binomial_blur(channels: int) -> nn.Conv2d:
    """A fixed 5-tap binomial low-pass, depthwise and circular: exactly shift-equivariant."""
    conv = nn.Conv2d(channels, channels, 5, padding=2, padding_mode="circular", groups=channels, bias=False)
    taps = torch.tensor([1.0, 4, 6, 4, 1])
    conv.weight.data[:] = taps[:, None] * taps[None, :] / 256
    return conv


class Residual(nn.Module):
    """A DAG: two branches that meet again, a strided conv on one, a pooled shortcut on the other."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.shortcut = nn.AvgPool2d(2)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.branch(x)
        y += self.shortcut(x)  # in place, as torchvision's blocks do
        return self.head(y.relu_())


class Indexed(nn.Module):
    """Nodes whose outputs are not one float tensor: pooling that returns indices, sizes, a split."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled, _ = F.max_pool2d(self.conv(x), 2, return_indices=True)
        a, b = pooled.chunk(2, dim=1)
        return (a * b.tanh()).view(x.size(0), -1)


def images(n: int = 2, size: int = 32, seed: int = 3, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return natural_images((n, 3, size, size), seed=seed).to(dtype)


def _model(build):
    with seeded(0):
        return build().eval()


# -- the terms are exact --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["spectral", "bilinear"])
@pytest.mark.parametrize("generator", ["translate_x", "rotate", "scale"])
@pytest.mark.parametrize("build", [Residual, lambda: nn.Sequential(circular_conv(3, 4), nn.Tanh(), nn.MaxPool2d(2)),
                                   Indexed], ids=["classifier DAG", "image output", "indices and sizes"])
def test_terms_add_up_to_the_lie_derivative(build, generator: str, method: str) -> None:
    model = _model(build).double()
    x = images(dtype=torch.float64)
    terms = lie_terms(model, x, generator, method=method)
    total = sum(terms.values())
    expected = lie_derivative(model, x, generator, method=method).reshape(x.shape[0], -1)
    assert expected.norm() > 1e-3
    assert float((total - expected).norm() / expected.norm()) <= 1e-6


def test_terms_add_up_for_resnet18() -> None:
    torchvision = require("torchvision")
    model = _model(lambda: torchvision.models.resnet18(num_classes=10)).double()
    x = images(dtype=torch.float64)
    terms = lie_terms(model, x, "translate_x")
    expected = lie_derivative(model, x, "translate_x")
    assert float((sum(terms.values()) - expected).norm() / expected.norm()) <= 1e-6
    assert len(terms) < 40  # batch norms, adds and the head have no term: only layers above rounding


def test_exact_models_have_zero_shares_everywhere() -> None:
    exact = _model(lambda: nn.Sequential(
        circular_conv(3, 8), nn.BatchNorm2d(8), circular_conv(8, 8), binomial_blur(8),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ))
    profile = attribute(exact, images(), SHIFTS)
    assert profile.is_attribution and profile.layers
    assert all(layer.share == 0 and layer.contribution == 0 for layer in profile.layers)
    assert profile.culprit is None and profile.first_break is None
    assert "every layer is equivariant up to rounding" in profile_text(profile)


def test_the_heavy_site_is_the_culprit_though_the_mild_one_breaks_first() -> None:
    # A 2x2 average pool after a low-pass aliases little; a strided max pool aliases a lot.
    model = _model(lambda: nn.Sequential(
        binomial_blur(3), nn.AvgPool2d(2), circular_conv(3, 16), nn.MaxPool2d(2), circular_conv(16, 16),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    ))
    profile = attribute(model, images(4, 64, seed=1), SHIFTS)
    assert profile.culprit is not None and profile.culprit.qualname == "3" and profile.culprit.op == "nn.MaxPool2d"
    assert profile.culprit.share >= 0.9
    assert profile.first_break is not None and profile.first_break.qualname == "1"
    assert 0 < profile.first_break.share < 0.1
    assert sum(layer.share for layer in profile.layers) == pytest.approx(1.0)


def test_shares_are_the_same_in_chunks_and_in_several_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(Residual)
    x = images(4)
    whole = attribute(model, x, SHIFTS, batch_size=4)
    monkeypatch.setattr(tangent_walk, "MAX_ROWS", 1)  # one layer's rows per walk
    parts = attribute(model, x, SHIFTS, batch_size=1)
    assert [layer.qualname for layer in parts.layers] == [layer.qualname for layer in whole.layers]
    for a, b in zip(whole.layers, parts.layers):
        assert a.share == pytest.approx(b.share, abs=1e-6)
        assert a.contribution == pytest.approx(b.contribution, rel=1e-4, abs=1e-9)
    assert whole.end_to_end == pytest.approx(parts.end_to_end, rel=1e-4)


def test_the_model_is_restored() -> None:
    model = _model(Residual).train()
    inplace = model.stem[2].inplace
    attribute(model, images(), "translate_x", circular_padding=True)
    assert model.training and model.stem[2].inplace is inplace
    assert model.stem[0].padding_mode == "zeros"
    assert torch.nn.functional.pad.__name__ == "pad" and not hasattr(torch.nn.functional.pad, "__wrapped__")


# -- padding -------------------------------------------------------------------------------------


def test_circular_padding_keeps_a_stride_one_blur_out_of_the_blame() -> None:
    from pytest_equivariance.fix import BlurPool2d

    model = _model(lambda: nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), BlurPool2d(stride=1, padding_mode="reflect"),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ))
    x = images(4, 32)
    as_is = attribute(model, x, SHIFTS)
    circular = attribute(model, x, SHIFTS, circular_padding=True)
    shares = {layer.qualname: layer.share for layer in circular.layers}
    assert shares["0"] == 0 and shares["1"] == 0  # zero and reflect borders wrap around
    assert circular.culprit is not None and circular.culprit.qualname == "2"
    assert {layer.qualname: layer.share for layer in as_is.layers}["1"] > 0  # the borders count as they are


# -- failing checks report shares ------------------------------------------------------------------


def test_a_failing_shift_check_blames_the_largest_share() -> None:
    model = _model(lambda: nn.Sequential(
        binomial_blur(3), nn.AvgPool2d(2), circular_conv(3, 16), nn.MaxPool2d(2), circular_conv(16, 16),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    ))
    result = pe.check_shift_invariant(model, inputs=images(4, 64, seed=1))
    profile = result.profile
    assert not result.passed and profile is not None and profile.is_attribution
    assert profile.culprit.qualname == "3" and profile.finding_code == "EQ001"
    text = profile_text(profile)
    assert "largest share of the equivariance error: 3: nn.MaxPool2d(kernel_size=2, stride=2)" in text
    assert "· first above its floor" in text
    with pytest.raises(AssertionError, match="largest share of the equivariance error: 3"):
        pe.assert_shift_invariant(model, inputs=images(4, 64, seed=1))


def test_whole_pixel_shift_failures_are_not_blamed_on_pointwise_layers() -> None:
    # The ReLUs hold most of the Lie derivative (error between samples), but whole-pixel shifts
    # commute with them exactly: only the average pool can make this check fail.
    model = _model(lambda: nn.Sequential(
        circular_conv(3, 8), nn.ReLU(), binomial_blur(8), nn.AvgPool2d(2), circular_conv(8, 8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ))
    x = images(4, 64, seed=1)
    assert attribute(model, x, SHIFTS, circular_padding=True).culprit.qualname == "1"
    result = pe.check_shift_invariant(model, inputs=x)
    assert not result.passed and result.profile.culprit.qualname == "3"
    assert result.profile.culprit.share < 0.1
    assert any(note.startswith("2 pointwise layers hold") for note in result.profile.notes)


def test_a_passing_check_asked_for_a_profile_names_no_culprit() -> None:
    # Whole-pixel shifts are exact through the ReLU; its sub-pixel error still has a share.
    model = _model(lambda: nn.Sequential(circular_conv(3, 8), nn.ReLU(), circular_conv(8, 4)))
    result = pe.check_shift_equivariant(model, inputs=images(), localize=True)
    assert result.passed and result.profile.is_attribution
    assert result.profile.culprit is None
    assert [layer.qualname for layer in result.profile.layers if layer.share > 0] == ["1"]
    assert "no culprit named: the check passed" in profile_text(result.profile)


@pytest.mark.zoo
@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_antialiased_resnet18_failing_a_circular_shift_check_names_a_strided_layer(source: str) -> None:
    from pytest_equivariance.fix import antialias

    if source == "timm":
        timm = require("timm")
        build = lambda: timm.create_model("resnet18", pretrained=False)  # noqa: E731
    else:
        torchvision = require("torchvision")
        build = torchvision.models.resnet18
    model = antialias(_model(build))
    result = pe.check_shift_invariant(model, input_shape=(4, 3, 64, 64), mode="circular")
    assert not result.passed
    culprit = result.profile.culprit
    assert culprit is not None and culprit.share > 0.3
    assert culprit.op in ("AntialiasedConv2d", "MaxBlurPool2d"), culprit  # anti-aliased, strided
    assert "BlurPool" not in culprit.op


def test_rotation_by_interpolation_is_attributed_along_rotate() -> None:
    model = _model(lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2),
                                         nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    result = pe.check_rotation_invariant(model, inputs=images(4, 33), angles=[30.0], mode="interp")
    assert not result.passed and result.profile.is_attribution
    assert "rotate" in result.profile.method and result.profile.culprit is not None


def test_quarter_turns_keep_the_finite_profile() -> None:
    model = _model(lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    result = pe.check_rotation_invariant(model, inputs=images(2, 32))
    assert not result.passed and result.profile is not None and not result.profile.is_attribution


class NoJvp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        return x[..., ::2, ::2].clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        raise NotImplementedError


def no_jvp_subsample(x: torch.Tensor) -> torch.Tensor:
    return NoJvp.apply(x)


torch.fx.wrap("no_jvp_subsample")  # one call in the graph, as an extension op would be


class Subsample(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return no_jvp_subsample(x)


def test_an_op_without_forward_ad_falls_back_to_the_finite_profile_with_a_note() -> None:
    model = _model(lambda: nn.Sequential(circular_conv(3, 8), Subsample(), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    result = pe.check_shift_invariant(model, inputs=images())
    profile = result.profile
    assert not result.passed and profile is not None and not profile.is_attribution
    assert profile.culprit is not None and profile.culprit.qualname.startswith("1")
    assert len(profile.notes) == 1
    assert profile.notes[0].startswith("no exact attribution: 1.no_jvp_subsample (no_jvp_subsample) has no forward-mode")
    with pytest.raises(pe.EquivarianceUsageError, match=r"forward mode at 1.no_jvp_subsample .*localize\(model"):
        attribute(model, images())


def test_untraceable_models_are_walked_module_by_module() -> None:
    model = _model(Branchy).double()
    x = images(dtype=torch.float64)
    profile = attribute(model, x, "translate_x")
    assert "module by module" in profile.method
    assert [layer.qualname for layer in profile.layers] == ["stem.0", "stem.1", "stem.2", "pool", "head"]
    assert profile.culprit is not None and profile.culprit.qualname == "pool"
    terms = lie_terms(model, x, "translate_x")
    expected = lie_derivative(model, x, "translate_x").reshape(2, -1)
    assert float((sum(terms.values()) - expected).norm() / expected.norm()) <= 1e-6


# -- reports and errors ----------------------------------------------------------------------------


def test_shares_survive_the_json_round_trip() -> None:
    model = _model(lambda: nn.Sequential(circular_conv(3, 8), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    result = pe.check_shift_invariant(model, inputs=images())
    data = json.loads(json.dumps(result.to_json()))
    assert data["profile"]["culprit"]["share"] == pytest.approx(result.profile.culprit.share)
    assert data["profile"]["end_to_end"] == pytest.approx(result.profile.end_to_end)
    back = CheckResult.from_json(data).profile
    assert back.is_attribution and back.culprit.qualname == "1"
    assert [layer.share for layer in back.layers] == [layer.share for layer in result.profile.layers]


def test_html_shows_shares_as_bars_with_the_culprit_highlighted() -> None:
    from pytest_equivariance.report.html import profile_card

    model = _model(Residual)
    html = profile_card(attribute(model, images(), SHIFTS))
    assert "Per-layer shares" in html and "← largest share" in html
    assert "Largest share of the equivariance error" in html


@pytest.mark.parametrize(
    "inputs, match",
    [
        (torch.randn(2, 3, 32), r"images of shape \(N, C, H, W\)"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.long), "floating-point inputs"),
        ("images", "inputs as a tensor"),
    ],
)
def test_non_image_inputs_are_a_usage_error(inputs: object, match: str) -> None:
    with pytest.raises(pe.EquivarianceUsageError, match=match):
        attribute(nn.Conv2d(3, 3, 1), inputs)  # type: ignore[arg-type]


def test_circular_padding_wider_than_the_map_wraps_around_again() -> None:
    # A 7x7 convolution on a 2x2 map (deep layers of small test images, as in ConvNeXt).
    from pytest_equivariance.check.padding import periodic_pad

    assert periodic_pad(torch.arange(2.0).view(1, 1, 1, 2), [3, 3]).flatten().tolist() == [1, 0, 1, 0, 1, 0, 1, 0]
    model = _model(lambda: nn.Sequential(nn.Conv2d(3, 3, 7, padding=3, groups=3), nn.AdaptiveAvgPool2d(1)))
    profile = attribute(model, images(2, 2), SHIFTS, circular_padding=True)
    assert profile.culprit is None and all(layer.share == 0 for layer in profile.layers)
