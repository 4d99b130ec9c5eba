"""What the rules read: :class:`Site`, one call in a model's forward, and :class:`ModelGraph`, all of them.

:func:`pytest_equivariance.lint.graph.build_graph` fills these in; rules only read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import fx, nn


@dataclass(eq=False)
class Site:
    """One call in a model's forward: a layer, a functional op or a tensor method.

    ``family`` is the canonical kind of op the rules look at ("max_pool", "conv", "interpolate",
    "getitem", "blur", ... or "other"), whatever form the call took (``nn.MaxPool2d``,
    ``F.max_pool2d`` or ``torch.max_pool2d``); ``ndim`` its number of spatial dims when known.
    ``params`` holds canonical parameters: tuples of length ``ndim`` for kernel_size, stride,
    padding and dilation; ``None`` where a value is only known at run time.
    """

    qualname: str
    op: str
    kind: str  # "module" | "function" | "method"
    module: nn.Module | None = None
    params: dict[str, Any] = field(default_factory=dict)
    input_shapes: list[tuple[int, ...] | None] = field(default_factory=list)
    output_shape: tuple[int, ...] | None = None
    file: str | None = None
    line: int | None = None
    node: fx.Node | None = None
    family: str = "other"
    ndim: int | None = None
    index: int = -1
    shaped: bool = False  # whether shapes were propagated to this site
    # Whether the value depends on the model's input (not only on its shape): positional tables
    # computed from sizes do not carry the signal, so slicing them does not alias it.
    from_input: bool = True
    # How to find file and line, until someone asks (a lookup can cost a file parse): see locate().
    pending_location: Callable[[], tuple[str | None, int | None]] | None = field(default=None, repr=False)

    def locate(self) -> tuple[str | None, int | None]:
        """Return ``(file, line)`` of the site, looking its source up on the first call.

        Locations are found lazily: most sites never produce a finding, and finding a layer's
        constructor line parses its class's source file.
        """
        if self.pending_location is not None:
            pending, self.pending_location = self.pending_location, None
            self.file, self.line = pending()
        return self.file, self.line

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of the first input, when known."""
        return self.input_shapes[0] if self.input_shapes else None

    def describe(self) -> str:
        """Return the op with its parameters as a user would write it: ``MaxPool2d(kernel_size=3, stride=2)``."""
        shown = {k: v for k, v in self.params.items()
                 if k in _SHOWN_PARAMS and v is not None and not _is_default(k, v)}
        if self.family == "getitem":
            return f"x{self.params.get('index', '[...]')}"
        positional = [str(shown.pop(k)) for k in ("in_channels", "out_channels", "in_features", "out_features")
                      if k in shown]
        args = ", ".join(positional + [f"{k}={_short(v)}" for k, v in shown.items()])
        return f"{self.op}({args})"


_SHOWN_PARAMS = (
    "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
    "output_padding", "output_size", "size", "scale_factor", "mode", "antialias", "downscale_factor",
    "in_features", "out_features", "pad", "ceil_mode",
)


def _is_default(name: str, value: Any) -> bool:
    if name in ("padding", "output_padding"):
        return isinstance(value, tuple) and not any(value)
    if name == "dilation":
        return isinstance(value, tuple) and all(v == 1 for v in value)
    return (name, value) in (("groups", 1), ("ceil_mode", False), ("antialias", False))


def _short(value: Any) -> str:
    # (2, 2) -> 2 for readability, as users write kernel_size=2.
    if isinstance(value, tuple) and len(value) > 1 and isinstance(value[0], int) and len(set(value)) == 1:
        return repr(value[0])
    return repr(value)


@dataclass
class ModelGraph:
    """Every call site of a model's forward, how they were found, and what could not be analysed."""

    model: nn.Module
    sites: list[Site] = field(default_factory=list)
    mode: str = "fx"  # "fx" | "hierarchical" | "modules"
    coverage: float = 1.0
    graph_module: fx.GraphModule | None = None
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    input_shapes: list[tuple[int, ...]] | None = None
    _by_node: dict[fx.Node, Site] = field(default_factory=dict, repr=False)
    _attrs: dict[fx.Node, tuple[str, torch.Tensor]] = field(default_factory=dict, repr=False)
    _previous: dict[Site, Site] = field(default_factory=dict, repr=False)

    def site_of(self, node: Any) -> Site | None:
        """Return the site that computed fx ``node``, or ``None`` (a placeholder, a constant)."""
        return self._by_node.get(node) if isinstance(node, fx.Node) else None

    def producer(self, site: Site, arg: int = 0) -> Site | None:
        """Return the site whose output is ``site``'s ``arg``-th input, when known."""
        if site.node is None:
            return self._previous.get(site) if arg == 0 else None
        args = site.node.args
        return self.site_of(args[arg]) if len(args) > arg else None

    def attribute(self, node: Any) -> tuple[str, torch.Tensor] | None:
        """Return ``(qualname, tensor)`` when fx ``node`` reads a parameter or buffer of the model."""
        return self._attrs.get(node) if isinstance(node, fx.Node) else None

    def pads_circularly(self) -> bool:
        """Whether every padded convolution of the model pads circularly (and there is one).

        Such a model is built for exact circular-shift checks, where polyphase sampling (not blur)
        makes the subsampling exact.
        """
        modes = [site.params.get("padding_mode", "zeros") for site in self.sites
                 if site.family == "conv" and _pads(site.params.get("padding"))]
        return bool(modes) and all(mode == "circular" for mode in modes)

    def walk_back(self, site: Site, through: Callable[[Site], bool]) -> Site | None:
        """Return the first producer of ``site`` (following first inputs) for which ``through`` is false."""
        current = self.producer(site)
        for _ in range(64):
            if current is None or not through(current):
                return current
            current = self.producer(current)
        return None


def _pads(padding: Any) -> bool:
    if isinstance(padding, str):
        return padding != "valid"
    return isinstance(padding, tuple) and any(p for p in padding if isinstance(p, int))
