"""The layers a profile names: what it says of each, its noise floor, and the lint finding at it.

Shared by both per-layer profiles, :func:`.localize.localize` (finite transforms) and
:func:`.attribution.attribute` (the Lie derivative's exact split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import Tensor

#: Safety factor of the noise floor over the rounding bound (see :func:`noise_floor`).
NOISE_FACTOR = 16.0


def noise_floor(dtype: "torch.dtype", *, position: int = 0, peak_ratio: float = 1.0) -> float:
    """Return the relative error below which a layer's error counts as rounding noise.

    ``NOISE_FACTOR · eps(dtype) · sqrt(position + 1) · peak_ratio``: rounding errors are relative to the
    largest activation, so a map's relative L2 error from rounding is bounded by about ``eps`` times its
    peak-to-RMS ratio (``peak_ratio``); they accumulate like a random walk over the ``position`` layers
    before it; and the factor leaves room for reductions summed in a different order on ``g·x``.
    """
    import torch

    eps = torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(torch.float32).eps
    return NOISE_FACTOR * eps * math.sqrt(position + 1) * max(peak_ratio, 1.0)


@dataclass
class LayerSite:
    """The part of a linter ``Site`` that a profile needs, and the name a chart shows for it."""

    qualname: str
    op: str
    kind: str = "module"
    params: dict[str, Any] = field(default_factory=dict)
    file: str | None = None
    line: int | None = None
    node_name: str | None = None
    site: Any = field(default=None, repr=False)  # the linter's Site, for its rules

    @property
    def name(self) -> str:
        """``layer1.0.conv1`` for a module; the fx node's unique name under its owner for a call
        (``getitem``, ``layer1.0.add_1``): many calls share their owner's qualname."""
        if self.kind == "module" or not self.node_name:
            return self.qualname or "<model>"
        return f"{self.qualname}.{self.node_name}" if self.qualname else self.node_name


def describe(key, graph) -> LayerSite:
    """Return what the profile says about the layer captured under ``key`` (an fx node or a module call)."""

    def of(site) -> LayerSite:
        node = getattr(site, "node", None)
        file, line = site.locate()
        return LayerSite(
            site.qualname, site.op, site.kind, dict(site.params or {}), file, line,
            node.name if node is not None else None, site,
        )

    if graph is not None:
        if not isinstance(key, tuple):
            site = graph.site_of(key)
            if site is not None:
                return of(site)
        else:
            for site in graph.sites:
                if site.qualname == key[0] and site.module is not None:
                    return of(site)
    if isinstance(key, tuple):
        return LayerSite(key[0], "module")
    return LayerSite("", str(getattr(key, "target", "op")), "function", node_name=getattr(key, "name", None))


def model_graph(model, example):
    """Return the linter's graph of ``model``, or None when it cannot be built (hooks on leaves then)."""
    try:
        from pytest_equivariance.lint.graph import build_graph
    except ImportError:
        return None
    try:
        return build_graph(model, example)
    except Exception:  # the profile degrades to leaf-module hooks rather than failing the check
        return None


def matching_finding(graph, site: LayerSite) -> "tuple[str, str] | None":
    """Return ``(code, fix)`` of the lint rule that flags ``site``, or None.

    The rules run on the culprit's own site of the graph already built, so the match is exact (also
    for functional calls, which share their owner's qualname) and no second trace is needed. Every
    rule counts, on by default or not, and suppression comments do not apply: the profile explains
    a measured failure. Rules on by default and then higher severities win.
    """
    if graph is None or site.site is None or getattr(site.site, "family", None) == "blur":
        return None
    try:
        from pytest_equivariance.lint.rules import RULES
    except ImportError:
        return None
    hits = []
    for rule in RULES.values():
        if rule.check is None:
            continue
        try:
            hit = next(iter(rule.check(site.site, graph)), None)
        except Exception:  # a rule that cannot judge this site says nothing about it
            continue
        if hit is not None:
            hits.append((rule.enabled_by_default, rule.severity.rank, rule.code, hit.fix or rule.fix))
    if not hits:
        return None
    best = max(hits, key=lambda h: (h[0], h[1]))
    return best[2], best[3]




def is_float_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel() > 0


def peak_ratio(a: "Tensor") -> float:
    import torch

    a = a.detach().to(torch.float64 if a.dtype == torch.float64 else torch.float32)
    rms = float(a.square().mean().sqrt())
    return float(a.abs().max()) / rms if rms > 0 else 1.0


_PLAIN = (int, float, str, bool, type(None))


def plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """Keep the parameters that survive a JSON round trip (results travel between xdist workers)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, _PLAIN):
            out[key] = value
        elif isinstance(value, (tuple, list)) and all(isinstance(v, _PLAIN) for v in value):
            out[key] = list(value)
    return out
