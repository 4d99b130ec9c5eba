"""Recognising anti-aliased downsamplers: known classes, structure, and whole anti-aliased models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_equivariance.lint import lint
from pytest_equivariance.lint.recognize import (
    is_antialiased_downsampler,
    is_lowpass_kernel,
    lowpass_stride,
)


def binomial(channels: int = 4) -> torch.Tensor:
    a = torch.tensor([1.0, 2.0, 1.0])
    return ((a[:, None] * a[None, :]) / 16).expand(channels, 1, 3, 3).clone()


def frozen_conv(weight: torch.Tensor, stride: int = 2) -> nn.Conv2d:
    conv = nn.Conv2d(4, 4, 3, stride=stride, padding=1, groups=4, bias=False)
    conv.weight.data.copy_(weight)
    conv.weight.requires_grad_(False)
    return conv


# ------------------------------------------------------------------------------ classes


def test_library_blurpools_are_recognised_by_class():
    import antialiased_cnns
    import kornia
    from timm.layers import BlurPool2d

    layers = [
        antialiased_cnns.BlurPool(4, filt_size=3, stride=2),
        BlurPool2d(4, stride=2),
        kornia.filters.BlurPool2D(3, stride=2),
        kornia.filters.MaxBlurPool2D(3),
    ]
    for layer in layers:
        assert is_antialiased_downsampler(layer), type(layer)
        assert lowpass_stride(layer) == (2,)


def test_this_projects_blurpools_are_recognised():
    from pytest_equivariance.layers import blurpool

    for layer in (blurpool.BlurPool1d(), blurpool.BlurPool2d(stride=2), blurpool.MaxBlurPool3d()):
        assert is_antialiased_downsampler(layer)


def test_ordinary_layers_are_not_downsamplers():
    for layer in (nn.Conv2d(4, 4, 3, stride=2), nn.MaxPool2d(2), nn.AvgPool2d(2), nn.Identity()):
        assert not is_antialiased_downsampler(layer)
        assert lowpass_stride(layer) is None


# ------------------------------------------------------------------------------ structure


def test_frozen_depthwise_lowpass_conv_is_recognised():
    assert is_antialiased_downsampler(frozen_conv(binomial()))


def test_trainable_or_non_lowpass_or_dense_convs_are_not():
    trainable = frozen_conv(binomial())
    trainable.weight.requires_grad_(True)
    assert not is_antialiased_downsampler(trainable)
    edge = binomial() * torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
    assert not is_antialiased_downsampler(frozen_conv(edge))
    dense = nn.Conv2d(4, 4, 3, stride=2, bias=False).requires_grad_(False)
    dense.weight.data.fill_(1 / 36)
    assert not is_antialiased_downsampler(dense)  # not depthwise: it mixes channels


def test_lowpass_kernel_values():
    assert is_lowpass_kernel(binomial()) is True
    assert is_lowpass_kernel(torch.full((3,), 1 / 3)) is True
    assert is_lowpass_kernel(torch.tensor([0.0, 1.0, 0.0])) is False  # a delta subsamples, it does not filter
    assert is_lowpass_kernel(torch.tensor([0.5, 0.5, 0.5])) is False  # not normalised
    assert is_lowpass_kernel(torch.tensor([-0.5, 2.0, -0.5])) is False  # negative taps
    assert is_lowpass_kernel(torch.empty(4, 1, 3, 3, device="meta")) is None  # values unknown


def test_parameter_free_module_with_a_filter_buffer_is_recognised():
    class MyBlur(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("kernel", binomial())

        def forward(self, x):
            return nn.functional.conv2d(x, self.kernel, stride=2, padding=1, groups=4)

    assert is_antialiased_downsampler(MyBlur())
    assert lint(MyBlur(), (1, 4, 16, 16)) == []


# ------------------------------------------------------------------------------ in models


@pytest.mark.parametrize("meta", [False, True], ids=["cpu", "meta"])
def test_antialiased_cnns_resnet18_only_keeps_its_strided_stem(meta):
    import antialiased_cnns

    with torch.device("meta" if meta else "cpu"):
        model = antialiased_cnns.resnet18(pretrained=False)
    found = lint(model, (1, 3, 64, 64))
    # maxpool.0 is MaxPool2d(kernel_size=2, stride=1): only the info-level even-kernel note
    assert [(f.code, f.qualname) for f in found] == [("EQ002", "conv1"), ("EQ011", "maxpool.0")]


def test_kornia_and_timm_blurpools_inside_a_model_are_not_flagged():
    import kornia
    from timm.layers import BlurPool2d

    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        kornia.filters.MaxBlurPool2D(3),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        BlurPool2d(4, stride=2),
        nn.Conv2d(4, 4, 3, padding=1),
        kornia.filters.BlurPool2D(3, stride=2),
    )
    assert lint(model, (1, 3, 32, 32)) == []


def test_a_frozen_lowpass_conv_is_trusted_structurally_on_meta():
    with torch.device("meta"):
        conv = nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False).requires_grad_(False)
    assert is_antialiased_downsampler(conv)  # values unknown: depthwise and frozen is enough
    assert lint(nn.Sequential(conv), (1, 4, 16, 16)) == []
