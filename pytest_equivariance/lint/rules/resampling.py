"""EQ004, EQ005, EQ007: resizing, strided slicing and transposed convolutions that alias."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterator

from pytest_equivariance.lint.findings import Severity
from pytest_equivariance.lint.rules.rule import (
    SPATIAL_PRODUCERS,
    Hit,
    Rule,
    after_blur,
    conv_ctor,
    fmt,
    ints,
    spatial_in,
    spatial_ndim,
    spatial_out,
)

if TYPE_CHECKING:
    from pytest_equivariance.lint.sites import ModelGraph, Site


_ALIASING_MODES = frozenset({"nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear"})


def check_aliasing_interpolation(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ004: interpolation that makes the signal smaller without an anti-aliasing filter."""
    if site.family != "interpolate":
        return
    mode = site.params.get("mode") or "nearest"
    if mode not in _ALIASING_MODES or (site.params.get("antialias") and mode in ("bilinear", "bicubic")):
        return
    before, after = spatial_in(site), spatial_out(site)
    if before is not None and after is not None and len(before) == len(after):
        if not any(a < b for a, b in zip(after, before)):
            return
        change = f"{'x'.join(map(str, before))} -> {'x'.join(map(str, after))}"
        factors = tuple(max(1, round(b / a)) for a, b in zip(after, before))
    else:
        scale = site.params.get("scale_factor")
        scales = (scale,) if isinstance(scale, (int, float)) else scale if isinstance(scale, tuple) else None
        if not scales or not any(isinstance(f, (int, float)) and f < 1 for f in scales):
            return
        change = f"scale_factor={fmt(scale) if ints(scale) else scale!r}"
        factors = tuple(max(1, round(1 / f)) for f in scales)
    if after_blur(site, graph):
        return
    d = spatial_ndim(site)
    how = "picks single pixels" if mode.startswith("nearest") else "interpolates without antialias=True"
    message = f"{site.describe()} downscales ({change}) and {how}, so it aliases"
    options = []
    if d == 2:
        options.append('F.interpolate(x, ..., mode="bilinear", antialias=True)')
    if all(f == factors[0] for f in factors) and factors[0] > 1:
        options.append(f"pytest_equivariance.BlurPool{d}d(stride={factors[0]})")
    yield Hit(site, message, " or ".join(options) or f"blur before resizing, e.g. pytest_equivariance.BlurPool{d}d(stride=1)")


def check_strided_slice(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ005: ``x[..., ::s]`` on a spatial dim of a tensor."""
    if site.family != "getitem" or not site.from_input:
        return
    strided = site.params.get("strided_dims") or []
    shape = site.input_shape
    if site.node is None:
        if site.shaped and shape is None:
            return  # seen in an eager run: the sliced value was not a tensor
    elif site.shaped:
        if shape is None or not (site.node.args and _is_tensor_node(site.node.args[0])):
            return  # a list, tuple or torch.Size, not a tensor
    elif site.node.args:
        source = graph.site_of(site.node.args[0])
        if source is not None and source.op in ("Tensor.size", "getattr"):
            return
    ndim = len(shape) if shape is not None else None
    spatial = [(dim, step) for dim, step in strided
               if (dim >= 2 and (ndim is None or ndim >= 3)) or (dim < 0 and ndim is None)]
    if not spatial or after_blur(site, graph):
        return
    if all(dim == -1 or (ndim is not None and dim == ndim - 1) for dim, _ in spatial) and _from_dense(site, graph):
        return  # the last dim holds features of a dense layer (channels-last, e.g. rotary embeddings)
    steps = sorted({step for _, step in spatial})
    s = fmt(tuple(steps))
    d = ndim - 2 if ndim is not None and ndim >= 3 else max(1, len(spatial))
    message = f"x{site.params.get('index', '[...]')} subsamples by {s} without low-pass filtering"
    yield Hit(site, message, f"pytest_equivariance.BlurPool{d}d(stride={steps[0]})(x)")


def _from_dense(site: "Site", graph: "ModelGraph") -> bool:
    """Whether the first input's last dim comes from a Linear layer rather than from a feature map."""
    source = graph.walk_back(site, lambda s: s.family not in SPATIAL_PRODUCERS and s.family != "linear")
    return source is not None and source.family == "linear"


def _is_tensor_node(value: Any) -> bool:
    meta = getattr(value, "meta", None)
    return bool(meta and meta.get("lint_is_tensor"))


def check_checkerboard(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ007: transposed conv whose kernel is not a multiple of its stride."""
    if site.family != "conv_transpose":
        return
    kernel, stride = ints(site.params.get("kernel_size")), ints(site.params.get("stride"))
    if kernel is None or stride is None or not any(s > 1 and k % s for k, s in zip(kernel, stride)):
        return
    message = (f"{site.describe()} has a kernel size that is not a multiple of its stride, "
               f"so it stamps a checkerboard pattern on its output")
    new_kernel = tuple(s * math.ceil(k / s) if s > 1 else k for k, s in zip(kernel, stride))
    new_padding = tuple((k - s) // 2 if s > 1 else p for k, s, p in
                        zip(new_kernel, stride, ints(site.params.get("padding")) or (0,) * len(kernel)))
    if site.kind == "module" and site.op.startswith("nn."):
        fix = conv_ctor(site, site.op[3:], kernel_size=new_kernel, padding=new_padding, output_padding=(0,))
    else:
        fix = f"a kernel size of {fmt(new_kernel)} with padding={fmt(new_padding)}, or resize then convolve"
    yield Hit(site, message, fix)


EQ004 = Rule(
    code="EQ004",
    name="aliasing-interpolation",
    severity=Severity.ERROR,
    enabled_by_default=True,
    summary="Interpolation that downscales without anti-aliasing (nearest modes, or antialias=False).",
    why=(
        "Downscaling by interpolation samples the input on a coarser grid. Nearest-neighbour modes "
        "pick single pixels, and bilinear/bicubic without `antialias=True` only look at the few pixels "
        "nearest each sample, so above-Nyquist content aliases exactly as strided slicing does. "
        "Upscaling is not flagged. To measure what rescaling the input does to a model's output, "
        "`check_scale_equivariant` / `check_scale_invariant` rescale it by ideal or anti-aliased resampling."
    ),
    example=(
        "y = F.interpolate(x, scale_factor=0.5, mode=\"nearest\")\n"
        "y = F.interpolate(x, size=(56, 56), mode=\"bilinear\")"
    ),
    fix=(
        "Use a filtering resize: `F.interpolate(x, scale_factor=0.5, mode=\"bilinear\", "
        "antialias=True)` (also bicubic), or blur-subsample with "
        "`pytest_equivariance.BlurPool2d(stride=2)` for integer factors.\n"
        "\n"
        "y = F.interpolate(x, scale_factor=0.5, mode=\"bilinear\", antialias=True)"
    ),
    check=check_aliasing_interpolation,
)


EQ005 = Rule(
    code="EQ005",
    name="strided-slice",
    severity=Severity.ERROR,
    enabled_by_default=True,
    summary="Subsampling by strided slicing (x[..., ::2]) keeps one pixel in s with no filtering.",
    why=(
        "A strided slice such as `x[:, :, ::2, ::2]` or `x[..., 1::2]` is subsampling with no low-pass "
        "filter at all: every frequency above the new Nyquist limit aliases, and a one-pixel shift "
        "selects a different polyphase component, changing the output completely."
    ),
    example="y = x[:, :, ::2, ::2]",
    fix=(
        "Blur before slicing (a stride-1 blur directly before the slice is recognised), subsample "
        "with `pytest_equivariance.BlurPool2d(stride=2)`, or select the polyphase component "
        "adaptively (Chaman & Dokmanić 2021).\n"
        "\n"
        "y = pytest_equivariance.BlurPool2d(stride=2)(x)"
    ),
    check=check_strided_slice,
)


EQ007 = Rule(
    code="EQ007",
    name="checkerboard-transposed-conv",
    severity=Severity.WARNING,
    enabled_by_default=True,
    summary="Transposed convolution whose kernel size is not divisible by its stride (checkerboard).",
    why=(
        "When the kernel size is not a multiple of the stride, output pixels receive contributions "
        "from different numbers of kernel taps depending on their phase, which stamps a periodic "
        "checkerboard pattern on the output (Odena et al. 2016). The output then depends on where the "
        "input sits relative to the stride lattice, not only on its content."
    ),
    example="self.up = nn.ConvTranspose2d(64, 32, kernel_size=3, stride=2, padding=1, output_padding=1)",
    fix=(
        "Use a kernel size that is a multiple of the stride, or resize and then convolve.\n"
        "\n"
        "self.up = nn.ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1)\n"
        "# or: nn.Sequential(nn.Upsample(scale_factor=2, mode=\"bilinear\"), nn.Conv2d(64, 32, 3, padding=1))"
    ),
    check=check_checkerboard,
)
