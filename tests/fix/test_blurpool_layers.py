"""BlurPool / MaxBlurPool / AntialiasedConv layers: shapes, padding, equivariance, meta, state dicts."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.fix import (
    AntialiasedConv1d,
    AntialiasedConv2d,
    AntialiasedConv3d,
    BlurPool1d,
    BlurPool2d,
    BlurPool3d,
    MaxBlurPool1d,
    MaxBlurPool2d,
    MaxBlurPool3d,
    blur_pool2d,
)
from pytest_equivariance.layers.blurpool import antialiased_conv
from pytest_equivariance.layers.filters import blur_avg_pool2d
from pytest_equivariance.layers.polyphase import polyphase_pool2d
from pytest_equivariance.lint import lint_model

BLURS = {1: BlurPool1d, 2: BlurPool2d, 3: BlurPool3d}
MAX_BLURS = {1: MaxBlurPool1d, 2: MaxBlurPool2d, 3: MaxBlurPool3d}
MAX_POOLS = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
SIZES = {1: (13,), 2: (11, 12), 3: (5, 6, 7)}


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_blurpool_is_channel_agnostic(ndim: int) -> None:
    layer = BLURS[ndim](stride=2)
    for channels in (1, 5):
        out = layer(torch.randn(2, channels, *SIZES[ndim]))
        assert out.shape == (2, channels, *((n + 1) // 2 for n in SIZES[ndim]))


def test_module_matches_functional() -> None:
    x = torch.randn(2, 4, 10, 10)
    for mode in ("reflect", "replicate", "zeros", "circular"):
        layer = BlurPool2d(stride=2, filter_size=5, padding_mode=mode)
        assert torch.equal(layer(x), blur_pool2d(x, 2, 5, mode))


def test_circular_blurpool_is_exactly_equivariant_on_the_stride_lattice() -> None:
    layer = BlurPool2d(stride=2, padding_mode="circular").double()
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    shifted = layer(torch.roll(x, shifts=(2, -4), dims=(-2, -1)))
    assert torch.allclose(shifted, torch.roll(layer(x), shifts=(1, -2), dims=(-2, -1)), atol=1e-12)


def test_blur_reduces_aliasing_of_subsampling() -> None:
    # A one-pixel shift changes plain subsampling's output far more than the blurred one's.
    x = torch.randn(1, 1, 64, 64, dtype=torch.float64)
    x1 = torch.roll(x, 1, dims=-1)

    def change(pool) -> float:
        a, b = pool(x), pool(x1)
        return ((a - b).norm() / a.norm()).item()

    plain = change(lambda t: t[..., ::2, ::2])
    blurred = change(lambda t: blur_pool2d(t, 2, 5, "circular"))
    assert blurred < plain / 2


def test_padding_modes_differ_only_at_the_border() -> None:
    x = torch.ones(1, 1, 8, 8)
    inner = slice(1, -1)
    outs = {m: BlurPool2d(1, 3, m)(x) for m in ("reflect", "replicate", "zeros", "circular")}
    for m, out in outs.items():
        assert torch.allclose(out[..., inner, inner], torch.ones(6, 6)), m
    assert outs["zeros"][0, 0, 0, 0].item() == pytest.approx(9 / 16)
    assert outs["reflect"][0, 0, 0, 0].item() == pytest.approx(1.0)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("kernel_size,stride,padding,dilation", [(2, 2, 0, 1), (3, 2, 1, 1), (3, 3, 0, 2), (1, 2, 0, 1)])
def test_maxblurpool_drops_in_for_maxpool(ndim, kernel_size, stride, padding, dilation) -> None:
    x = torch.randn(1, 2, *SIZES[ndim])
    pool = MAX_POOLS[ndim](kernel_size, stride, padding, dilation)
    fixed = MAX_BLURS[ndim](kernel_size, stride, padding=padding, dilation=dilation)
    assert fixed(x).shape == pool(x).shape


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("kernel_size,stride,padding", [(3, 2, 0), (3, 2, 1), (2, 2, 0), (3, 3, 1), (2, 3, 0)])
@pytest.mark.parametrize("n", [5, 6, 7, 8])
def test_maxblurpool_matches_ceil_mode_output_size(ndim, kernel_size, stride, padding, n) -> None:
    x = torch.randn(1, 2, *(n,) * ndim)
    pool = MAX_POOLS[ndim](kernel_size, stride, padding, ceil_mode=True)
    fixed = MAX_BLURS[ndim](kernel_size, stride, padding=padding, ceil_mode=True)
    out = fixed(x)
    assert out.shape == pool(x).shape
    assert torch.isfinite(out).all()


def test_maxblurpool_is_max_then_blur() -> None:
    x = torch.randn(2, 3, 12, 12)
    layer = MaxBlurPool2d(kernel_size=2, stride=2, filter_size=4)
    expected = blur_pool2d(F.max_pool2d(x, 2, stride=1), 2, 4)
    assert torch.equal(layer(x), expected)


def test_extra_repr_shows_the_arguments() -> None:
    assert repr(BlurPool2d(3, 5, "circular")) == "BlurPool2d(stride=3, filter_size=5, padding_mode='circular')"
    text = repr(MaxBlurPool2d(3, 2, padding=1))
    assert "kernel_size=3, stride=2, filter_size=3, padding_mode='reflect', padding=1" in text


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("kernel_size,stride,padding", [(3, 2, 1), (1, 2, 0), (4, 4, 0), (3, 2, 0)])
def test_antialiased_conv_keeps_shape_and_parameter_names(ndim, position, kernel_size, stride, padding) -> None:
    torch.manual_seed(0)
    conv = CONVS[ndim](2, 3, kernel_size, stride=stride, padding=padding)
    fixed = antialiased_conv(conv, blur_position=position)
    x = torch.randn(1, 2, *SIZES[ndim])
    assert fixed(x).shape == conv(x).shape
    assert list(fixed.state_dict()) == list(conv.state_dict())
    assert fixed.weight is conv.weight
    assert conv.stride == (stride,) * ndim  # the original is untouched


def test_blur_first_and_conv_then_blur_agree_away_from_the_border() -> None:
    # Convolutions commute: the two forms are the same linear map except near the border.
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1).double()
    x = torch.randn(1, 2, 24, 24, dtype=torch.float64)
    a = antialiased_conv(conv, blur_position="before")(x)
    b = antialiased_conv(conv, blur_position="after")(x)
    assert torch.allclose(a[..., 2:-2, 2:-2], b[..., 2:-2, 2:-2], atol=1e-12)
    assert not torch.allclose(a, conv(x), atol=1e-3)


def test_circular_conv_gets_a_circular_blur_and_stays_equivariant() -> None:
    conv = nn.Conv2d(2, 2, 3, stride=2, padding=1, padding_mode="circular").double()
    fixed = antialiased_conv(conv)
    assert fixed.blur.padding_mode == "circular"
    x = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    assert torch.allclose(
        fixed(torch.roll(x, 2, dims=-1)), torch.roll(fixed(x), 1, dims=-1), atol=1e-12
    )


@pytest.mark.parametrize("cls,ndim", [(AntialiasedConv1d, 1), (AntialiasedConv2d, 2), (AntialiasedConv3d, 3)])
def test_antialiased_conv_constructs_directly(cls, ndim) -> None:
    layer = cls(2, 4, 3, stride=2, padding=1, filter_size=5, blur_position="after")
    assert layer.stride == (1,) * ndim and layer.blur.stride == 2 and layer.blur.filter_size == 5
    assert list(layer.state_dict()) == ["weight", "bias"]
    x = torch.randn(1, 2, *SIZES[ndim])
    assert layer(x).shape == CONVS[ndim](2, 4, 3, stride=2, padding=1)(x).shape


def test_antialiased_conv_pickles() -> None:
    layer = antialiased_conv(nn.Conv2d(1, 1, 3, stride=2))
    clone = pickle.loads(pickle.dumps(layer))
    x = torch.randn(1, 1, 9, 9)
    assert torch.equal(clone(x), layer(x))


def test_conv_subclass_with_its_own_forward_is_refused() -> None:
    class Doubling(nn.Conv2d):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(EquivarianceUsageError, match="overrides forward"):
        antialiased_conv(Doubling(1, 1, 3, stride=2, padding=1))


def test_antialiased_conv_is_not_a_conv_subclass_but_reprs_like_one() -> None:
    fixed = antialiased_conv(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False))
    assert not isinstance(fixed, nn.Conv2d)  # the linter must not read its stride as unfiltered
    text = repr(fixed)
    assert "3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False" in text
    assert "(blur): BlurPool2d(stride=1, filter_size=3, padding_mode='reflect')" in text


def test_padding_modes_of_the_conv_are_kept() -> None:
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, padding_mode="reflect")
    fixed = antialiased_conv(conv)
    x = torch.randn(1, 1, 8, 8)
    assert torch.allclose(fixed(x), conv(fixed.blur(x)))


def test_filters_are_not_saved_and_meta_construction_works() -> None:
    with torch.device("meta"):
        model = nn.Sequential(
            MaxBlurPool2d(2, 2), AntialiasedConv2d(3, 4, 3, stride=2), BlurPool2d(2, filter_size=5)
        )
    assert model[2].filter.is_meta
    assert list(model.state_dict()) == ["1.weight", "1.bias"]
    model.to_empty(device="cpu")
    for module in model.modules():
        if isinstance(module, (BlurPool2d,)):
            module.reset_parameters()
    assert model[2].filter.sum().item() == pytest.approx(1.0)
    assert model[0].blur.filter[1, 1].item() == pytest.approx(0.25)


def test_follows_the_input_dtype() -> None:
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    assert BlurPool2d()(x).dtype == torch.float64


@pytest.mark.parametrize("kwargs", [{"filter_size": 9}, {"padding_mode": "edge"}, {"stride": -1}])
def test_bad_layer_arguments_are_usage_errors(kwargs) -> None:
    with pytest.raises(EquivarianceUsageError):
        BlurPool2d(**kwargs)


def test_bad_blur_position_is_a_usage_error() -> None:
    with pytest.raises(EquivarianceUsageError, match="blur_position"):
        AntialiasedConv2d(1, 1, 3, stride=2, blur_position="middle")


AVG_POOLS = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize(
    ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    [(2, None, 0, False, True), (3, 2, 1, False, False), (3, 2, 1, True, True), (2, 3, 0, True, False),
     (1, 2, 0, False, True)],
)
def test_blur_avg_pool_drops_in_for_avg_pool(ndim, kernel_size, stride, padding, ceil_mode, count_include_pad) -> None:
    from pytest_equivariance.fix import BlurAvgPool1d, BlurAvgPool2d, BlurAvgPool3d
    from pytest_equivariance.layers import filters

    cls = {1: BlurAvgPool1d, 2: BlurAvgPool2d, 3: BlurAvgPool3d}[ndim]
    functional = {1: filters.blur_avg_pool1d, 2: filters.blur_avg_pool2d, 3: filters.blur_avg_pool3d}[ndim]
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad)
    pool, blurred = AVG_POOLS[ndim](*args), cls(*args)
    assert dict(blurred.state_dict()) == {} and list(blurred.parameters()) == []
    for n in (9, 10, 11):
        x = torch.randn(2, 3, *(n,) * ndim)
        assert blurred(x).shape == pool(x).shape
        assert torch.equal(functional(x, *args), blurred(x))


def test_blur_avg_pool_is_the_box_at_stride_1_then_blurpool() -> None:
    from pytest_equivariance.fix import BlurAvgPool2d

    x = torch.randn(1, 2, 16, 16)
    layer = BlurAvgPool2d(2, divisor_override=2)
    assert torch.allclose(layer(x), BlurPool2d(stride=2)(F.avg_pool2d(x, 2, 1, divisor_override=2)))
    assert "divisor_override=2" in repr(layer)
    with torch.device("meta"):
        meta = BlurAvgPool2d(3, 2, 1)
    assert meta(torch.empty(1, 2, 15, 15, device="meta")).shape == (1, 2, 8, 8)


def test_blur_avg_pool_1d_has_no_divisor_override() -> None:
    from pytest_equivariance.fix import BlurAvgPool1d

    with pytest.raises(EquivarianceUsageError, match="BlurAvgPool1d has no divisor_override"):
        BlurAvgPool1d(2, divisor_override=2)


def test_the_linter_reads_the_functional_fixes_as_antialiased() -> None:
    # Imported at module level, as user code does: fx records them as single calls from the globals.
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = blur_avg_pool2d(self.conv(x), 3, 2, padding=1, ceil_mode=True)
            return polyphase_pool2d(F.max_pool2d(x, 2, stride=1), 2)

    report = lint_model(Functional(), (1, 3, 32, 32), select=["EQ001", "EQ002", "EQ003"])
    assert report.findings == [] and report.errors == [] and report.coverage == 1.0
