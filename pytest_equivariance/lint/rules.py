"""The rule table: one small, documented unit per EQ code.

Every text a user reads about a rule lives here — ``equiv-lint --list-rules``, ``--explain EQ001`` and
``docs/rules/EQ0xx.md`` are all produced from :data:`RULES`. The detection logic of each rule lives
beside its text (the ``check`` functions below); the engine runs them over a :class:`ModelGraph`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from pytest_equivariance.lint.findings import Severity

if TYPE_CHECKING:
    from pytest_equivariance.lint.graph import ModelGraph, Site


@dataclass(frozen=True)
class Hit:
    """What a rule's check reports for one site; the engine turns it into a :class:`Finding`."""

    site: "Site"
    message: str
    fix: str


#: A rule's detection logic: yields one :class:`Hit` per offending call site.
Check = Callable[["Site", "ModelGraph"], Iterator[Hit]]


@dataclass(frozen=True)
class Rule:
    """One lint rule: its code, texts for users, and the check that finds it in a model graph."""

    code: str
    name: str  # kebab-case, e.g. "strided-max-pool"
    severity: Severity
    enabled_by_default: bool
    summary: str  # one line
    why: str  # a paragraph: why it breaks equivariance
    example: str  # code that is flagged
    fix: str  # what to write instead (text and snippet)
    check: Check | None = field(default=None, compare=False, repr=False)


_EQ001 = Rule(
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
)

_EQ002 = Rule(
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
)

_EQ003 = Rule(
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
)

_EQ004 = Rule(
    code="EQ004",
    name="aliasing-interpolation",
    severity=Severity.ERROR,
    enabled_by_default=True,
    summary="Interpolation that downscales without anti-aliasing (nearest modes, or antialias=False).",
    why=(
        "Downscaling by interpolation samples the input on a coarser grid. Nearest-neighbour modes "
        "pick single pixels, and bilinear/bicubic without `antialias=True` only look at the few pixels "
        "nearest each sample, so above-Nyquist content aliases exactly as strided slicing does. "
        "Upscaling is not flagged."
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
)

_EQ005 = Rule(
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
)

_EQ006 = Rule(
    code="EQ006",
    name="space-to-depth",
    severity=Severity.WARNING,
    enabled_by_default=True,
    summary=("Space-to-depth (nn.PixelUnshuffle, F.pixel_unshuffle, or written with reshapes) turns a "
             "shift into a channel permutation."),
    why=(
        "Pixel unshuffle moves each s x s block of pixels into s*s channels. A shift by a multiple of "
        "s shifts the output; any other shift permutes and mixes channels, so layers after it see a "
        "different signal. It loses no information, but downstream features are only equivariant to "
        "shifts on the coarse lattice. The same operation written by hand is flagged too: a reshape "
        "that splits each spatial dim into (H/s, s), followed by permutes and reshapes that move the "
        "s factors into the channel axis (timm's tresnet SpaceToDepth, channels-last Swin patch "
        "merging); it is reported at the splitting reshape. Window partition, which moves the H/s "
        "factors into the batch axis and keeps the s x s window spatial, does not subsample and is "
        "not flagged."
    ),
    example=(
        "self.down = nn.PixelUnshuffle(downscale_factor=2)\n"
        "# by hand, NCHW:\n"
        "x = x.view(B, C, H // 2, 2, W // 2, 2).permute(0, 3, 5, 1, 2, 4).reshape(B, 4 * C, H // 2, W // 2)\n"
        "# by hand, channels-last (patch merging):\n"
        "x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)"
    ),
    fix=(
        "Blur before it (a stride-1 blur directly before the unshuffle, or before the reshape that "
        "starts a hand-written one, is recognised), or use a polyphase-aware design that picks the "
        "phase from the input. A channels-last tensor is blurred as NCHW: "
        "`blur_pool2d(x.permute(0, 3, 1, 2), stride=1).permute(0, 2, 3, 1)`.\n"
        "\n"
        "self.down = nn.Sequential(pytest_equivariance.BlurPool2d(stride=1), nn.PixelUnshuffle(2))"
    ),
)

_EQ007 = Rule(
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
)

_EQ008 = Rule(
    code="EQ008",
    name="flatten-spatial-into-dense",
    severity=Severity.WARNING,
    enabled_by_default=True,
    summary="Spatial dimensions are flattened into a dense layer instead of pooled globally.",
    why=(
        "Flattening a C x H x W feature map into a Linear layer gives every spatial position its own "
        "weights, so the head sees where a feature is, not only whether it is there: the prediction "
        "changes when the input shifts, however equivariant the backbone is. Global pooling first "
        "makes the head shift-invariant."
    ),
    example=(
        "x = torch.flatten(self.features(x), 1)  # (N, 512 * 7 * 7)\n"
        "return self.classifier(x)               # nn.Linear(512 * 7 * 7, 1000)"
    ),
    fix=(
        "Pool globally before the head and size the dense layer to the channels.\n"
        "\n"
        "x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)  # (N, 512)\n"
        "return self.classifier(x)                                  # nn.Linear(512, 1000)"
    ),
)

_EQ009 = Rule(
    code="EQ009",
    name="absolute-position-embedding",
    severity=Severity.WARNING,
    enabled_by_default=True,
    summary="A learned absolute positional embedding is added to spatial features.",
    why=(
        "Adding a learned tensor that varies over positions (a ViT `pos_embedding`) tags every token "
        "or pixel with where it is. The same content at another position then produces different "
        "features, so the network is not shift-equivariant by construction."
    ),
    example=(
        "self.pos_embedding = nn.Parameter(torch.zeros(1, 197, 768))\n"
        "...\n"
        "x = x + self.pos_embedding"
    ),
    fix=(
        "Use a relative position encoding (relative position bias, as in Swin) or a conditional one "
        "computed from the features by a depthwise convolution (CPVT).\n"
        "\n"
        "self.pos = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)  # conditional position encoding\n"
        "x = x + self.pos(x)"
    ),
)

_EQ010 = Rule(
    code="EQ010",
    name="zero-padding",
    severity=Severity.INFO,
    enabled_by_default=False,
    summary="Zero or constant padding: exact equivariance fails near the borders.",
    why=(
        "Zero padding surrounds the image with a frame that does not move when the content shifts, so "
        "outputs near the border change under a circular shift, and the network can even learn "
        "absolute position from the border (Islam et al. 2020). Interior outputs are unaffected; this "
        "matters for exact checks, which is why the rule is off by default."
    ),
    example="self.conv = nn.Conv2d(64, 64, kernel_size=3, padding=1)",
    fix=(
        "Pad circularly where exact shift equivariance is tested.\n"
        "\n"
        "self.conv = nn.Conv2d(64, 64, kernel_size=3, padding=1, padding_mode=\"circular\")"
    ),
)

_EQ011 = Rule(
    code="EQ011",
    name="half-pixel-offset",
    severity=Severity.INFO,
    enabled_by_default=True,
    summary="Even-sized kernel or asymmetric padding: a half-pixel offset breaks flip/rotation alignment.",
    why=(
        "A kernel with an even size, or padding that differs between the two sides of a dimension, "
        "has no centre pixel: its output grid sits half a pixel away from the input grid. Flipping or "
        "rotating the input then does not flip or rotate the output about the same point, so flip and "
        "rot90 equivariance fail even for symmetric kernels."
    ),
    example=(
        "self.conv = nn.Conv2d(64, 64, kernel_size=2)\n"
        "x = F.pad(x, (0, 1, 0, 1))"
    ),
    fix=(
        "Use odd kernel sizes with symmetric padding.\n"
        "\n"
        "self.conv = nn.Conv2d(64, 64, kernel_size=3, padding=1)"
    ),
)

# ---------------------------------------------------------------------------------------------
# Checks: one per rule. Each looks at one site (and, for patterns, its neighbours in the graph).

#: Ops that change neither where a signal's energy lies in frequency nor its grid: a blur followed
#: by these and then a strided op still low-pass filters that op's input.
_SPECTRUM_PRESERVING = frozenset({"identity", "dropout", "norm", "pad"})
_POOLS = frozenset({"max_pool", "avg_pool", "lp_pool", "fractional_max_pool",
                    "adaptive_avg_pool", "adaptive_max_pool"})


def _ints(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, int):
        return (value,)
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return value
    return None


def _spatial_in(site: "Site") -> tuple[int, ...] | None:
    shape = site.input_shape
    return tuple(shape[2:]) if shape is not None and len(shape) >= 3 else None


def _spatial_out(site: "Site") -> tuple[int, ...] | None:
    shape = site.output_shape
    return tuple(shape[2:]) if shape is not None and len(shape) >= 3 else None


def _fmt(values: Any) -> str:
    """(2, 2) -> "2", (1, 2) -> "(1, 2)": the way users write strides."""
    ints = _ints(values)
    if ints is None:
        return repr(values)
    return str(ints[0]) if len(set(ints)) == 1 else repr(ints)


def _dims(site: "Site") -> int:
    if site.ndim:
        return site.ndim
    spatial = _spatial_in(site)
    return len(spatial) if spatial else 2


def _is_global_pool(site: "Site") -> bool:
    """Whether a pooling site reduces every spatial dim to one value (never flagged)."""
    if site.family in ("adaptive_avg_pool", "adaptive_max_pool"):
        size = site.params.get("output_size")
        if isinstance(size, tuple) and size and all(s == 1 for s in size):
            return True
    out = _spatial_out(site)
    return out is not None and all(s == 1 for s in out)


def _subsampling_stride(site: "Site") -> tuple[int, ...] | None:
    """Return a site's subsampling factor per spatial dim, or ``None`` if unknown."""
    if site.family in ("adaptive_avg_pool", "adaptive_max_pool"):
        before, after = _spatial_in(site), _spatial_out(site)
        if before is None or after is None or len(before) != len(after):
            return None
        return tuple(math.ceil(b / a) if 0 < a < b else 1 for b, a in zip(before, after))
    return _ints(site.params.get("stride"))


def _subsamples(stride: tuple[int, ...] | None) -> bool:
    return stride is not None and any(s > 1 for s in stride)


def _after_blur(site: "Site", graph: "ModelGraph") -> bool:
    """Whether the site's input comes straight from a stride-1 fixed low-pass filter."""
    return _is_pure_blur(graph.walk_back(site, lambda s: s.family in _SPECTRUM_PRESERVING))


def _is_pure_blur(source: "Site | None") -> bool:
    """Whether ``source`` is a fixed low-pass filter that does not subsample (stride 1)."""
    if source is None or source.family != "blur":
        return False
    stride = _ints(source.params.get("stride"))
    return stride is None or all(s == 1 for s in stride)


def _conv_ctor(site: "Site", cls: str, **override: Any) -> str:
    params = {**site.params, **override}
    head = [str(params.get("in_channels", "in_channels")), str(params.get("out_channels", "out_channels"))]
    rest = [f"kernel_size={_fmt(params['kernel_size'])}" if params.get("kernel_size") else None,
            f"stride={_fmt(params['stride'])}" if params.get("stride") else None]
    padding = params.get("padding")
    if padding and (isinstance(padding, str) or any(padding)):
        rest.append(f"padding={_fmt(padding) if _ints(padding) else repr(padding)}")
    if params.get("output_padding") and any(params["output_padding"]):
        rest.append(f"output_padding={_fmt(params['output_padding'])}")
    if params.get("dilation") and any(d != 1 for d in params["dilation"]):
        rest.append(f"dilation={_fmt(params['dilation'])}")
    if params.get("groups", 1) != 1:
        rest.append(f"groups={params['groups']}")
    if params.get("bias") is False:
        rest.append("bias=False")
    if params.get("padding_mode", "zeros") != "zeros":
        rest.append(f"padding_mode={params['padding_mode']!r}")
    return f"nn.{cls}(" + ", ".join(head + [r for r in rest if r]) + ")"


def _blur_call(d: int, arg: str, stride: Any) -> str:
    """Return the functional blur-subsample snippet for a fix, spelled as the module fixes are."""
    return f"pytest_equivariance.blur_pool{d}d({arg}, stride={stride})"


def _polyphase_hint(fix: str, graph: "ModelGraph") -> str:
    """Name the exact fix beside the blur in a circular-padded model (one built for exact checks)."""
    if not graph.pads_circularly():
        return fix
    return (f'{fix}; or, exactly invariant to circular shifts in this circular-padded model: '
            f'pytest_equivariance.antialias(model, method="polyphase")')


def _check_strided_max_pool(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ001: max (and other nonlinear) pooling that subsamples; global pooling is fine."""
    if site.family not in ("max_pool", "lp_pool", "fractional_max_pool", "adaptive_max_pool"):
        return
    if _is_global_pool(site):
        return
    d = _dims(site)
    if site.family == "fractional_max_pool":
        yield Hit(site, f"{site.describe()} subsamples at random positions without low-pass filtering",
                  f"pytest_equivariance.MaxBlurPool{d}d(kernel_size=2, stride=2)")
        return
    stride = _subsampling_stride(site)
    if not _subsamples(stride):
        return
    s = _fmt(stride)
    message = f"{site.describe()} subsamples by {s} without low-pass filtering"
    kernel = site.params.get("kernel_size")
    padding = _ints(site.params.get("padding")) or (0,)
    dilation = _ints(site.params.get("dilation")) or (1,)
    if site.family != "max_pool" or kernel is None:
        fix = (f"take the max densely (stride 1), then subsample with "
               f"pytest_equivariance.BlurPool{d}d(stride={s})")
    elif site.kind == "module":
        extra = (f", padding={_fmt(padding)}" if any(padding) else "") + (
            f", dilation={_fmt(dilation)}" if any(x != 1 for x in dilation) else "")
        fix = f"pytest_equivariance.MaxBlurPool{d}d(kernel_size={_fmt(kernel)}, stride={s}{extra})"
    else:
        pad = f", padding={_fmt(padding)}" if any(padding) else ""
        fix = _blur_call(d, f"F.max_pool{d}d(x, {_fmt(kernel)}, stride=1{pad})", s)
    yield Hit(site, message, _polyphase_hint(fix, graph))


def _check_strided_conv(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ002: a strided convolution whose input is not blurred first."""
    if site.family != "conv":
        return
    stride = _ints(site.params.get("stride"))
    if not _subsamples(stride) or _after_blur(site, graph):
        return
    kernel = _ints(site.params.get("kernel_size"))
    s = _fmt(stride)
    detail = ""
    if kernel is not None and all(k == 1 for k in kernel):
        detail = " (a strided 1x1 conv is pure subsampling)"
    elif kernel is not None and kernel == stride:
        detail = " (patchify: kernel equals stride)"
    message = f"{site.describe()} subsamples by {s} without low-pass filtering first{detail}"
    d = _dims(site)
    if site.kind == "module" and site.op == f"nn.Conv{d}d":
        # A drop-in with nn.ConvNd's arguments and parameter names, so checkpoints still load.
        fix = "pytest_equivariance.Antialiased" + _conv_ctor(site, site.op[3:]).removeprefix("nn.")
    elif site.kind == "module":
        fix = f"nn.Sequential(pytest_equivariance.BlurPool{d}d(stride=1), <this {site.op}>)"
    else:
        fix = f"F.conv{d}d({_blur_call(d, 'x', 1)}, weight, stride={s}, ...)"
    yield Hit(site, message, _polyphase_hint(fix, graph))


def _check_strided_avg_pool(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ003: box-filter pooling that subsamples and is not global."""
    if site.family not in ("avg_pool", "adaptive_avg_pool") or _is_global_pool(site):
        return
    stride = _subsampling_stride(site)
    if not _subsamples(stride) or _after_blur(site, graph):
        return
    s, d = _fmt(stride), _dims(site)
    message = f"{site.describe()} subsamples by {s} with a box filter, which lets much aliasing through"
    kernel = site.params.get("kernel_size")
    if site.family != "avg_pool" or kernel is None:  # adaptive: no fixed window to keep
        fix = _blur_call(d, "x", s) if site.kind != "module" else f"pytest_equivariance.BlurPool{d}d(stride={s})"
    else:
        padding = _ints(site.params.get("padding")) or (0,)
        extra = f", padding={_fmt(padding)}" if any(padding) else ""
        extra += ", ceil_mode=True" if site.params.get("ceil_mode") else ""
        if site.kind == "module":
            fix = f"pytest_equivariance.BlurAvgPool{d}d(kernel_size={_fmt(kernel)}, stride={s}{extra})"
        else:
            fix = f"pytest_equivariance.blur_avg_pool{d}d(x, {_fmt(kernel)}, stride={s}{extra})"
    yield Hit(site, message, _polyphase_hint(fix, graph))


_ALIASING_MODES = frozenset({"nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear"})


def _check_aliasing_interpolation(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ004: interpolation that makes the signal smaller without an anti-aliasing filter."""
    if site.family != "interpolate":
        return
    mode = site.params.get("mode") or "nearest"
    if mode not in _ALIASING_MODES or (site.params.get("antialias") and mode in ("bilinear", "bicubic")):
        return
    before, after = _spatial_in(site), _spatial_out(site)
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
        change = f"scale_factor={_fmt(scale) if _ints(scale) else scale!r}"
        factors = tuple(max(1, round(1 / f)) for f in scales)
    if _after_blur(site, graph):
        return
    d = _dims(site)
    how = "picks single pixels" if mode.startswith("nearest") else "interpolates without antialias=True"
    message = f"{site.describe()} downscales ({change}) and {how}, so it aliases"
    options = []
    if d == 2:
        options.append('F.interpolate(x, ..., mode="bilinear", antialias=True)')
    if all(f == factors[0] for f in factors) and factors[0] > 1:
        options.append(f"pytest_equivariance.BlurPool{d}d(stride={factors[0]})")
    yield Hit(site, message, " or ".join(options) or f"blur before resizing, e.g. pytest_equivariance.BlurPool{d}d(stride=1)")


def _check_strided_slice(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
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
    if not spatial or _after_blur(site, graph):
        return
    if all(dim == -1 or (ndim is not None and dim == ndim - 1) for dim, _ in spatial) and _from_dense(site, graph):
        return  # the last dim holds features of a dense layer (channels-last, e.g. rotary embeddings)
    steps = sorted({step for _, step in spatial})
    s = _fmt(tuple(steps))
    d = ndim - 2 if ndim is not None and ndim >= 3 else max(1, len(spatial))
    message = f"x{site.params.get('index', '[...]')} subsamples by {s} without low-pass filtering"
    yield Hit(site, message, f"pytest_equivariance.BlurPool{d}d(stride={steps[0]})(x)")


_SPATIAL_PRODUCERS = frozenset({"conv", "conv_transpose", "max_pool", "avg_pool", "lp_pool", "blur",
                                "interpolate", "pixel_unshuffle", "adaptive_avg_pool", "adaptive_max_pool"})


def _from_dense(site: "Site", graph: "ModelGraph") -> bool:
    """Whether the first input's last dim comes from a Linear layer rather than from a feature map."""
    source = graph.walk_back(site, lambda s: s.family not in _SPATIAL_PRODUCERS and s.family != "linear")
    return source is not None and source.family == "linear"


def _is_tensor_node(value: Any) -> bool:
    meta = getattr(value, "meta", None)
    return bool(meta and meta.get("lint_is_tensor"))


def _check_space_to_depth(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ006: pixel unshuffle (space-to-depth), as a layer, a function or written with reshapes."""
    if site.family == "reshape":
        yield from _check_reshaped_space_to_depth(site, graph)
        return
    if site.family != "pixel_unshuffle" or _after_blur(site, graph):
        return
    r = site.params.get("downscale_factor")
    message = f"{site.describe()} folds {r}x{r} pixel blocks into channels, so shifts that are not multiples of {r} permute channels"
    if site.kind == "module":
        fix = f"nn.Sequential(pytest_equivariance.BlurPool2d(stride=1), nn.PixelUnshuffle({r}))"
    else:
        fix = f"F.pixel_unshuffle({_blur_call(2, 'x', 1)}, {r})"
    yield Hit(site, message, fix)


# Hand-written space-to-depth. A reshape that splits each spatial dim n*s into (n, s), followed by
# permutes and reshapes, is followed axis by axis: each axis is a tuple of "atoms" (input dim,
# part), major to minor. It is space-to-depth when the fine factors s of every spatial dim end up
# in the channel axis and the coarse factors n stay spatial: x.view(B, C, H/s, s, W/s, s)
# .permute(0, 3, 5, 1, 2, 4).reshape(B, s*s*C, H/s, W/s) (timm's tresnet), or channels-last
# x.reshape(B, H/2, 2, W/2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3) (Swin's patch merging).
# Window partition splits the same way but moves the coarse factors into the batch axis and keeps
# the fine ones spatial; channel shuffles, attention heads and depth-to-space split a non-spatial
# dim. None of those subsample, and none matches.

_Atom = tuple[int, int]  # (input dim of the splitting reshape, 0 = coarse / 1 = fine part)
_Axes = list[tuple[_Atom, ...]]
#: Ops a space-to-depth chain passes through (others end it), by fx target name.
_LAYOUT_OPS = frozenset({"view", "reshape", "flatten", "permute", "transpose", "swapaxes", "swapdims",
                         "squeeze", "unsqueeze", "contiguous", "clone", "detach", "float", "to", "type_as"})


def _layout_op(site: "Site") -> str | None:
    """Return the name of the layout op ``site`` is (``"permute"``, ``"flatten"``, ...), else ``None``."""
    if site.node is None:
        return None
    if site.kind == "module":  # nn.Flatten, nn.Identity
        return {"flatten": "flatten", "identity": "contiguous"}.get(site.family)
    name = getattr(site.node.target, "__name__", str(site.node.target))
    return name if name in _LAYOUT_OPS and site.family in ("reshape", "flatten", "identity") else None


def _regroup(before: tuple[int, ...], after: tuple[int, ...]) -> list[tuple[list[int], list[int]]] | None:
    """Pair the dims of a view's input and output into minimal groups of equal size, or ``None``.

    ``(2, 6, 8) -> (2, 6, 4, 2)`` gives ``[([0], [0]), ([1], [1]), ([2], [2, 3])]``.
    """
    if 0 in before or 0 in after or math.prod(before) != math.prod(after):
        return None
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(before) and j < len(after):
        ins, outs = [i], [j]
        p, q = before[i], after[j]
        i, j = i + 1, j + 1
        while p != q:
            if p < q:
                p, i = p * before[i], i + 1
                ins.append(i - 1)
            else:
                q, j = q * after[j], j + 1
                outs.append(j - 1)
        groups.append((ins, outs))
    if groups:  # trailing size-1 dims join the last group
        groups[-1][0].extend(range(i, len(before)))
        groups[-1][1].extend(range(j, len(after)))
    return groups


def _split_start(site: "Site") -> tuple[_Axes, dict[int, int], int] | None:
    """Return ``(axes, fine sizes by dim, channel dim)`` if ``site`` splits every spatial dim in two, else ``None``."""
    before, after = site.input_shape, site.output_shape
    if site.node is None or before is None or after is None or len(before) < 4 or len(after) <= len(before):
        return None
    groups = _regroup(before, after)
    if groups is None:
        return None
    axes: _Axes = []
    fine: dict[int, int] = {}
    for ins, outs in groups:
        if len(ins) == 1 and len(outs) == 1:
            axes.append(((ins[0], 0),))
        elif len(ins) == 1 and len(outs) == 2 and after[outs[1]] > 1:
            fine[ins[0]] = after[outs[1]]
            axes.extend([((ins[0], 0),), ((ins[0], 1),)])
        else:
            return None
    r = len(before)
    for spatial, channel in ((set(range(2, r)), 1), (set(range(1, r - 1)), r - 1)):  # NCHW, then NHWC
        if set(fine) == spatial:
            return axes, fine, channel
    return None


def _apply_layout(node: Any, name: str, axes: _Axes, sizes: dict[_Atom, int], before: tuple[int, ...],
                  after: tuple[int, ...]) -> _Axes | None:
    """Return the axes after the layout op ``name`` (fx ``node``), or ``None`` when it cannot be followed."""
    args = list(node.args[1:])
    if name in ("permute", "transpose", "swapaxes", "swapdims"):
        if name == "permute":
            dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
            dims = dims or node.kwargs.get("dims")
        else:
            dims = list(range(len(axes)))
            a, b = (args + [node.kwargs.get("dim0"), node.kwargs.get("dim1")])[:2]
            if not isinstance(a, int) or not isinstance(b, int):
                return None
            dims[a], dims[b] = dims[b], dims[a]
        if not dims or not all(isinstance(d, int) for d in dims) or len(dims) != len(axes):
            return None
        return [axes[d] for d in dims]
    if before == after and name not in ("view", "reshape", "flatten", "squeeze", "unsqueeze"):
        return axes  # contiguous, clone, a dtype change
    groups = _regroup(before, after)
    if groups is None:
        return None
    out: _Axes = []
    for ins, outs in groups:
        parts = _partition(tuple(atom for i in ins for atom in axes[i]), sizes, [after[j] for j in outs])
        if parts is None:
            return None  # a split inside an atom: not a plain space-to-depth
        out.extend(parts)
    return out


def _partition(atoms: tuple[_Atom, ...], sizes: dict[_Atom, int], lengths: list[int]) -> _Axes | None:
    """Deal ``atoms`` (major to minor) out to axes of the given lengths, or ``None`` if they do not fit."""
    parts: _Axes = []
    k = 0
    for n in lengths:
        part, p = [], 1
        while p < n and k < len(atoms):
            part.append(atoms[k])
            p *= sizes[atoms[k]]
            k += 1
        if p != n:
            return None
        parts.append(tuple(part))
    rest = atoms[k:]
    if any(sizes[a] > 1 for a in rest) or not parts:
        return None
    parts[-1] += rest  # size-1 atoms left over
    return parts


def _folds_fine_into_channels(axes: _Axes, sizes: dict[_Atom, int], fine: dict[int, int], channel: int) -> bool:
    """Whether the fine factors sit in the channel axis and the coarse ones on spatial axes of their own."""
    def where(atom: _Atom) -> int | None:
        return next((k for k, axis in enumerate(axes) if atom in axis), None)

    homes = {where((d, 1)) for d in fine}
    if len(homes) != 1:
        return False
    home = homes.pop()
    if home is None or home == 0:  # axis 0 is the batch: moving pixels there is windowing
        return False
    allowed = {(d, 1) for d in fine} | {(channel, 0)}
    if any(atom not in allowed and sizes[atom] > 1 for atom in axes[home]):
        return False
    if sizes[(channel, 0)] > 1 and (channel, 0) not in axes[home]:
        return False  # the fine factors form an axis of their own: window tokens, not channels
    for d in fine:
        k = where((d, 0))
        if sizes[(d, 0)] == 1:
            continue
        if k is None or k == 0 or any(a[1] != 0 or a[0] not in fine for a in axes[k] if sizes[a] > 1):
            return False
    return True


def _check_reshaped_space_to_depth(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ006 for space-to-depth written with reshapes: reported at the reshape that splits the pixels."""
    if not site.from_input:
        return
    start = _split_start(site)
    if start is None:
        return
    axes, fine, channel = start
    before = site.input_shape
    sizes: dict[_Atom, int] = {(d, 0): n for d, n in enumerate(before)}  # type: ignore[arg-type]
    sizes.update({(d, 0): before[d] // s for d, s in fine.items()})  # type: ignore[index]
    sizes.update({(d, 1): s for d, s in fine.items()})
    node, found = site.node, False
    for _ in range(16):
        users = list(node.users)
        following = graph.site_of(users[0]) if len(users) == 1 else None
        if following is None or following.node is None or not following.node.args \
                or following.node.args[0] is not node:
            break
        name = _layout_op(following)
        if name is None or following.input_shape is None or following.output_shape is None:
            break
        axes = _apply_layout(following.node, name, axes, sizes, following.input_shape, following.output_shape)
        if axes is None:
            break
        if _folds_fine_into_channels(axes, sizes, fine, channel):
            found = True
            break
        node = following.node
    if not found or _blurred_before(site, graph):
        return
    factors = tuple(fine[d] for d in sorted(fine))
    r, d, n = _fmt(factors), len(factors), len(before)  # type: ignore[arg-type]
    block = "x".join(map(str, factors))
    channels_last = channel == n - 1
    like = f" (as nn.PixelUnshuffle({r}))" if d == 2 and len(set(factors)) == 1 else ""
    message = (f"{site.op} starts a hand-written {'channels-last ' if channels_last else ''}space-to-depth{like}: "
               f"it folds {block} pixel blocks into channels, so shifts that are not multiples of {r} "
               f"permute channels")
    blur = f"blur_pool{d}d"
    if channels_last:
        to_first = ", ".join(map(str, (0, n - 1, *range(1, n - 1))))
        to_last = ", ".join(map(str, (0, *range(2, n), 1)))
        fix = f"x = {blur}(x.permute({to_first}), stride=1).permute({to_last}) before it"
    else:
        fix = f"x = {blur}(x, stride=1) before it"
    yield Hit(site, message, f"{fix}  # from pytest_equivariance.fix.filters import {blur}")


def _blurred_before(site: "Site", graph: "ModelGraph") -> bool:
    """Like :func:`_after_blur`, also through permutes (a channels-last tensor blurred as NCHW)."""
    def through(s: "Site") -> bool:
        return s.family in _SPECTRUM_PRESERVING or _layout_op(s) in ("permute", "transpose", "contiguous")

    return _is_pure_blur(graph.walk_back(site, through))


def _check_checkerboard(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ007: transposed conv whose kernel is not a multiple of its stride."""
    if site.family != "conv_transpose":
        return
    kernel, stride = _ints(site.params.get("kernel_size")), _ints(site.params.get("stride"))
    if kernel is None or stride is None or not any(s > 1 and k % s for k, s in zip(kernel, stride)):
        return
    message = (f"{site.describe()} has a kernel size that is not a multiple of its stride, "
               f"so it stamps a checkerboard pattern on its output")
    new_kernel = tuple(s * math.ceil(k / s) if s > 1 else k for k, s in zip(kernel, stride))
    new_padding = tuple((k - s) // 2 if s > 1 else p for k, s, p in
                        zip(new_kernel, stride, _ints(site.params.get("padding")) or (0,) * len(kernel)))
    if site.kind == "module" and site.op.startswith("nn."):
        fix = _conv_ctor(site, site.op[3:], kernel_size=new_kernel, padding=new_padding, output_padding=(0,))
    else:
        fix = f"a kernel size of {_fmt(new_kernel)} with padding={_fmt(new_padding)}, or resize then convolve"
    yield Hit(site, message, fix)


_HEAD_TRANSPARENT = frozenset({"identity", "dropout", "activation", "norm"})


def _check_flatten_into_dense(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ008: a dense layer reading a flattened C x H x W map (spatial size > 1)."""
    if site.family != "linear":
        return
    source = graph.walk_back(site, lambda s: s.family in _HEAD_TRANSPARENT)
    if source is None or source.family not in ("flatten", "reshape"):
        return
    before, after = source.input_shape, source.output_shape
    if before is None or after is None or len(before) < 3 or not after:
        return
    origin = graph.walk_back(source, lambda s: s.family in _HEAD_TRANSPARENT or s.family == "identity")
    if origin is None or origin.family not in _SPATIAL_PRODUCERS:
        return  # a reshape of tokens or attention heads, not of a convolutional feature map
    spatial = before[2:]
    if before[1] <= 1 or math.prod(spatial) <= 1 or after[-1] != math.prod(before[1:]):
        return
    d = len(spatial)
    grid = "x".join(str(v) for v in before[1:])
    message = (f"{site.describe()} reads a flattened {grid} feature map, so every spatial position has "
               f"its own weights")
    out = site.params.get("out_features") or "out_features"
    fix = (f"pool globally first: x = F.adaptive_avg_pool{d}d(x, 1).flatten(1), "
           f"then nn.Linear({before[1]}, {out})")
    yield Hit(site, message, fix)


_EMBEDDING_PATH = frozenset({"getitem", "reshape", "identity", "interpolate", "cat"})


def _position_embedding(graph: "ModelGraph", value: Any) -> tuple[str, tuple[int, ...]] | None:
    """If ``value`` (an fx node) is a learned tensor that varies over positions, name it."""
    import torch
    from torch import nn

    for _ in range(6):
        attr = graph.attribute(value)
        if attr is not None:
            name, tensor = attr
            trainable = isinstance(tensor, nn.Parameter) and tensor.requires_grad
            varying = sum(1 for s in tensor.shape if s > 1)
            return (name, tuple(tensor.shape)) if trainable and varying >= 2 else None
        source = graph.site_of(value)
        if source is None or source.node is None or not source.node.args:
            return None
        if source.kind == "module" and isinstance(source.module, nn.Embedding):
            # Embedding rows looked up by position: torch.arange(...), or a constant index tensor
            # (fx folds torch.arange(256) into one).
            arg = source.node.args[0]
            origin = getattr(arg, "target", None)
            constant = graph.attribute(arg)
            if origin is torch.arange or (constant is not None and not constant[1].is_floating_point()):
                weight = source.module._parameters.get("weight")
                return (source.qualname, tuple(weight.shape) if weight is not None else ())
            return None
        if source.family not in _EMBEDDING_PATH:
            return None
        if source.family == "getitem" and _indexes_with_tensor(source.node):
            return None  # a gather from a table (relative position bias), not an absolute embedding
        value = source.node.args[0]
    return None


def _indexes_with_tensor(node: Any) -> bool:
    index = node.args[1] if len(node.args) > 1 else None
    items = index if isinstance(index, tuple) else (index,)
    return any(hasattr(item, "meta") for item in items)


def _check_position_embedding(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ009: ``features + learned_position_embedding``."""
    if site.family != "add" or site.node is None:
        return
    operands = list(site.node.args[:2])
    for i, operand in enumerate(operands):
        found = _position_embedding(graph, operand)
        if found is None:
            continue
        other = operands[1 - i] if len(operands) == 2 else None
        if other is not None and _position_embedding(graph, other) is not None:
            return  # two parameters added to each other, not features
        name, shape = found
        message = (f"{site.op} adds the learned absolute position embedding {name} "
                   f"{'x'.join(map(str, shape))} to the features")
        yield Hit(site, message, "a relative position bias, or a conditional position encoding "
                                 "(x = x + depthwise_conv(x))")
        return


def _check_zero_padding(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ010: zero or constant padding (convolutions, pools, explicit pads)."""
    params = site.params
    if site.family == "conv":  # a transposed conv's padding crops its output: nothing is padded
        padding = params.get("padding")
        kernel = _ints(params.get("kernel_size"))
        padded = (padding == "same" and kernel is not None and any(k > 1 for k in kernel)) or (
            _ints(padding) is not None and any(_ints(padding)))
        if not padded or params.get("padding_mode", "zeros") != "zeros":
            return
        fix = (_conv_ctor(site, site.op[3:], padding_mode="circular")
               if site.kind == "module" and site.op.startswith("nn.")
               else 'F.pad(x, ..., mode="circular") before the op, and padding=0')
        yield Hit(site, f"{site.describe()} pads with zeros", fix)
    elif site.family in ("max_pool", "avg_pool", "lp_pool") and not _is_global_pool(site):
        padding = _ints(params.get("padding"))
        if padding and any(padding):
            value = "-inf" if site.family == "max_pool" else "zeros"
            yield Hit(site, f"{site.describe()} pads with {value}",
                      'F.pad(x, ..., mode="circular") before the pool, and padding=0')
    elif site.family == "pad":
        pad = _ints(params.get("pad"))
        if pad and any(pad) and (params.get("mode") or "constant") == "constant":
            yield Hit(site, f"{site.describe()} pads with a constant", 'mode="circular"')


def _check_half_pixel(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ011: even kernels (convs and pools) and asymmetric explicit padding."""
    params = site.params
    if site.family in ("conv", "max_pool", "avg_pool", "lp_pool") and not _is_global_pool(site):
        kernel = _ints(params.get("kernel_size"))
        dilation = _ints(params.get("dilation")) or (1,) * len(kernel or ())
        if kernel is None:
            return
        extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
        if any(e % 2 == 0 for e in extent):
            yield Hit(site, f"{site.describe()} has an even-sized kernel ({_fmt(extent)}), so its output "
                            f"grid is offset by half a pixel",
                      "an odd kernel size with symmetric padding, e.g. kernel_size=3, padding=1")
    elif site.family == "pad":
        pad = _ints(params.get("pad"))
        if pad and len(pad) % 2 == 0 and any(pad[i] != pad[i + 1] for i in range(0, len(pad), 2)):
            yield Hit(site, f"{site.describe()} pads the sides of a dimension unequally, so the grid "
                            f"shifts by half a pixel",
                      "symmetric padding (the same amount on both sides of each dimension)")


_CHECKS: dict[str, Check] = {
    "EQ001": _check_strided_max_pool,
    "EQ002": _check_strided_conv,
    "EQ003": _check_strided_avg_pool,
    "EQ004": _check_aliasing_interpolation,
    "EQ005": _check_strided_slice,
    "EQ006": _check_space_to_depth,
    "EQ007": _check_checkerboard,
    "EQ008": _check_flatten_into_dense,
    "EQ009": _check_position_embedding,
    "EQ010": _check_zero_padding,
    "EQ011": _check_half_pixel,
}

#: The rule table, ordered by code. The one place where rule texts live.
RULES: dict[str, Rule] = {
    rule.code: replace(rule, check=_CHECKS[rule.code])
    for rule in (
        _EQ001, _EQ002, _EQ003, _EQ004, _EQ005, _EQ006, _EQ007, _EQ008, _EQ009, _EQ010, _EQ011
    )
}


def matching_codes(pattern: str, codes: Iterable[str] = RULES) -> list[str]:
    """Return the codes that ``pattern`` names: a code, a prefix (``"EQ00"``), or ``"ALL"``.

    Case and surrounding blanks are ignored; an empty pattern names nothing. ``codes`` defaults to
    the rule table's.
    """
    pattern = pattern.strip().upper()
    if not pattern:
        return []
    return list(codes) if pattern == "ALL" else [code for code in codes if code.startswith(pattern)]
