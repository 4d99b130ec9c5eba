"""The rule table: one small, documented unit per EQ code.

Every text a user reads about a rule lives here — ``equiv-lint --list-rules``, ``--explain EQ001`` and
``docs/rules/EQ0xx.md`` are all produced from :data:`RULES`. The detection logic of each rule lives
beside its text (the ``check`` functions below); the engine runs them over a :class:`ModelGraph`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

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
        "`pytest_equivariance.antialias(model)` rewrites every module it flags.\n"
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
        "Convolve with stride 1, apply the activation, then blur-subsample (Zhang 2019); or blur "
        "first: a stride-1 blur directly before the strided conv makes it anti-aliased. "
        "`pytest_equivariance.antialias(model)` rewrites every module it flags.\n"
        "\n"
        "self.conv = nn.Sequential(\n"
        "    nn.Conv2d(64, 128, kernel_size=3, stride=1, padding=1),\n"
        "    nn.ReLU(inplace=True),\n"
        "    pytest_equivariance.BlurPool2d(stride=2),\n"
        ")\n"
        "# or: nn.Sequential(pytest_equivariance.BlurPool2d(stride=1), nn.Conv2d(64, 128, 3, stride=2, padding=1))"
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
        "Replace the box filter by a binomial one: `pytest_equivariance.BlurPool2d(stride=2)` "
        "(BlurPool1d / BlurPool3d for 1-d and 3-d). `pytest_equivariance.antialias(model)` rewrites "
        "every module it flags.\n"
        "\n"
        "self.pool = pytest_equivariance.BlurPool2d(stride=2)"
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
    summary="Space-to-depth (nn.PixelUnshuffle, F.pixel_unshuffle) turns a shift into a channel permutation.",
    why=(
        "Pixel unshuffle moves each s x s block of pixels into s*s channels. A shift by a multiple of "
        "s shifts the output; any other shift permutes and mixes channels, so layers after it see a "
        "different signal. It loses no information, but downstream features are only equivariant to "
        "shifts on the coarse lattice."
    ),
    example="self.down = nn.PixelUnshuffle(downscale_factor=2)",
    fix=(
        "Blur before it (a stride-1 blur directly before the unshuffle is recognised), or use a "
        "polyphase-aware design that picks the phase from the input.\n"
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

#: The rule table, ordered by code. The one place where rule texts live.
RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in (
        _EQ001, _EQ002, _EQ003, _EQ004, _EQ005, _EQ006, _EQ007, _EQ008, _EQ009, _EQ010, _EQ011
    )
}
