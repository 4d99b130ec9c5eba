"""EQ001-EQ003: strided max pools, convs and average pools that subsample without a low-pass filter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from pytest_equivariance.lint.findings import Severity
from pytest_equivariance.lint.rules.rule import (
    Hit,
    Rule,
    after_blur,
    blur_call,
    conv_ctor,
    fmt,
    ints,
    is_global_pool,
    polyphase_hint,
    spatial_ndim,
    subsamples,
    subsampling_stride,
)

if TYPE_CHECKING:
    from pytest_equivariance.lint.sites import ModelGraph, Site


def check_strided_max_pool(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ001: max (and other nonlinear) pooling that subsamples; global pooling is fine."""
    if site.family not in ("max_pool", "lp_pool", "fractional_max_pool", "adaptive_max_pool"):
        return
    if is_global_pool(site):
        return
    d = spatial_ndim(site)
    if site.family == "fractional_max_pool":
        yield Hit(site, f"{site.describe()} subsamples at random positions without low-pass filtering",
                  f"pytest_equivariance.MaxBlurPool{d}d(kernel_size=2, stride=2)")
        return
    stride = subsampling_stride(site)
    if not subsamples(stride):
        return
    s = fmt(stride)
    message = f"{site.describe()} subsamples by {s} without low-pass filtering"
    kernel = site.params.get("kernel_size")
    padding = ints(site.params.get("padding")) or (0,)
    dilation = ints(site.params.get("dilation")) or (1,)
    if site.family != "max_pool" or kernel is None:
        fix = (f"take the max densely (stride 1), then subsample with "
               f"pytest_equivariance.BlurPool{d}d(stride={s})")
    elif site.kind == "module":
        extra = (f", padding={fmt(padding)}" if any(padding) else "") + (
            f", dilation={fmt(dilation)}" if any(x != 1 for x in dilation) else "")
        fix = f"pytest_equivariance.MaxBlurPool{d}d(kernel_size={fmt(kernel)}, stride={s}{extra})"
    else:
        pad = f", padding={fmt(padding)}" if any(padding) else ""
        fix = blur_call(d, f"F.max_pool{d}d(x, {fmt(kernel)}, stride=1{pad})", s)
    yield Hit(site, message, polyphase_hint(fix, graph))


def check_strided_conv(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ002: a strided convolution whose input is not blurred first."""
    if site.family != "conv":
        return
    stride = ints(site.params.get("stride"))
    if not subsamples(stride) or after_blur(site, graph):
        return
    kernel = ints(site.params.get("kernel_size"))
    s = fmt(stride)
    detail = ""
    if kernel is not None and all(k == 1 for k in kernel):
        detail = " (a strided 1x1 conv is pure subsampling)"
    elif kernel is not None and kernel == stride:
        detail = " (patchify: kernel equals stride)"
    message = f"{site.describe()} subsamples by {s} without low-pass filtering first{detail}"
    d = spatial_ndim(site)
    if site.kind == "module" and site.op == f"nn.Conv{d}d":
        # A drop-in with nn.ConvNd's arguments and parameter names, so checkpoints still load.
        fix = "pytest_equivariance.Antialiased" + conv_ctor(site, site.op[3:]).removeprefix("nn.")
    elif site.kind == "module":
        fix = f"nn.Sequential(pytest_equivariance.BlurPool{d}d(stride=1), <this {site.op}>)"
    else:
        fix = f"F.conv{d}d({blur_call(d, 'x', 1)}, weight, stride={s}, ...)"
    yield Hit(site, message, polyphase_hint(fix, graph))


def check_strided_avg_pool(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ003: box-filter pooling that subsamples and is not global."""
    if site.family not in ("avg_pool", "adaptive_avg_pool") or is_global_pool(site):
        return
    stride = subsampling_stride(site)
    if not subsamples(stride) or after_blur(site, graph):
        return
    s, d = fmt(stride), spatial_ndim(site)
    message = f"{site.describe()} subsamples by {s} with a box filter, which lets much aliasing through"
    kernel = site.params.get("kernel_size")
    if site.family != "avg_pool" or kernel is None:  # adaptive: no fixed window to keep
        fix = blur_call(d, "x", s) if site.kind != "module" else f"pytest_equivariance.BlurPool{d}d(stride={s})"
    else:
        padding = ints(site.params.get("padding")) or (0,)
        extra = f", padding={fmt(padding)}" if any(padding) else ""
        extra += ", ceil_mode=True" if site.params.get("ceil_mode") else ""
        if site.kind == "module":
            fix = f"pytest_equivariance.BlurAvgPool{d}d(kernel_size={fmt(kernel)}, stride={s}{extra})"
        else:
            fix = f"pytest_equivariance.blur_avg_pool{d}d(x, {fmt(kernel)}, stride={s}{extra})"
    yield Hit(site, message, polyphase_hint(fix, graph))


EQ001 = Rule(
    code="EQ001",
    name="strided-max-pool",
    severity=Severity.ERROR,
    enabled_by_default=True,
    summary="Max pooling with stride > 1 subsamples without low-pass filtering, so it aliases.",
    why=(
        "A max pool with stride s keeps one value per s x s window. Shifting the input by one pixel "
        "moves the windows' contents across their borders, so the output changes by far more than a "
        "shift: small translations flip the pooled maxima (Azulay & Weiss 2019). Taking the max densely "
        "(stride 1) and then subsampling with a fixed low-pass filter (BlurPool, Zhang 2019) keeps most "
        "of max pooling's benefit and restores approximate shift equivariance."
    ),
    example=(
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)\n"
        "\n"
        "    def forward(self, x):\n"
        "        return F.max_pool2d(self.pool(x), 3, stride=2, padding=1)"
    ),
    fix=(
        "Take the max with stride 1, then blur-subsample: `pytest_equivariance.MaxBlurPool2d("
        "kernel_size=2, stride=2)` (1-d and 3-d: MaxBlurPool1d / MaxBlurPool3d), which is "
        "`nn.MaxPool2d(kernel_size=2, stride=1)` followed by `pytest_equivariance.BlurPool2d(stride=2)`. "
        "For functional calls write `blur_pool2d(F.max_pool2d(x, 2, stride=1), stride=2)`. "
        "`pytest_equivariance.antialias(model)` rewrites every module it flags; in a circular-padded "
        "model `antialias(model, method=\"polyphase\")` makes it exactly invariant to circular shifts "
        "(adaptive polyphase sampling: PolyphaseMaxPool2d).\n"
        "\n"
        "self.pool = pytest_equivariance.MaxBlurPool2d(kernel_size=2, stride=2)"
    ),
    check=check_strided_max_pool,
)


EQ002 = Rule(
    code="EQ002",
    name="strided-conv",
    severity=Severity.ERROR,
    enabled_by_default=True,
    summary="Convolution with stride > 1 whose input is not low-pass filtered first aliases.",
    why=(
        "A strided convolution is a dense convolution followed by subsampling. Its learned kernel is "
        "not a low-pass filter, so frequencies above the new Nyquist limit fold back into the output "
        "and a one-pixel input shift changes features instead of shifting them. This covers 1x1 "
        "shortcut projections (pure subsampling, no filtering at all) and patchify stems "
        "(kernel == stride), which only shift-commute for shifts that are multiples of the stride."
    ),
    example=(
        "self.conv = nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1)\n"
        "self.shortcut = nn.Conv2d(64, 128, kernel_size=1, stride=2)"
    ),
    fix=(
        "Blur first: a stride-1 blur directly before the strided conv makes it anti-aliased. "
        "`pytest_equivariance.AntialiasedConv2d` takes nn.Conv2d's arguments and keeps its parameter "
        "names, so existing checkpoints load (1-d and 3-d: AntialiasedConv1d / AntialiasedConv3d; "
        "`blur_position=\"after\"` convolves with stride 1, then blur-subsamples, as in Zhang 2019). "
        "`pytest_equivariance.antialias(model)` rewrites every module it flags; in a circular-padded "
        "model `antialias(model, method=\"polyphase\")` makes it exactly invariant to circular shifts "
        "(PolyphaseConv2d: the conv at stride 1, then the polyphase component of largest norm).\n"
        "\n"
        "self.conv = pytest_equivariance.AntialiasedConv2d(64, 128, kernel_size=3, stride=2, padding=1)\n"
        "# by hand: nn.Sequential(pytest_equivariance.BlurPool2d(stride=1), nn.Conv2d(64, 128, 3, stride=2, padding=1))"
    ),
    check=check_strided_conv,
)


EQ003 = Rule(
    code="EQ003",
    name="strided-avg-pool",
    severity=Severity.WARNING,
    enabled_by_default=True,
    summary="Average pooling with stride > 1 that is not global uses a box filter: weak anti-aliasing.",
    why=(
        "Average pooling low-pass filters before it subsamples, but a box filter has large side lobes: "
        "much of the energy above the new Nyquist limit passes and aliases. A binomial (BlurPool) "
        "filter of the same size suppresses it far better. Global average pooling is never flagged: "
        "it is exactly shift-invariant under circular shifts."
    ),
    example="self.pool = nn.AvgPool2d(kernel_size=2, stride=2)",
    fix=(
        "Follow the box filter with a binomial one: `pytest_equivariance.BlurAvgPool2d` takes "
        "nn.AvgPool2d's arguments and keeps its output size (the box at stride 1, then BlurPool with "
        "the pool's stride; BlurAvgPool1d / BlurAvgPool3d for 1-d and 3-d, `blur_avg_pool2d` for "
        "F.avg_pool2d). `pytest_equivariance.antialias(model)` rewrites every module it flags.\n"
        "\n"
        "self.pool = pytest_equivariance.BlurAvgPool2d(kernel_size=2, stride=2)"
    ),
    check=check_strided_avg_pool,
)
