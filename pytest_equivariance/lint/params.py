"""Canonical parameters of a call site: kernel_size, stride, padding ... as tuples, whatever the spelling.

``nn.MaxPool2d(3, 2)``, ``F.max_pool2d(x, 3, stride=2)`` and ``torch.max_pool2d(x, (3, 3), (2, 2))``
all read as ``{"kernel_size": (3, 3), "stride": (2, 2), ...}``; values only known at run time are
``None``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import torch
from torch import fx, nn

from pytest_equivariance.lint.recognize import lowpass_stride
from pytest_equivariance.lint.shapes import shape_of

if TYPE_CHECKING:
    from pytest_equivariance.lint.sites import ModelGraph


def _known(value: Any) -> Any:
    """Return ``value`` with run-time values (fx nodes, tensors) replaced by ``None``."""
    if isinstance(value, (fx.Node, torch.Tensor)):
        return None
    if isinstance(value, (list, tuple)):
        items = [_known(v) for v in value]
        return None if any(v is None for v in items) else tuple(items)
    return value


def _ntuple(value: Any, n: int | None) -> Any:
    value = _known(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return (value,) * (n or 1)
    if isinstance(value, torch.Size):
        return tuple(value)
    return tuple(value)


_SIGNATURES: dict[str, tuple[str, ...]] = {
    "max_pool": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool": ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "lp_pool": ("input", "norm_type", "kernel_size", "stride", "ceil_mode"),
    "fractional_max_pool": ("input", "kernel_size", "output_size", "output_ratio", "return_indices", "_random_samples"),
    "adaptive_avg_pool": ("input", "output_size"),
    "adaptive_max_pool": ("input", "output_size", "return_indices"),
    "conv": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv_transpose": ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"),
    "interpolate": ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias"),
    "pixel_unshuffle": ("input", "downscale_factor"),
    "linear": ("input", "weight", "bias"),
    "pad": ("input", "pad", "mode", "value"),
    "flatten": ("input", "start_dim", "end_dim"),
}

_DEFAULTS: dict[str, dict[str, Any]] = {
    "max_pool": {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False},
    "avg_pool": {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True},
    "lp_pool": {"stride": None, "ceil_mode": False},
    "conv": {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1},
    "conv_transpose": {"bias": None, "stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "dilation": 1},
    "interpolate": {"size": None, "scale_factor": None, "mode": "nearest", "align_corners": None, "antialias": False},
    "pad": {"mode": "constant", "value": None},
    "flatten": {"start_dim": 0, "end_dim": -1},
}


def _bind(family: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    names = _SIGNATURES.get(family, ())
    bound = dict(_DEFAULTS.get(family, {}))
    for name, value in zip(names, args):
        bound[name] = value
    bound.update(kwargs)
    return bound


def _pool_params(family: str, bound: dict[str, Any], n: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if family in ("adaptive_avg_pool", "adaptive_max_pool"):
        out = _known(bound.get("output_size"))
        params["output_size"] = (out,) * (n or 1) if isinstance(out, int) or out is None and "output_size" not in bound else out
        if isinstance(bound.get("output_size"), (list, tuple)):
            params["output_size"] = tuple(None if isinstance(v, fx.Node) else v for v in bound["output_size"])
        return params
    kernel = _ntuple(bound.get("kernel_size"), n)
    stride = _ntuple(bound.get("stride"), n)
    if stride is None and not isinstance(bound.get("stride"), (fx.Node, list, tuple)) or stride == ():
        stride = kernel  # torch's default: stride = kernel_size
    params["kernel_size"] = kernel
    params["stride"] = stride
    if family != "lp_pool" and family != "fractional_max_pool":
        params["padding"] = _ntuple(bound.get("padding", 0), n)
    if family == "max_pool":
        params["dilation"] = _ntuple(bound.get("dilation", 1), n)
    if "ceil_mode" in bound:
        params["ceil_mode"] = _known(bound.get("ceil_mode"))
    if family == "lp_pool":
        params["norm_type"] = _known(bound.get("norm_type"))
    if family == "fractional_max_pool":
        params["stride"] = None  # random, data-dependent subsampling
        params["output_size"] = _known(bound.get("output_size"))
        params["output_ratio"] = _known(bound.get("output_ratio"))
    return params


def module_params(module: nn.Module, family: str, ndim: int | None) -> dict[str, Any]:
    """Return a layer's canonical parameters, read from its attributes."""
    get = functools.partial(getattr, module)
    if family in ("max_pool", "avg_pool", "lp_pool", "fractional_max_pool"):
        bound = {k: get(k) for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "norm_type",
                                      "output_size", "output_ratio") if hasattr(module, k)}
        return _pool_params(family, bound, ndim)
    if family in ("adaptive_avg_pool", "adaptive_max_pool"):
        return _pool_params(family, {"output_size": get("output_size")}, ndim)
    if family in ("conv", "conv_transpose"):
        params = {
            "in_channels": module.in_channels, "out_channels": module.out_channels,
            "kernel_size": tuple(module.kernel_size), "stride": tuple(module.stride),
            "padding": module.padding if isinstance(module.padding, str) else tuple(module.padding),
            "dilation": tuple(module.dilation), "groups": module.groups,
            "padding_mode": module.padding_mode, "bias": module.bias is not None,
        }
        if family == "conv_transpose":
            params["output_padding"] = tuple(module.output_padding)
        return params
    if family == "interpolate":
        return {"size": module.size, "scale_factor": module.scale_factor, "mode": module.mode,
                "align_corners": module.align_corners, "antialias": False}
    if family == "pixel_unshuffle":
        return {"downscale_factor": module.downscale_factor}
    if family == "linear":
        return {"in_features": module.in_features, "out_features": module.out_features}
    if family == "flatten":
        return {"start_dim": module.start_dim, "end_dim": module.end_dim}
    if family == "pad":
        padding = nn.modules.padding
        modes = ((padding._ReflectionPadNd, "reflect"), (padding._ReplicationPadNd, "replicate"),
                 (getattr(padding, "_CircularPadNd", ()), "circular"))
        mode = next((name for cls, name in modes if cls and isinstance(module, cls)), "constant")
        return {"pad": tuple(module.padding), "mode": mode, "value": getattr(module, "value", None)}
    if family == "blur":
        return {"stride": lowpass_stride(module)}
    return {}


def function_params(family: str, ndim: int | None, node: fx.Node, graph: ModelGraph) -> dict[str, Any]:
    """Return a functional call's canonical parameters, read from the fx node's arguments."""
    bound = _bind(family, tuple(node.args), dict(node.kwargs))
    if family in ("max_pool", "avg_pool", "lp_pool", "fractional_max_pool", "adaptive_avg_pool", "adaptive_max_pool"):
        return _pool_params(family, bound, ndim)
    if family in ("conv", "conv_transpose"):
        weight = bound.get("weight")
        wshape = weight.meta.get("lint_shape") if isinstance(weight, fx.Node) else shape_of(weight)
        attr = graph.attribute(weight) if graph is not None else None
        if wshape is None and attr is not None:
            wshape = tuple(attr[1].shape)
        groups = _known(bound.get("groups", 1))
        padding = bound.get("padding", 0)
        params: dict[str, Any] = {
            "in_channels": None, "out_channels": None,
            "kernel_size": tuple(wshape[2:]) if wshape else None,
            "stride": _ntuple(bound.get("stride", 1), ndim),
            "padding": padding if isinstance(padding, str) else _ntuple(padding, ndim),
            "dilation": _ntuple(bound.get("dilation", 1), ndim),
            "groups": groups, "padding_mode": "zeros",
            "bias": bound.get("bias") is not None,
        }
        if wshape and isinstance(groups, int):
            if family == "conv":
                params["out_channels"], params["in_channels"] = wshape[0], wshape[1] * groups
            else:
                params["in_channels"], params["out_channels"] = wshape[0], wshape[1] * groups
        if family == "conv_transpose":
            params["output_padding"] = _ntuple(bound.get("output_padding", 0), ndim)
        return params
    if family == "interpolate":
        params = {k: _known(bound.get(k)) for k in ("size", "scale_factor", "mode", "align_corners", "antialias")}
        target = getattr(node.target, "__name__", "")
        if target == "upsample_bilinear":
            params["mode"], params["align_corners"] = "bilinear", True
        elif target == "upsample_nearest":
            params["mode"] = "nearest"
        return params
    if family == "pixel_unshuffle":
        return {"downscale_factor": _known(bound.get("downscale_factor"))}
    if family == "linear":
        weight = bound.get("weight")
        wshape = weight.meta.get("lint_shape") if isinstance(weight, fx.Node) else shape_of(weight)
        attr = graph.attribute(weight) if graph is not None else None
        if wshape is None and attr is not None:
            wshape = tuple(attr[1].shape)
        return {"in_features": wshape[1] if wshape else None, "out_features": wshape[0] if wshape else None}
    if family == "pad":
        return {"pad": _known(bound.get("pad")), "mode": _known(bound.get("mode")), "value": _known(bound.get("value"))}
    if family == "flatten":
        return {"start_dim": _known(bound.get("start_dim")), "end_dim": _known(bound.get("end_dim"))}
    return {}


def method_params(family: str, node: fx.Node) -> dict[str, Any]:
    if family == "flatten":
        bound = _bind("flatten", tuple(node.args), dict(node.kwargs))
        return {"start_dim": _known(bound.get("start_dim")), "end_dim": _known(bound.get("end_dim"))}
    return {}


def index_params(node: fx.Node, ndim: int | None) -> dict[str, Any]:
    """Describe ``x[index]``: its text, and which dims it steps through with a stride > 1."""
    index = node.args[1] if len(node.args) > 1 else None
    items = index if isinstance(index, tuple) else (index,)

    def text(item: Any) -> str:
        if isinstance(item, slice):
            parts = ["" if v is None else (v.name if isinstance(v, fx.Node) else repr(v))
                     for v in (item.start, item.stop, item.step)]
            return ":".join(parts[:2]) + (f":{parts[2]}" if item.step is not None else "")
        if item is Ellipsis:
            return "..."
        if isinstance(item, fx.Node):
            return item.name
        return repr(item)

    consuming = [it for it in items if it is not None and it is not Ellipsis]
    strided: list[tuple[int, int]] = []
    after_ellipsis = False
    position = 0
    remaining = len(consuming)
    for item in items:
        if item is Ellipsis:
            after_ellipsis = True
            continue
        if item is None:
            continue
        dim = -remaining if after_ellipsis else position
        if dim < 0 and ndim is not None:
            dim += ndim
        if isinstance(item, slice) and isinstance(item.step, int) and item.step > 1:
            strided.append((dim, item.step))
        position += 1
        remaining -= 1
    return {"index": "[" + ", ".join(text(it) for it in items) + "]", "strided_dims": strided}
