"""Op tables: every form of an op — a torch.nn layer, a functional call, a tensor method — maps to one family.

The rules speak of families ("max_pool", "conv", "interpolate", "getitem", ...), never of the many
spellings an op has (``nn.MaxPool2d``, ``F.max_pool2d``, ``torch.max_pool2d``). This module holds
those tables, and which layers the tracer keeps as leaves. It changes when torch adds an op.
"""

from __future__ import annotations

import functools
import inspect
import operator
import re
import sys
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from pytest_equivariance.lint.recognize import is_antialiased_downsampler


@functools.lru_cache(maxsize=1)
def function_table() -> dict[Any, tuple[str, int | None, str]]:
    """Map functional targets (F.*, torch.*, operators) to ``(family, ndim, display name)``."""
    table: dict[Any, tuple[str, int | None, str]] = {}
    namespaces = ((F, "F."), (torch, "torch."), (torch._C._nn, "torch._C._nn."))

    def add(obj: Any, family: str, ndim: int | None, display: str) -> None:
        # A function wrapped while the table is built (check.padding makes F.pad circular during a
        # profile) is listed with what it wraps, so the table holds torch's own function either way.
        for each in (obj, getattr(obj, "__wrapped__", None)):
            try:
                if each is not None and each not in table:
                    table[each] = (family, ndim, display)
            except TypeError:  # unhashable
                pass

    per_ndim = {
        "max_pool{}d": "max_pool", "max_pool{}d_with_indices": "max_pool",
        "avg_pool{}d": "avg_pool", "lp_pool{}d": "lp_pool",
        "fractional_max_pool{}d": "fractional_max_pool",
        "fractional_max_pool{}d_with_indices": "fractional_max_pool",
        "adaptive_avg_pool{}d": "adaptive_avg_pool", "adaptive_max_pool{}d": "adaptive_max_pool",
        "adaptive_max_pool{}d_with_indices": "adaptive_max_pool",
        "conv{}d": "conv", "conv_transpose{}d": "conv_transpose",
        "dropout{}d": "dropout",
    }
    plain = {
        "interpolate": "interpolate", "upsample": "interpolate", "upsample_nearest": "interpolate",
        "upsample_bilinear": "interpolate", "pixel_unshuffle": "pixel_unshuffle",
        "linear": "linear", "pad": "pad", "flatten": "flatten", "reshape": "reshape", "add": "add",
        "dropout": "dropout", "alpha_dropout": "dropout", "feature_alpha_dropout": "dropout",
        "batch_norm": "norm", "layer_norm": "norm", "group_norm": "norm", "instance_norm": "norm",
        "relu": "activation", "relu_": "activation", "relu6": "activation", "gelu": "activation",
        "silu": "activation", "sigmoid": "activation", "tanh": "activation", "hardswish": "activation",
        "hardsigmoid": "activation", "leaky_relu": "activation", "elu": "activation", "mish": "activation",
        "cat": "cat", "permute": "reshape", "transpose": "reshape", "unsqueeze": "reshape",
        "squeeze": "reshape",
    }
    for namespace, prefix in namespaces:
        for pattern, family in per_ndim.items():
            for ndim in (1, 2, 3):
                name = pattern.format(ndim)
                add(getattr(namespace, name, None), family, ndim, prefix + name)
        for name, family in plain.items():
            ndim = 2 if family == "pixel_unshuffle" else None
            add(getattr(namespace, name, None), family, ndim, prefix + name)
    for name, (family, ndim) in aten_ops().items():  # an exported model's ATen graph (lint.exported)
        try:
            packet = getattr(torch.ops.aten, name)
        except (AttributeError, RuntimeError):  # an op this torch does not have
            continue
        for overload in packet.overloads():
            add(getattr(packet, overload), family, ndim, "Tensor.__getitem__" if name == "slice" else f"aten.{name}")
    add(operator.getitem, "getitem", None, "Tensor.__getitem__")
    add(operator.add, "add", None, "operator.add")
    add(operator.iadd, "add", None, "operator.iadd")
    return table


#: ATen ops that keep F.*'s signature, per spatial rank: name pattern -> family.
_ATEN_PER_NDIM = {
    "max_pool{}d": "max_pool", "max_pool{}d_with_indices": "max_pool", "avg_pool{}d": "avg_pool",
    "conv{}d": "conv", "conv_transpose{}d": "conv_transpose", "adaptive_avg_pool{}d": "adaptive_avg_pool",
    "adaptive_max_pool{}d": "adaptive_max_pool",
}
#: ATen resampling ops -> (interpolation mode, antialias); lint.exported reads their arguments.
ATEN_RESAMPLING = {
    "upsample_nearest1d": ("nearest", False), "upsample_nearest2d": ("nearest", False),
    "upsample_nearest3d": ("nearest", False), "_upsample_nearest_exact2d": ("nearest-exact", False),
    "upsample_linear1d": ("linear", False), "upsample_bilinear2d": ("bilinear", False),
    "upsample_trilinear3d": ("trilinear", False), "upsample_bicubic2d": ("bicubic", False),
    "_upsample_bilinear2d_aa": ("bilinear", True), "_upsample_bicubic2d_aa": ("bicubic", True),
}


def aten_ops() -> dict[str, tuple[str, int | None]]:
    """Map ATen op names (``max_pool2d``, ``convolution``, ``slice``) to ``(family, ndim)``."""
    ops: dict[str, tuple[str, int | None]] = {
        pattern.format(n): (family, n) for pattern, family in _ATEN_PER_NDIM.items() for n in (1, 2, 3)}
    ops.update({name: ("interpolate", int(re.search(r"(\d)d", name).group(1))) for name in ATEN_RESAMPLING})
    ops.update({"convolution": ("conv", None), "slice": ("getitem", None), "pixel_unshuffle": ("pixel_unshuffle", 2),
                "linear": ("linear", None), "pad": ("pad", None), "flatten": ("flatten", None),
                "relu": ("activation", None), "relu_": ("activation", None), "add": ("add", None),
                "cat": ("cat", None), "batch_norm": ("norm", None)})
    return ops


METHOD_FAMILIES = {
    "flatten": "flatten", "view": "reshape", "reshape": "reshape", "permute": "reshape",
    "transpose": "reshape", "unsqueeze": "reshape", "squeeze": "reshape", "expand": "reshape",
    "expand_as": "reshape", "repeat": "reshape",
    "add": "add", "add_": "add", "__add__": "add", "__iadd__": "add", "__radd__": "add",
    "relu": "activation", "relu_": "activation", "sigmoid": "activation", "tanh": "activation",
    "contiguous": "identity", "clone": "identity", "float": "identity", "to": "identity",
    "type_as": "identity", "detach": "identity", "__getitem__": "getitem",
}


def module_family(module: nn.Module) -> tuple[str, int | None]:
    """Return ``(family, ndim)`` of a layer, by the torch.nn class it derives from."""
    if is_antialiased_downsampler(module):
        return "blur", None
    for cls, family, ndim in _MODULE_FAMILIES:
        if isinstance(module, cls):
            return family, ndim
    if isinstance(module, _ELEMENTWISE_ACTIVATIONS):
        return "activation", None
    return "other", None


#: (torch.nn class, family, ndim) of the layers the rules read; optional classes of newer torch last.
_MODULE_FAMILIES: tuple[tuple[type, str, int | None], ...] = (
    (nn.MaxPool1d, "max_pool", 1), (nn.MaxPool2d, "max_pool", 2), (nn.MaxPool3d, "max_pool", 3),
    (nn.AvgPool1d, "avg_pool", 1), (nn.AvgPool2d, "avg_pool", 2), (nn.AvgPool3d, "avg_pool", 3),
    (nn.AdaptiveAvgPool1d, "adaptive_avg_pool", 1), (nn.AdaptiveAvgPool2d, "adaptive_avg_pool", 2),
    (nn.AdaptiveAvgPool3d, "adaptive_avg_pool", 3), (nn.AdaptiveMaxPool1d, "adaptive_max_pool", 1),
    (nn.AdaptiveMaxPool2d, "adaptive_max_pool", 2), (nn.AdaptiveMaxPool3d, "adaptive_max_pool", 3),
    (nn.LPPool1d, "lp_pool", 1), (nn.LPPool2d, "lp_pool", 2),
    (nn.FractionalMaxPool2d, "fractional_max_pool", 2), (nn.FractionalMaxPool3d, "fractional_max_pool", 3),
    (nn.ConvTranspose1d, "conv_transpose", 1), (nn.ConvTranspose2d, "conv_transpose", 2),
    (nn.ConvTranspose3d, "conv_transpose", 3),
    (nn.Conv1d, "conv", 1), (nn.Conv2d, "conv", 2), (nn.Conv3d, "conv", 3),
    (nn.Upsample, "interpolate", None), (nn.PixelUnshuffle, "pixel_unshuffle", 2),
    (nn.Linear, "linear", None), (nn.Flatten, "flatten", None),
    (nn.modules.padding._ConstantPadNd, "pad", None), (nn.modules.padding._ReflectionPadNd, "pad", None),
    (nn.modules.padding._ReplicationPadNd, "pad", None),
    (nn.modules.dropout._DropoutNd, "dropout", None), (nn.Identity, "identity", None),
    (nn.modules.batchnorm._NormBase, "norm", None), (nn.GroupNorm, "norm", None), (nn.LayerNorm, "norm", None),
) + tuple(
    (cls, family, ndim)
    for cls, family, ndim in (
        (getattr(nn, "LPPool3d", None), "lp_pool", 3),
        (getattr(nn.modules.padding, "_CircularPadNd", None), "pad", None),
    )
    if isinstance(cls, type)
)


_ELEMENTWISE_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.LeakyReLU,
    nn.ELU, nn.SELU, nn.CELU, nn.Mish, nn.PReLU, nn.Softplus, nn.Hardtanh, nn.Tanhshrink, nn.LogSigmoid,
)


def is_standard_leaf(module: nn.Module) -> bool:
    # A layer that derives from a torch.nn layer class (not a container) is analysed from its
    # attributes, even when a library subclasses it with its own forward (timm's Conv2dSame).
    containers = (nn.Module, nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)
    for cls in type(module).__mro__:
        if cls in containers or cls is object:
            continue
        name = cls.__module__ or ""
        if name.startswith(("torch.nn.", "torch.ao.nn.")):
            return True
    return False


def library_leaf_classes() -> tuple[type, ...]:
    # timm registers layers that fx cannot trace; honour its list when timm is in use.
    fx_mod = sys.modules.get("timm.layers._fx")
    if fx_mod is None or not hasattr(fx_mod, "get_notrace_modules"):
        return ()
    try:
        return tuple(c for c in fx_mod.get_notrace_modules() if isinstance(c, type))
    except Exception:  # pragma: no cover - defensive against library changes
        return ()


@functools.lru_cache(maxsize=1)
def blur_functions() -> dict[Callable[..., Any], int]:
    """Return this project's functional downsamplers that do not alias, and their ndim.

    ``blur_pool1d/2d/3d`` and ``blur_avg_pool1d/2d/3d`` (what fixes write) and
    ``polyphase_pool1d/2d/3d``. The tracer keeps them as single calls (their internals do not
    trace), and the graph reads them as anti-aliased downsamplers with the stride of
    :func:`blur_call_stride`.
    """
    from pytest_equivariance.layers import filters, polyphase

    return {
        filters.blur_pool1d: 1, filters.blur_pool2d: 2, filters.blur_pool3d: 3,
        filters.blur_avg_pool1d: 1, filters.blur_avg_pool2d: 2, filters.blur_avg_pool3d: 3,
        polyphase.polyphase_pool1d: 1, polyphase.polyphase_pool2d: 2, polyphase.polyphase_pool3d: 3,
    }


def blur_call_stride(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Return the stride a call of one of :func:`blur_functions` subsamples by (None: unknown)."""
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    stride = bound.arguments.get("stride")
    return bound.arguments.get("kernel_size") if stride is None else stride


def library_autowrap_functions() -> tuple[Callable[..., Any], ...]:
    """Return the functions fx must record as single calls: ours, and timm's registered ones."""
    ours = tuple(blur_functions())
    fx_mod = sys.modules.get("timm.layers._fx")
    if fx_mod is None or not hasattr(fx_mod, "get_notrace_functions"):
        return ours
    try:
        return ours + tuple(fx_mod.get_notrace_functions())
    except Exception:  # pragma: no cover
        return ours


#: Families whose sites no rule reports: their source is not looked up (it costs a file parse).
UNLOCATED = frozenset({"activation", "norm", "dropout", "identity", "reshape", "cat", "other"})


def hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
