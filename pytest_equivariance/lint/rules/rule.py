"""What a rule is (:class:`Rule`, :class:`Hit`), and the facts about a site and fix snippets rules share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from pytest_equivariance.lint.findings import Severity

if TYPE_CHECKING:
    from pytest_equivariance.lint.sites import ModelGraph, Site


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



#: Ops that change neither where a signal's energy lies in frequency nor its grid: a blur followed
#: by these and then a strided op still low-pass filters that op's input.
SPECTRUM_PRESERVING = frozenset({"identity", "dropout", "norm", "pad"})


def ints(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, int):
        return (value,)
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return value
    return None


def spatial_in(site: "Site") -> tuple[int, ...] | None:
    shape = site.input_shape
    return tuple(shape[2:]) if shape is not None and len(shape) >= 3 else None


def spatial_out(site: "Site") -> tuple[int, ...] | None:
    shape = site.output_shape
    return tuple(shape[2:]) if shape is not None and len(shape) >= 3 else None


def fmt(values: Any) -> str:
    """(2, 2) -> "2", (1, 2) -> "(1, 2)": the way users write strides."""
    parts = ints(values)
    if parts is None:
        return repr(values)
    return str(parts[0]) if len(set(parts)) == 1 else repr(parts)


def spatial_ndim(site: "Site") -> int:
    if site.ndim:
        return site.ndim
    spatial = spatial_in(site)
    return len(spatial) if spatial else 2


def is_global_pool(site: "Site") -> bool:
    """Whether a pooling site reduces every spatial dim to one value (never flagged)."""
    if site.family in ("adaptive_avg_pool", "adaptive_max_pool"):
        size = site.params.get("output_size")
        if isinstance(size, tuple) and size and all(s == 1 for s in size):
            return True
    out = spatial_out(site)
    return out is not None and all(s == 1 for s in out)


def subsampling_stride(site: "Site") -> tuple[int, ...] | None:
    """Return a site's subsampling factor per spatial dim, or ``None`` if unknown."""
    if site.family in ("adaptive_avg_pool", "adaptive_max_pool"):
        before, after = spatial_in(site), spatial_out(site)
        if before is None or after is None or len(before) != len(after):
            return None
        return tuple(math.ceil(b / a) if 0 < a < b else 1 for b, a in zip(before, after))
    return ints(site.params.get("stride"))


def subsamples(stride: tuple[int, ...] | None) -> bool:
    return stride is not None and any(s > 1 for s in stride)


def after_blur(site: "Site", graph: "ModelGraph") -> bool:
    """Whether the site's input comes straight from a stride-1 fixed low-pass filter."""
    return is_pure_blur(graph.walk_back(site, lambda s: s.family in SPECTRUM_PRESERVING))


def is_pure_blur(source: "Site | None") -> bool:
    """Whether ``source`` is a fixed low-pass filter that does not subsample (stride 1)."""
    if source is None or source.family != "blur":
        return False
    stride = ints(source.params.get("stride"))
    return stride is None or all(s == 1 for s in stride)


#: Ops that make a spatial feature map (as opposed to tokens or a dense layer's features).
SPATIAL_PRODUCERS = frozenset({"conv", "conv_transpose", "max_pool", "avg_pool", "lp_pool", "blur",
                               "interpolate", "pixel_unshuffle", "adaptive_avg_pool", "adaptive_max_pool"})


# -- fix snippets, spelled as users write them -------------------------------------------------------


def conv_ctor(site: "Site", cls: str, **override: Any) -> str:
    params = {**site.params, **override}
    head = [str(params.get("in_channels", "in_channels")), str(params.get("out_channels", "out_channels"))]
    rest = [f"kernel_size={fmt(params['kernel_size'])}" if params.get("kernel_size") else None,
            f"stride={fmt(params['stride'])}" if params.get("stride") else None]
    padding = params.get("padding")
    if padding and (isinstance(padding, str) or any(padding)):
        rest.append(f"padding={fmt(padding) if ints(padding) else repr(padding)}")
    if params.get("output_padding") and any(params["output_padding"]):
        rest.append(f"output_padding={fmt(params['output_padding'])}")
    if params.get("dilation") and any(d != 1 for d in params["dilation"]):
        rest.append(f"dilation={fmt(params['dilation'])}")
    if params.get("groups", 1) != 1:
        rest.append(f"groups={params['groups']}")
    if params.get("bias") is False:
        rest.append("bias=False")
    if params.get("padding_mode", "zeros") != "zeros":
        rest.append(f"padding_mode={params['padding_mode']!r}")
    return f"nn.{cls}(" + ", ".join(head + [r for r in rest if r]) + ")"


def blur_call(d: int, arg: str, stride: Any) -> str:
    """Return the functional blur-subsample snippet for a fix, spelled as the module fixes are."""
    return f"pytest_equivariance.blur_pool{d}d({arg}, stride={stride})"


def polyphase_hint(fix: str, graph: "ModelGraph") -> str:
    """Name the exact fix beside the blur in a circular-padded model (one built for exact checks)."""
    if not graph.pads_circularly():
        return fix
    return (f'{fix}; or, exactly invariant to circular shifts in this circular-padded model: '
            f'pytest_equivariance.antialias(model, method="polyphase")')
