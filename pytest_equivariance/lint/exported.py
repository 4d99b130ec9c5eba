"""The sites of an exported model: ``torch.export``'s ATen graph read with the rules' op families.

``torch.export.export(model, args).module()`` is an fx ``GraphModule`` of ATen ops (``aten.conv2d``,
``aten.max_pool2d``, ``aten.slice.Tensor``, ``aten.upsample_nearest2d.vec`` ...). Each node keeps the
layer that ran it (``meta["nn_module_stack"]``), its output (``meta["val"]``) and the Python stack
that made it (``meta["stack_trace"]``). So the graph needs no tracing: its nodes become the same
:class:`~pytest_equivariance.lint.sites.Site`\\ s an eager trace gives — an op inside a ``torch.nn``
layer a module site (``nn.MaxPool2d``, qualname ``layer1.0.conv1``), any other a functional one —
located at the user's line that called it, and the rules run unchanged.
"""

from __future__ import annotations

import os
import types
from typing import Any

import torch
from torch import fx, nn

from pytest_equivariance.lint.graph import _Builder
from pytest_equivariance.lint.ops import ATEN_RESAMPLING
from pytest_equivariance.lint.params import function_params
from pytest_equivariance.lint.sites import ModelGraph, Site

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep  # torch/, not torchvision/


def build_exported_graph(gm: fx.GraphModule) -> ModelGraph:
    """Return the :class:`ModelGraph` of an exported module, read from its ATen graph."""
    for node in gm.graph.nodes:
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor):
            node.meta["lint_shape"] = tuple(int(s) if isinstance(s, int) else None for s in value.shape)
            node.meta["lint_is_tensor"] = True
        node.meta["lint_location"] = _user_frame(node.meta.get("stack_trace"))
    builder = _Builder(gm)
    builder._add_graph_sites(gm, "", True)
    graph = builder.graph
    for site in graph.sites:
        if site.node is not None and getattr(site.node.target, "namespace", None) == "aten":
            _read_aten(site, graph)
    graph.sites = [s for s in graph.sites if not (s.family == "getitem" and s.params.get("skip"))]
    for index, site in enumerate(graph.sites):
        site.index = index
    graph.graph_module, graph.mode, graph.coverage = gm, "export", 1.0
    return graph


def _read_aten(site: Site, graph: ModelGraph) -> None:
    """Fill the canonical parameters of an ATen site whose signature differs from F.*'s, and make an op
    inside a ``torch.nn`` layer a module site of that layer."""
    node = site.node
    name = node.target.overloadpacket.__name__
    args = list(node.args)
    if name == "slice":
        # aten.slice.Tensor(input, dim=0, start=None, end=None, step=1)
        dim, step = (args[1] if len(args) > 1 else 0), (args[4] if len(args) > 4 else 1)
        ndim = len(site.input_shape) if site.input_shape else None
        dim = dim + ndim if isinstance(dim, int) and dim < 0 and ndim else dim
        strided = [(dim, step)] if isinstance(step, int) and step > 1 and isinstance(dim, int) else []
        index = ", ".join([":"] * dim + ["::" + str(step)]) if strided else ""
        site.params = {"index": f"[{index}]", "strided_dims": strided, "skip": not strided}
        return
    if name == "convolution":  # (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
        transposed = bool(args[6]) if len(args) > 6 else False
        site.family = "conv_transpose" if transposed else "conv"
        call = args[:6] + [args[8]] if not transposed else args[:5] + [args[7], args[8], args[5]]
        site.ndim = len(args[3]) if isinstance(args[3], (list, tuple)) else None
        site.params = function_params(site.family, site.ndim, types.SimpleNamespace(
            args=tuple(call), kwargs={}, target=node.target), graph)
    elif site.family == "interpolate":
        mode, antialias = ATEN_RESAMPLING[name]
        size = args[1] if len(args) > 1 else None
        scales = args[-1] if len(args) > 2 and isinstance(args[-1], (list, tuple)) else None
        site.params = {"size": tuple(size) if isinstance(size, (list, tuple)) else None,
                       "scale_factor": tuple(scales) if scales else None, "mode": mode,
                       "align_corners": args[2] if mode in ("bilinear", "bicubic") and len(args) > 2
                       and isinstance(args[2], bool) else None, "antialias": antialias}
    if site.family == "conv":
        _circular_padding(site, graph)
    owner = _owner_layer(node)
    if owner is not None:
        site.kind, site.op = "module", f"nn.{owner}"


def _circular_padding(site: Site, graph: ModelGraph) -> None:
    # nn.Conv2d(padding_mode="circular") exports as aten.pad(x, pad, "circular") then an unpadded conv.
    source = graph.producer(site)
    if source is None or source.family != "pad" or source.node is None:
        return
    pad = source.node.args[1] if len(source.node.args) > 1 else None
    mode = source.node.args[2] if len(source.node.args) > 2 else "constant"
    if mode != "constant" and isinstance(pad, (list, tuple)) and site.ndim:
        site.params["padding_mode"] = "zeros" if mode == "constant" else mode
        site.params["padding"] = tuple(pad[2 * i] for i in reversed(range(site.ndim)))


def _owner_layer(node: fx.Node) -> str | None:
    """The ``torch.nn`` layer class that ran ``node`` (``"Conv2d"``), or None for the user's own code."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    last = list(stack.values())[-1]
    path = last[1] if isinstance(last, tuple) and len(last) > 1 else ""
    path = path if isinstance(path, str) else getattr(path, "__module__", "") + "." + getattr(path, "__name__", "")
    module, _, cls = path.rpartition(".")
    layer = getattr(nn, cls, None)
    return cls if module.startswith("torch.nn.modules") and isinstance(layer, type) else None


def _user_frame(stack_trace: Any) -> tuple[str | None, int | None]:
    """The last frame of an exported node's stack trace outside torch: where the user called the op."""
    if not isinstance(stack_trace, str):
        return None, None
    found: tuple[str | None, int | None] = (None, None)
    for line in stack_trace.splitlines():
        line = line.strip()
        if not line.startswith('File "'):
            continue
        path, _, rest = line[6:].partition('", line ')
        number = rest.split(",", 1)[0]
        if number.isdigit() and not os.path.abspath(path).startswith(_TORCH_DIR):
            found = (path, int(number))
    return found
