"""EQ006 on space-to-depth written with reshapes (timm's tresnet ``SpaceToDepth``, Swin's patch merging).

Each positive module below is checked to really be space-to-depth (it equals ``F.pixel_unshuffle`` up
to the order of channels); each negative one really does not subsample (window partition is undone
exactly by window reverse, depth-to-space is pixel shuffle).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optional import require
from pytest_equivariance import BlurPool2d
from pytest_equivariance.lint import lint

NCHW = (2, 3, 16, 16)
NHWC = (2, 16, 16, 8)


def eq006(model: nn.Module, shape) -> list:
    return lint(model, shape, select=["EQ006"])


def line_of(marker: str) -> int:
    """The line of this file that carries ``marker`` in a comment."""
    with open(__file__) as f:
        return next(i for i, text in enumerate(f, 1) if text.rstrip().endswith(f"# {marker}"))


def same_values_per_pixel(y: torch.Tensor, expected: torch.Tensor) -> bool:
    """Whether ``y`` equals ``expected`` up to a permutation of channels (dim 1)."""
    return y.shape == expected.shape and torch.equal(y.sort(dim=1).values, expected.sort(dim=1).values)


# ------------------------------------------------------------------------- space-to-depth


class SpaceToDepth(nn.Module):
    """timm's tresnet stem: (N, C, H, W) -> (N, C * bs * bs, H / bs, W / bs), channels ordered (bs, bs, C)."""

    def __init__(self, bs: int = 4) -> None:
        super().__init__()
        self.bs = bs

    def forward(self, x):
        N, C, H, W = x.size()
        x = x.view(N, C, H // self.bs, self.bs, W // self.bs, self.bs)  # tresnet-view
        x = x.permute(0, 3, 5, 1, 2, 4).contiguous()
        return x.view(N, C * self.bs * self.bs, H // self.bs, W // self.bs)


class UnshuffleByReshape(nn.Module):
    """Exactly F.pixel_unshuffle, channels ordered (C, s, s), written with torch.reshape."""

    def __init__(self, s: int = 2) -> None:
        super().__init__()
        self.s = s

    def forward(self, x):
        B, C, H, W = x.shape
        s = self.s
        x = torch.reshape(x, (B, C, H // s, s, W // s, s))  # functional-reshape
        return x.permute(0, 1, 3, 5, 2, 4).reshape(B, C * s * s, H // s, W // s)


class PatchMerging(nn.Module):
    """Swin / SwinV2 patch merging (timm): channels-last (B, H, W, C) -> (B, H / 2, W / 2, 4 * C) -> Linear."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        B, H, W, C = x.shape
        x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)  # swin-merge
        return self.reduction(x)


class PatchifyByReshape(nn.Module):
    """A ViT patch embedding written with reshapes: p x p patches into channels, then tokens."""

    def forward(self, x):
        B, C, H, W = x.shape
        x = x.reshape(B, C, H // 4, 4, W // 4, 4).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(B, (H // 4) * (W // 4), C * 16)


class RectangularSpaceToDepth(nn.Module):
    def forward(self, x):
        B, C, H, W = x.shape
        x = x.view(B, C, H // 2, 2, W // 4, 4).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(B, C * 8, H // 2, W // 4)


def test_the_positive_modules_are_space_to_depth():
    x = torch.randn(NCHW)
    assert same_values_per_pixel(SpaceToDepth(4)(x), F.pixel_unshuffle(x, 4))
    assert torch.equal(UnshuffleByReshape(2)(x), F.pixel_unshuffle(x, 2))
    channels_last = torch.randn(NHWC)
    merged = channels_last.reshape(2, 8, 2, 8, 2, 8).permute(0, 1, 3, 4, 2, 5).flatten(3).permute(0, 3, 1, 2)
    assert same_values_per_pixel(merged, F.pixel_unshuffle(channels_last.permute(0, 3, 1, 2), 2))


def test_tresnet_space_to_depth_is_flagged_at_its_first_reshape():
    [finding] = eq006(SpaceToDepth(4), NCHW)
    assert finding.kind == "method" and finding.op == "Tensor.view" and finding.qualname == ""
    assert (finding.file, finding.line) == (__file__, line_of("tresnet-view"))
    assert "4x4 pixel blocks into channels" in finding.message
    assert "nn.PixelUnshuffle(4)" in finding.message and "multiples of 4" in finding.message
    assert finding.fix.startswith("x = blur_pool2d(x, stride=1) before it")


def test_functional_reshape_and_other_channel_orders_are_flagged():
    [finding] = eq006(UnshuffleByReshape(2), NCHW)
    assert finding.kind == "function" and finding.op == "torch.reshape"
    assert finding.line == line_of("functional-reshape")
    assert "2x2 pixel blocks" in finding.message


def test_swin_patch_merging_is_flagged_as_channels_last_space_to_depth():
    [finding] = eq006(PatchMerging(), NHWC)
    assert finding.kind == "method" and finding.op == "Tensor.reshape"
    assert (finding.file, finding.line) == (__file__, line_of("swin-merge"))
    assert "channels-last space-to-depth" in finding.message and "2x2" in finding.message
    # the fix blurs in NCHW and comes back to channels-last
    assert "blur_pool2d(x.permute(0, 3, 1, 2), stride=1).permute(0, 2, 3, 1)" in finding.fix


def test_patchify_and_unequal_factors_are_flagged():
    [patchify] = eq006(PatchifyByReshape(), NCHW)
    assert "4x4 pixel blocks" in patchify.message
    [rectangular] = eq006(RectangularSpaceToDepth(), NCHW)
    assert "2x4 pixel blocks" in rectangular.message and "PixelUnshuffle" not in rectangular.message


def test_one_finding_per_call_site():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.s2d = SpaceToDepth(2)

        def forward(self, x):
            return self.s2d(self.s2d(x))

    assert len(eq006(Twice(), NCHW)) == 1  # one module called twice: one place to fix
    two = eq006(nn.Sequential(SpaceToDepth(2), SpaceToDepth(2)), NCHW)
    assert [f.qualname for f in two] == ["0", "1"]


def test_a_blur_directly_before_it_silences_it():
    assert eq006(nn.Sequential(BlurPool2d(stride=1), SpaceToDepth(2)), NCHW) == []

    class BlurredMerging(PatchMerging):
        def forward(self, x):
            x = BlurPool2d(stride=1)(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            return super().forward(x)

    assert eq006(BlurredMerging(), NHWC) == []
    assert len(eq006(nn.Sequential(BlurPool2d(stride=2), SpaceToDepth(2)), NCHW)) == 1  # a strided blur is no fix


# ---------------------------------------------------------------- reshapes that do not subsample


def window_partition(x, ws: int):
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C)


def window_reverse(windows, ws: int, H: int, W: int):
    C = windows.shape[-1]
    x = windows.view(-1, H // ws, W // ws, ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, H, W, C)


class WindowAttentionLayout(nn.Module):
    """Swin's window partition -> tokens per window -> window reverse, as in timm's SwinTransformerBlock."""

    def __init__(self, ws: int = 4) -> None:
        super().__init__()
        self.ws = ws

    def forward(self, x):
        B, H, W, C = x.shape
        windows = window_partition(x, self.ws).view(-1, self.ws * self.ws, C)
        windows = windows.view(-1, self.ws, self.ws, C)
        return window_reverse(windows, self.ws, H, W)


class GridPartition(nn.Module):
    """MaxViT's grid partition: the fine factor (the position inside a cell) goes to the batch."""

    def forward(self, x):
        B, H, W, C = x.shape
        x = x.view(B, 4, H // 4, 4, W // 4, C).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(-1, 4, 4, C)


class PatchesIntoBatch(nn.Module):
    """Each 2x2 patch flattened into one vector, the patch grid moved into the batch (like windowing)."""

    def forward(self, x):
        B, H, W, C = x.shape
        return x.view(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4 * C)


class PolyphaseIntoBatch(nn.Module):
    """The four polyphase components as four images of the batch: the pixel offsets go to the batch."""

    def forward(self, x):
        B, C, H, W = x.shape
        x = x.view(B, C, H // 2, 2, W // 2, 2).permute(3, 5, 0, 1, 2, 4)
        return x.reshape(4 * B * C, 1, H // 2, W // 2)


class DepthToSpace(nn.Module):
    """timm's DepthToSpace (pixel shuffle by hand): upsamples."""

    def forward(self, x):
        N, C, H, W = x.size()
        x = x.view(N, 2, 2, C // 4, H, W).permute(0, 3, 4, 1, 5, 2).contiguous()
        return x.view(N, C // 4, H * 2, W * 2)


class ChannelShuffle(nn.Module):
    """ShuffleNet: splits the channel dim, not a spatial one."""

    def forward(self, x):
        B, C, H, W = x.shape
        return x.view(B, 2, C // 2, H, W).transpose(1, 2).contiguous().view(B, C, H, W)


class Heads(nn.Module):
    """Attention heads on a channels-last map and on tokens; flattening for a head."""

    def forward(self, x):
        B, H, W, C = x.shape
        heads = x.reshape(B, H, W, 2, C // 2).permute(0, 3, 1, 2, 4).reshape(B * 2, H * W, C // 2)
        tokens = x.reshape(B, H * W, C).reshape(B, H * W, 2, C // 2).transpose(1, 2)
        return heads.sum() + tokens.sum() + x.flatten(1).sum() + x.view(B, -1).sum()


class FlattenForHead(nn.Module):
    def forward(self, x):
        B, C, H, W = x.shape
        return x.view(B, C, H * W).transpose(1, 2).reshape(B, -1)


def test_the_negative_modules_do_not_subsample():
    x = torch.randn(NHWC)
    assert torch.equal(WindowAttentionLayout(4)(x), x)
    y = torch.randn(2, 12, 8, 8)
    channels_as_pixel_shuffle = y.view(2, 2, 2, 3, 8, 8).permute(0, 3, 1, 2, 4, 5).reshape(2, 12, 8, 8)
    assert torch.equal(DepthToSpace()(y), F.pixel_shuffle(channels_as_pixel_shuffle, 2))


@pytest.mark.parametrize(
    "model, shape",
    [
        (WindowAttentionLayout(4), NHWC),
        (WindowAttentionLayout(4), (1, 16, 16, 8)),  # batch of one
        (WindowAttentionLayout(16), NHWC),  # one window covering the whole map
        (GridPartition(), NHWC),
        (PatchesIntoBatch(), NHWC),
        (PatchesIntoBatch(), (1, 16, 16, 8)),
        (PolyphaseIntoBatch(), NCHW),
        (PolyphaseIntoBatch(), (1, 3, 16, 16)),
        (DepthToSpace(), (2, 12, 8, 8)),
        (ChannelShuffle(), NCHW),
        (Heads(), NHWC),
        (FlattenForHead(), NCHW),
        (nn.Flatten(), NCHW),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "x".join(map(str, v)),
)
def test_reshapes_that_do_not_subsample_are_not_flagged(model, shape):
    assert eq006(model, shape) == []


# --------------------------------------------------------------------------------------- timm


def _timm_model(name: str) -> nn.Module:
    timm = require("timm")
    with torch.device("meta"):
        return timm.create_model(name, pretrained=False)


@pytest.mark.zoo
def test_timm_tresnet_stem():
    [finding] = eq006(_timm_model("tresnet_m"), (1, 3, 224, 224))
    assert finding.qualname == "body.s2d" and finding.kind == "method"
    source = open(finding.file).read().splitlines()[finding.line - 1]
    assert "x.view(N, C, H // self.bs, self.bs, W // self.bs, self.bs)" in source
    assert "4x4 pixel blocks" in finding.message


@pytest.mark.zoo
@pytest.mark.parametrize("name, shape", [("swin_tiny_patch4_window7_224", (1, 3, 224, 224)),
                                         ("swinv2_tiny_window8_256", (1, 3, 256, 256))])
def test_timm_swin_patch_merging_but_not_window_partition(name, shape):
    findings = eq006(_timm_model(name), shape)
    assert [f.qualname for f in findings] == ["layers.1.downsample", "layers.2.downsample", "layers.3.downsample"]
    for finding in findings:
        source = open(finding.file).read().splitlines()[finding.line - 1]
        assert ".permute(0, 1, 3, 4, 2, 5).flatten(3)" in source
        assert "channels-last space-to-depth" in finding.message
