"""Model -> graph of call sites: torch.fx tracing with fallbacks, shapes on ``meta``, source locations.

:func:`build_graph` turns an ``nn.Module`` into a :class:`ModelGraph`: every layer call, functional
call and tensor method call as a :class:`Site`, in execution order, with canonical parameters, the
shapes it saw and the file:line a user would edit.

How it gets there, in the spirit of torchvision's ``feature_extraction``:

* One fx tracer, extended by subclassing: :class:`LeafModuleAwareTracer` keeps standard ``torch.nn``
  layers, fixed low-pass layers and untraceable library layers as leaves; :class:`SiteTracer` adds
  what the linter needs on top (stack traces, and which module was being traced when tracing failed).
* A module whose forward cannot be traced (data-dependent control flow, ``*args`` iteration ...) is
  made a leaf, and the whole model traced again; the opaque leaf is then analysed on its own. When
  the model's own forward cannot be traced (torchvision detection models, RAFT), each child is
  analysed instead ("hierarchical"); a module no part of which traces is scanned layer by layer
  ("modules"). ``coverage`` says which fraction of the layers was seen through fx.
* Shapes come from running the graph on the ``meta`` device: the weights are swapped for meta
  tensors while it runs, so no real compute happens and models built under ``torch.device("meta")``
  work as well as models with real weights.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import linecache
import math
import operator
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import fx, nn

from pytest_equivariance.lint.recognize import is_antialiased_downsampler, is_lowpass_kernel, lowpass_stride

__all__ = ["LeafModuleAwareTracer", "ModelGraph", "Site", "SiteTracer", "build_graph"]

#: Maximum number of times a trace is retried after making the failing module a leaf.
MAX_TRACE_RETRIES = 24


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

    def walk_back(self, site: Site, through: Callable[[Site], bool]) -> Site | None:
        """Return the first producer of ``site`` (following first inputs) for which ``through`` is false."""
        current = self.producer(site)
        for _ in range(64):
            if current is None or not through(current):
                return current
            current = self.producer(current)
        return None


# --------------------------------------------------------------------------------------------
# Op tables: every form of an op maps to one family.


@functools.lru_cache(maxsize=1)
def _function_table() -> dict[Any, tuple[str, int | None, str]]:
    """Map functional targets (F.*, torch.*, operators) to ``(family, ndim, display name)``."""
    table: dict[Any, tuple[str, int | None, str]] = {}
    namespaces = ((F, "F."), (torch, "torch."), (torch._C._nn, "torch._C._nn."))

    def add(obj: Any, family: str, ndim: int | None, display: str) -> None:
        try:
            if obj is not None and obj not in table:
                table[obj] = (family, ndim, display)
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
    add(operator.getitem, "getitem", None, "Tensor.__getitem__")
    add(operator.add, "add", None, "operator.add")
    add(operator.iadd, "add", None, "operator.iadd")
    return table


_METHOD_FAMILIES = {
    "flatten": "flatten", "view": "reshape", "reshape": "reshape", "permute": "reshape",
    "transpose": "reshape", "unsqueeze": "reshape", "squeeze": "reshape", "expand": "reshape",
    "expand_as": "reshape", "repeat": "reshape",
    "add": "add", "add_": "add", "__add__": "add", "__iadd__": "add", "__radd__": "add",
    "relu": "activation", "relu_": "activation", "sigmoid": "activation", "tanh": "activation",
    "contiguous": "identity", "clone": "identity", "float": "identity", "to": "identity",
    "type_as": "identity", "detach": "identity", "__getitem__": "getitem",
}


def _module_family(module: nn.Module) -> tuple[str, int | None]:
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


def _is_standard_leaf(module: nn.Module) -> bool:
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


def _library_leaf_classes() -> tuple[type, ...]:
    # timm registers layers that fx cannot trace; honour its list when timm is in use.
    fx_mod = sys.modules.get("timm.layers._fx")
    if fx_mod is None or not hasattr(fx_mod, "get_notrace_modules"):
        return ()
    try:
        return tuple(c for c in fx_mod.get_notrace_modules() if isinstance(c, type))
    except Exception:  # pragma: no cover - defensive against library changes
        return ()


def _library_autowrap_functions() -> tuple[Callable[..., Any], ...]:
    fx_mod = sys.modules.get("timm.layers._fx")
    if fx_mod is None or not hasattr(fx_mod, "get_notrace_functions"):
        return ()
    try:
        return tuple(fx_mod.get_notrace_functions())
    except Exception:  # pragma: no cover
        return ()


# --------------------------------------------------------------------------------------------
# Tracers


class LeafModuleAwareTracer(fx.Tracer):
    """An fx tracer that keeps standard layers, fixed low-pass layers and given classes as leaves.

    Leaves are: any module deriving from a ``torch.nn`` layer class (analysed from its attributes),
    any anti-aliased downsampler (:func:`~pytest_equivariance.lint.recognize.is_antialiased_downsampler`:
    its strided internals are what makes it safe), library layers registered as untraceable (timm's
    notrace modules), and the classes in ``leaf_classes``.
    """

    def __init__(self, leaf_classes: frozenset[type] = frozenset()) -> None:
        super().__init__(autowrap_functions=_library_autowrap_functions(), param_shapes_constant=True)
        self.leaf_classes = frozenset(leaf_classes) | frozenset(_library_leaf_classes())

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in self.leaf_classes or _is_standard_leaf(m) or is_antialiased_downsampler(m):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _wants_location(kind: str, target: Any, args: Any = ()) -> bool:
    if _may_split(kind, target, args):
        return True
    if kind == "call_function":
        if not _hashable(target):
            return True
        entry = _function_table().get(target)
        return entry is not None and entry[0] not in _UNLOCATED
    if kind == "call_method":
        return _METHOD_FAMILIES.get(str(target), "other") not in _UNLOCATED
    return False


def _may_split(kind: str, target: Any, args: Any) -> bool:
    """Whether a call may split the spatial dims of an image: where a hand-written space-to-depth starts.

    Such reshapes are located although other layout ops are not, because EQ006 reports there. Splitting
    both spatial dims of a 4-d tensor gives at least 6 dims; smaller reshapes are not worth a stack trace.
    """
    if not ((kind == "call_method" and target in ("view", "reshape"))
            or (kind == "call_function" and target is torch.reshape)):
        return False
    args = tuple(args)
    shape = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
    return len(shape) >= 6


class SiteTracer(LeafModuleAwareTracer):
    """Adds stack traces to every node, and remembers which module was being traced when tracing failed."""

    def __init__(self, leaf_classes: frozenset[type] = frozenset()) -> None:
        super().__init__(leaf_classes)
        self.record_stack_traces = True
        self.failed_module: nn.Module | None = None

    def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any, *rest: Any, **options: Any) -> Any:
        # Capturing a stack trace is the costliest part of tracing: only do it for the nodes a
        # rule may report (layers are located from their constructor instead).
        self.record_stack_traces = _wants_location(kind, target, args)
        return super().create_proxy(kind, target, args, kwargs, *rest, **options)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_module is None:  # the innermost module: exceptions unwind outwards
                self.failed_module = m
            raise


# --------------------------------------------------------------------------------------------
# Meta-device shape propagation


@contextlib.contextmanager
def _meta_weights(module: nn.Module) -> Iterator[None]:
    """Swap every parameter and buffer of ``module`` for a meta tensor of the same shape, temporarily."""
    saved: list[tuple[dict, str, Any]] = []
    try:
        for m in module.modules():
            for store in (m._parameters, m._buffers):
                for name, value in list(store.items()):
                    if value is None or value.is_meta or isinstance(value, nn.parameter.UninitializedTensorMixin):
                        continue
                    saved.append((store, name, value))
                    meta = value.detach().to("meta")
                    if isinstance(value, nn.Parameter):
                        meta = nn.Parameter(meta, requires_grad=value.requires_grad)
                    store[name] = meta
        yield
    finally:
        for store, name, value in reversed(saved):
            store[name] = value


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    # Lint what runs at inference; restore each module's own flag afterwards.
    flags = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        yield
    finally:
        for m, flag in flags:
            m.training = flag


class _AssumedValues(torch.overrides.TorchFunctionMode):
    """Lets eager code that reads a meta tensor's value run on: conditions hold, numbers are 0.

    Meta tensors have shapes but no values, so ``if x.sum() > 0:`` or ``x.max().item()`` would stop
    shape propagation. Assuming ``True`` keeps checks such as ``if not valid: raise`` quiet; the
    branch a data-dependent ``if`` takes on real data is unknowable here anyway.
    """

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if args and isinstance(args[0], torch.Tensor) and args[0].is_meta and func in _VALUE_READS:
            tensor = args[0]
            if func is torch.Tensor.__bool__:
                return True
            if func is torch.Tensor.tolist:
                return torch.zeros(tensor.shape, dtype=tensor.dtype).tolist()
            return 0.0 if tensor.is_floating_point() and func is not torch.Tensor.__int__ else 0
        return func(*args, **(kwargs or {}))


class _CallRecorder(_AssumedValues):
    """Records the functional calls a rule may report while a module runs eagerly on meta tensors.

    ``stack`` holds the qualified names of the modules being run (kept by forward hooks); each
    call is attributed to the innermost one, so a layer's own internals (``nn.MaxPool2d`` calling
    ``F.max_pool2d``) never count twice.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.sites: list[tuple[str, Site]] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = super().__torch_function__(func, types, args, kwargs)
        if self.stack:
            family = _eager_family(func)
            if family is not None and family not in _UNLOCATED:
                try:
                    site = _eager_site(func, family, args, kwargs or {}, out, self.stack[-1])
                except Exception:  # recording is best effort; the run itself must go on
                    site = None
                if site is not None:
                    self.sites.append((self.stack[-1], site))
        return out


def _eager_family(func: Any) -> str | None:
    if func is torch.Tensor.__getitem__:
        return "getitem"
    if not _hashable(func):
        return None
    entry = _function_table().get(func)
    return entry[0] if entry else None


class _EagerCall:
    """The arguments of one eager call, shaped like an fx node for the parameter readers."""

    def __init__(self, target: Any, args: tuple, kwargs: dict) -> None:
        self.target, self.args, self.kwargs, self.meta = target, args, kwargs, {}


def _eager_site(func: Any, family: str, args: tuple, kwargs: dict, out: Any, owner: str) -> Site:
    entry = _function_table().get(func) if _hashable(func) else None
    ndim = entry[1] if entry else None
    op = entry[2] if entry else "Tensor.__getitem__"
    input_shapes = [_shape_of(a) for a in args]
    in_shape = input_shapes[0] if input_shapes else None
    if ndim is None and family == "interpolate" and in_shape:
        ndim = len(in_shape) - 2
    call = _EagerCall(func, tuple(args), kwargs)
    if family == "getitem":
        params = _index_params(call, len(in_shape) if in_shape else None)  # type: ignore[arg-type]
    else:
        params = _function_params(family, ndim, call, None)  # type: ignore[arg-type]
    if family == "conv":
        weight = args[1] if len(args) > 1 else kwargs.get("weight")
        if isinstance(weight, torch.Tensor) and not weight.requires_grad and weight.dim() >= 3 \
                and weight.shape[1] == 1 and math.prod(weight.shape[2:]) > 1 and is_lowpass_kernel(weight) is not False:
            family, params = "blur", {"stride": params.get("stride")}
    file, line = _user_frame("".join(traceback.format_stack(limit=24)))
    kind = "method" if family in ("getitem", "add") else "function"
    return Site(qualname=owner, op=op, kind=kind, params=params, input_shapes=input_shapes,
                output_shape=_shape_of(out), file=file, line=line, family=family, ndim=ndim,
                shaped=in_shape is not None)


_VALUE_READS = frozenset({torch.Tensor.__bool__, torch.Tensor.item, torch.Tensor.__int__, torch.Tensor.__float__,
                          torch.Tensor.__index__, torch.Tensor.tolist})


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and not value.is_meta:
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_to_meta(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_meta(v) for k, v in value.items()}
    return value


def _shape_of(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        try:
            return tuple(int(s) for s in value.shape)
        except Exception:  # symbolic sizes
            return None
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return _shape_of(value[0])  # (values, indices) and similar: the first tensor
    return None


_MISSING = object()


class _ShapeInterpreter(fx.Interpreter):
    """Runs a traced graph on meta tensors, recording each node's output shape and module inputs."""

    def run_node(self, n: fx.Node) -> Any:
        if n.op == "call_module":
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            n.meta["lint_call"] = (args, kwargs)
        out = super().run_node(n)
        n.meta["lint_shape"] = _shape_of(out)
        n.meta["lint_is_tensor"] = isinstance(out, torch.Tensor)
        return out

    def get_attr(self, target: Any, args: Any, kwargs: Any) -> Any:
        return _to_meta(super().get_attr(target, args, kwargs))

    def call_function(self, target: Any, args: Any, kwargs: Any) -> Any:
        # fx hands lists over as immutable lists; functions kept opaque by torch.fx.wrap may mutate them.
        return super().call_function(target, _mutable(args), _mutable(kwargs))

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        # Norms, activations and dropout keep the shape, and convs and linear layers have simple
        # shape formulas: skip their (slow) meta kernels. Anything unusual runs the real module.
        if len(args) == 1 and isinstance(args[0], torch.Tensor) and not kwargs:
            module = self.fetch_attr(target)
            family = _module_family(module)[0]
            if family in _SHAPE_PRESERVING:
                return args[0]
            shape = _fast_shape(module, family, args[0])
            if shape is not None:
                return torch.empty(shape, dtype=args[0].dtype, device="meta")
        return super().call_module(target, args, kwargs)


def _mutable(value: Any) -> Any:
    if isinstance(value, fx.immutable_collections.immutable_list):
        return [_mutable(v) for v in value]
    if isinstance(value, fx.immutable_collections.immutable_dict):
        return {k: _mutable(v) for k, v in value.items()}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_mutable(v) for v in value)
    if isinstance(value, dict):
        return {k: _mutable(v) for k, v in value.items()}
    return value


def _fast_shape(module: nn.Module, family: str, x: torch.Tensor) -> tuple[int, ...] | None:
    """Output shape of a plain Linear or ConvNd on ``x``, or ``None`` to run the module instead."""
    if type(module) is nn.Linear:
        if x.dim() >= 1 and x.shape[-1] == module.in_features:
            return (*x.shape[:-1], module.out_features)
        return None
    if family != "conv" or type(module) not in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        return None
    n = len(module.kernel_size)
    if x.dim() != n + 2 or x.shape[1] != module.in_channels or isinstance(module.padding, str):
        return None
    spatial = []
    for size, k, s, p, d in zip(x.shape[2:], module.kernel_size, module.stride, module.padding, module.dilation):
        out = (size + 2 * p - d * (k - 1) - 1) // s + 1
        if out <= 0:
            return None  # let the module raise its own error
        spatial.append(out)
    return (x.shape[0], module.out_channels, *spatial)


_SHAPE_PRESERVING = frozenset({"norm", "activation", "dropout", "identity"})


def _propagate(gm: fx.GraphModule, args: tuple, kwargs: dict) -> str | None:
    """Run ``gm`` on meta inputs; return ``None``, or the failure as ``"<node>: <message>"``."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    values: list[Any] = []
    for i, node in enumerate(placeholders):
        if i < len(args):
            values.append(args[i])
        elif node.target in kwargs:
            values.append(kwargs[node.target])
        elif node.args:
            values.append(node.args[0])  # the parameter's default
        else:
            return f"the forward takes an input {node.target!r} that the example input does not provide"
    interpreter = _ShapeInterpreter(gm)
    try:
        with torch.no_grad(), _meta_weights(gm), _AssumedValues():
            interpreter.run(*_to_meta(tuple(values)))
    except Exception as exc:  # a real model never crashes the linter
        failing = next((n for n in reversed(gm.graph.nodes) if n in interpreter.env), None)
        current = _next_node(gm, failing)
        where = _node_label(current, gm) if current is not None else "the forward"
        return f"{where}: {type(exc).__name__}: {_first_line(exc)}"
    return None


def _next_node(gm: fx.GraphModule, last_done: fx.Node | None) -> fx.Node | None:
    if last_done is None:
        return next(iter(gm.graph.nodes), None)
    return last_done.next if last_done.next.op != "root" else None


def _node_label(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return f"{node.target} ({type(gm.get_submodule(node.target)).__name__})"
    target = getattr(node.target, "__name__", str(node.target))
    return f"{node.name} ({target})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Canonical parameters


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


def _module_params(module: nn.Module, family: str, ndim: int | None) -> dict[str, Any]:
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


def _function_params(family: str, ndim: int | None, node: fx.Node, graph: ModelGraph) -> dict[str, Any]:
    """Return a functional call's canonical parameters, read from the fx node's arguments."""
    bound = _bind(family, tuple(node.args), dict(node.kwargs))
    if family in ("max_pool", "avg_pool", "lp_pool", "fractional_max_pool", "adaptive_avg_pool", "adaptive_max_pool"):
        return _pool_params(family, bound, ndim)
    if family in ("conv", "conv_transpose"):
        weight = bound.get("weight")
        wshape = weight.meta.get("lint_shape") if isinstance(weight, fx.Node) else _shape_of(weight)
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
        wshape = weight.meta.get("lint_shape") if isinstance(weight, fx.Node) else _shape_of(weight)
        attr = graph.attribute(weight) if graph is not None else None
        if wshape is None and attr is not None:
            wshape = tuple(attr[1].shape)
        return {"in_features": wshape[1] if wshape else None, "out_features": wshape[0] if wshape else None}
    if family == "pad":
        return {"pad": _known(bound.get("pad")), "mode": _known(bound.get("mode")), "value": _known(bound.get("value"))}
    if family == "flatten":
        return {"start_dim": _known(bound.get("start_dim")), "end_dim": _known(bound.get("end_dim"))}
    return {}


def _method_params(family: str, node: fx.Node) -> dict[str, Any]:
    if family == "flatten":
        bound = _bind("flatten", tuple(node.args), dict(node.kwargs))
        return {"start_dim": _known(bound.get("start_dim")), "end_dim": _known(bound.get("end_dim"))}
    return {}


def _index_params(node: fx.Node, ndim: int | None) -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------
# Source locations


def _frames(stack_trace: str | None) -> list[tuple[str, int]]:
    if not stack_trace:
        return []
    return [(f, int(l)) for f, l in re.findall(r'File "([^"]+)", line (\d+)', stack_trace)]


@functools.lru_cache(maxsize=1)
def _internal_dirs() -> tuple[str, ...]:
    import pytest_equivariance

    dirs = [os.path.dirname(torch.__file__), os.path.dirname(pytest_equivariance.__file__)]
    return tuple(os.path.realpath(d) + os.sep for d in dirs)


def _user_frame(stack_trace: str | None) -> tuple[str | None, int | None]:
    """Return the innermost frame outside torch and this package: where the user called the op."""
    internal = _internal_dirs()
    for filename, line in reversed(_frames(stack_trace)):
        if not os.path.realpath(filename).startswith(internal) and not filename.startswith("<"):
            return filename, line
    return None, None


@functools.lru_cache(maxsize=512)
def _parse_source(filename: str, mtime_ns: int, size: int) -> ast.Module | None:
    linecache.checkcache(filename)
    lines = linecache.getlines(filename)
    if not lines:
        return None
    try:
        return ast.parse("".join(lines), filename)
    except (SyntaxError, ValueError):
        return None


_COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor,
             ast.While, ast.With, ast.AsyncWith, ast.Try)


@dataclass
class _FileIndex:
    """What the locator needs from one source file, computed in a single walk of its syntax tree."""

    classes: list[ast.ClassDef]
    calls: dict[str, list[tuple[int, int, bool]]]  # callee name -> sorted (line, column, inside a loop)
    statements: dict[int, tuple[int, int]]  # line -> span of the innermost statement containing it
    spans: dict[tuple[int, int], ast.stmt]


def _file_index(filename: str) -> _FileIndex | None:
    try:
        stat = os.stat(filename)
    except OSError:
        return None
    return _build_file_index(filename, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _build_file_index(filename: str, mtime_ns: int, size: int) -> _FileIndex | None:
    tree = _parse_source(filename, mtime_ns, size)
    if tree is None:
        return None
    classes: list[ast.ClassDef] = []
    calls: dict[str, list[tuple[int, int, bool]]] = {}
    statements: dict[int, tuple[int, int]] = {}
    spans: dict[tuple[int, int], ast.stmt] = {}
    in_loop: set[int] = set()  # ids of nodes inside a loop or comprehension body
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.GeneratorExp,
                             ast.SetComp, ast.DictComp)) or id(node) in in_loop:
            for child in ast.iter_child_nodes(node):
                in_loop.add(id(child))
        if isinstance(node, ast.ClassDef):
            classes.append(node)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name is not None:
                calls.setdefault(name, []).append((node.lineno, node.col_offset, id(node) in in_loop))
        if isinstance(node, ast.stmt):
            span = (node.lineno, node.end_lineno or node.lineno)
            spans.setdefault(span, node)
            lines = [node.lineno] if isinstance(node, _COMPOUND) else range(span[0], span[1] + 1)
            for line in lines:
                best = statements.get(line)
                if best is None or span[1] - span[0] < best[1] - best[0]:
                    statements[line] = span
    for found in calls.values():
        found.sort()
    return _FileIndex(classes, calls, statements, spans)


@functools.lru_cache(maxsize=1024)
def _class_source(cls: type) -> tuple[str, ast.ClassDef] | None:
    """Return ``(file, ClassDef)`` of a class defined in Python source, or ``None``."""
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    try:
        filename = inspect.getsourcefile(cls) or filename
    except TypeError:
        return None
    index = _file_index(filename) if filename else None
    if index is None:
        return None
    candidates = [node for node in index.classes if node.name == cls.__name__]
    if len(candidates) == 1:
        return filename, candidates[0]  # type: ignore[return-value]
    try:  # several classes of that name in the file: let inspect pick by qualified name
        _, start = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return None
    for node in candidates:
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        if start in (node.lineno, first):
            return filename, node  # type: ignore[return-value]
    return None


def _user_classes(module: nn.Module) -> list[type]:
    # The module's class and its bases defined outside torch.nn, most derived first.
    return [c for c in type(module).__mro__
            if c is not object and not (c.__module__ or "").startswith("torch.nn")]


@functools.lru_cache(maxsize=1024)
def _class_assignments(cls: type) -> dict[str, list[tuple[int, str | None]]]:
    """Return ``{attr: [(line, callee)]}`` for ``self.<attr> = callee(...)`` and ``add_module`` in a class.

    ``callee`` is the name of the called class or function, ``None`` for other values
    (``self.proj = None``, ``self.downsample = downsample``).
    """
    found = _class_source(cls)
    if found is None:
        return {}
    assigned: dict[str, list[tuple[int, str | None]]] = {}

    def callee(value: ast.AST | None) -> str | None:
        if isinstance(value, ast.Call):
            func = value.func
            return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return None

    for node in ast.walk(found[1]):
        if isinstance(node, ast.Call):
            func = node.func
            args: list[ast.expr] = []
            if isinstance(func, ast.Attribute) and func.attr in ("add_module", "register_module", "__setattr__"):
                args = node.args
            elif isinstance(func, ast.Name) and func.id == "setattr":
                args = node.args[1:]
            if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                value = args[1] if len(args) > 1 else None
                assigned.setdefault(args[0].value, []).append((node.lineno, callee(value)))
            continue
        if isinstance(node, ast.Assign):
            targets, value = list(node.targets), node.value
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    assigned.setdefault(t.attr, []).append((node.lineno, callee(value)))
    for candidates in assigned.values():
        candidates.sort()
    return assigned


def _best_assignment(candidates: list[tuple[int, str | None]], class_name: str) -> int:
    # Prefer constructing the layer's own class, then any call, then the first assignment.
    for wanted in (lambda c: c == class_name, lambda c: c is not None):
        for line, called in candidates:
            if wanted(called):
                return line
    return candidates[0][0]


def _calls_in(filename: str, span: tuple[int, int], name: str) -> list[tuple[int, bool]]:
    """Return ``(line, inside a loop)`` of calls to ``name(...)`` / ``<x>.name(...)`` within a span."""
    index = _file_index(filename)
    if index is None:
        return []
    return [(line, looped) for line, _, looped in index.calls.get(name, ()) if span[0] <= line <= span[1]]


def statement_at(filename: str, line: int) -> tuple[int, int] | None:
    """Return the first and last line of the innermost statement containing ``line`` in a file."""
    index = _file_index(filename)
    return index.statements.get(line) if index is not None else None


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class _SourceLocator:
    """Finds where a layer is constructed in the model's own source, from its qualified name."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self._cache: dict[str, tuple[str | None, int | None]] = {}

    def locate(self, qualname: str) -> tuple[str | None, int | None]:
        if qualname not in self._cache:
            try:
                self._cache[qualname] = self._locate(qualname)
            except Exception:  # source lookup is best effort
                self._cache[qualname] = (None, None)
        return self._cache[qualname]

    def _locate(self, qualname: str) -> tuple[str | None, int | None]:
        if not qualname:
            return None, None
        parent_name, _, attr = qualname.rpartition(".")
        parent = self.root.get_submodule(parent_name)
        module = parent.get_submodule(attr)
        plain_container = type(parent) in _CONTAINERS
        if not plain_container:
            for cls in _user_classes(parent):
                candidates = _class_assignments(cls).get(attr)
                if candidates:
                    found = _class_source(cls)
                    return (found[0] if found else None), _best_assignment(candidates, type(module).__name__)
        # Built inside a container (or in a loop): look for the k-th call to the layer's class in
        # the statement that built a plain container, then in the class owning it, then anywhere
        # in that file (a lone call inside a loop counts for all).
        siblings = [c for c in parent.children() if type(c) is type(module)]
        k = next((i for i, c in enumerate(siblings) if c is module), 0)
        name = type(module).__name__
        scopes: list[tuple[str, tuple[int, int]]] = []

        def add_classes(of: nn.Module) -> None:
            for cls in _user_classes(of):
                found = _class_source(cls)
                if found is not None:
                    scopes.append((found[0], (found[1].lineno, found[1].end_lineno or found[1].lineno)))

        file, line = self.locate(parent_name) if parent_name else (None, None)
        if not plain_container:
            # A user class builds its own children (torchvision's Conv2dNormActivation calls
            # conv_layer(...)): look only there, else the line that built the container is where
            # the user chose it.
            add_classes(parent)
        else:
            if file is not None and line is not None:
                span = statement_at(file, line)
                if span is not None:
                    scopes.append((file, span))
            owner = self._owner(parent_name)
            if owner is not None:
                add_classes(owner)
            if file is not None:
                scopes.append((file, (1, 10**9)))
        for scope_file, span in scopes:
            calls = _calls_in(scope_file, span, name)
            if len(calls) == len(siblings):
                return scope_file, calls[k][0]
            if len(calls) == 1 and calls[0][1]:
                return scope_file, calls[0][0]  # one call in a loop builds them all (VGG's make_layers)
        return file, line

    def _owner(self, qualname: str) -> nn.Module | None:
        # The nearest ancestor (or self) that is not a plain container.
        parts = qualname.split(".") if qualname else []
        while True:
            module = self.root.get_submodule(".".join(parts))
            if type(module) not in _CONTAINERS:
                return module
            if not parts:
                return None
            parts.pop()


# --------------------------------------------------------------------------------------------
# Building the graph


def _omitted_none_arguments(module: nn.Module, call: tuple[tuple, dict] | None) -> dict[str, Any]:
    """Return ``{name: default}`` for optional forward arguments the call leaves out.

    ``forward(x, mask=None, is_causal=False)`` called as ``model(x)`` runs with those defaults;
    tracing with them fixed keeps ``if mask is not None or is_causal:`` out of the graph, as it is
    at run time. Only plain constants (None, bools, numbers, strings) are fixed.
    """
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    given, named = (len(call[0]), set(call[1])) if call is not None else (1, set())
    omitted = {}
    for position, parameter in enumerate(parameters):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if position < given or parameter.name in named:
            continue
        if parameter.default is None or isinstance(parameter.default, (bool, int, float, str)):
            omitted[parameter.name] = parameter.default
    return omitted


def _example_args(example: Any) -> tuple[tuple, dict] | None:
    if example is None:
        return None
    if isinstance(example, torch.Tensor):
        return (_to_meta(example),), {}
    if isinstance(example, dict):
        return (), _to_meta(example)
    if isinstance(example, (tuple, list)) and example and all(isinstance(s, int) for s in example):
        return (torch.empty(tuple(example), device="meta"),), {}
    if isinstance(example, (tuple, list)):
        return tuple(_to_meta(v) for v in example), {}
    return (example,), {}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def _layer(module: nn.Module, input_shapes: list[tuple[int, ...] | None]) -> tuple[str, int | None, dict[str, Any], str]:
    """Return ``(family, ndim, params, op)`` of a layer's site: ``op`` as written, ``nn.Conv2d``."""
    family, ndim = _module_family(module)
    if ndim is None and family == "interpolate" and input_shapes and input_shapes[0]:
        ndim = len(input_shapes[0]) - 2
    try:
        params = _module_params(module, family, ndim)
    except Exception:  # an unusual layer still gets its site, without parameters
        params = {}
    cls = type(module)
    op = f"nn.{cls.__name__}" if (cls.__module__ or "").startswith("torch.nn") else cls.__name__
    return family, ndim, params, op


#: Why a container (ModuleList, a module without forward) is not traced: not worth a note.
_NO_FORWARD = "it has no forward of its own"


class _Builder:
    """Walks a model with the tracing strategy described in the module docstring."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.graph = ModelGraph(model=model)
        self.locator = _SourceLocator(model)
        self.traced_units = 0
        self.scanned_units = 0
        self.any_traced = False
        self.calls: dict[str, tuple[tuple, dict, Any]] = {}
        self.failed_classes: set[type] = set()
        self.analysed: set[int] = set()
        self.recorded_scopes: set[str] = set()
        self.eager_sites: dict[str, list[Site]] = {}

    # -- tracing --------------------------------------------------------------------------
    def trace(self, module: nn.Module, call: tuple[tuple, dict] | None = None
              ) -> tuple[fx.GraphModule | None, str | None]:
        """Trace ``module``, making failing submodule classes leaves; return (graph, root failure)."""
        if type(module) in (nn.ModuleList, nn.ModuleDict) or type(module).forward is nn.Module.forward:
            return None, _NO_FORWARD
        concrete = _omitted_none_arguments(module, call)
        for _ in range(MAX_TRACE_RETRIES):
            tracer = SiteTracer(frozenset(self.failed_classes))
            before = set(vars(module))
            try:
                graph = tracer.trace(module, concrete_args=concrete or None)
            except Exception as exc:
                culprit = tracer.failed_module
                if culprit is None or culprit is module or type(culprit) in self.failed_classes:
                    return None, f"{type(exc).__name__}: {_first_line(exc)}"
                self.failed_classes.add(type(culprit))
                continue
            finally:
                added = set(vars(module)) - before
            try:
                return fx.GraphModule(tracer.root, graph, type(module).__name__), None
            except Exception as exc:
                return None, f"{type(exc).__name__}: {_first_line(exc)}"
            finally:
                # fx stores tensor constants (_tensor_constant0, ...) on the traced module; the
                # GraphModule holds its own references, so the user's model gets them back out.
                for name in added:
                    with contextlib.suppress(AttributeError):
                        delattr(module, name)
        return None, "too many submodules could not be traced"

    def record_calls(self, module: nn.Module, prefix: str, args: tuple, kwargs: dict) -> None:
        """Run ``module`` eagerly on meta inputs, remembering what each submodule saw and called.

        Each submodule's first inputs and output go to ``self.calls``; the functional calls made by
        each module's own forward (``F.max_pool2d``, ``x[..., ::2]``, ...) to ``self.eager_sites``,
        so that a forward fx cannot trace is still read op by op, on the path the meta run took.
        """
        if prefix in self.recorded_scopes:
            return  # an enclosing eager run already saw this module
        handles = []
        recorder = _CallRecorder()

        def enter(name: str) -> Callable[..., None]:
            def push(_m: nn.Module, _a: tuple) -> None:
                recorder.stack.append(name)
            return push

        def leave(name: str) -> Callable[..., None]:
            def pop(_m: nn.Module, a: tuple, kw: dict, out: Any) -> None:
                if recorder.stack and recorder.stack[-1] == name:
                    recorder.stack.pop()
                self.calls.setdefault(name, (a, kw, out))
            return pop

        for name, sub in module.named_modules():
            qualname = _join(prefix, name)
            self.recorded_scopes.add(qualname)
            handles.append(sub.register_forward_pre_hook(enter(qualname)))
            handles.append(sub.register_forward_hook(leave(qualname), with_kwargs=True, always_call=True))
        try:
            with torch.no_grad(), _meta_weights(module), recorder:
                module(*_to_meta(args), **_to_meta(kwargs))
        except Exception as exc:
            self.graph.notes.append(
                f"shapes are partial in {prefix or type(module).__name__}: running it on the meta device "
                f"stopped with {type(exc).__name__}: {_first_line(exc)}"
            )
        finally:
            for h in handles:
                h.remove()
        for owner, site in recorder.sites:
            self.eager_sites.setdefault(owner, []).append(site)

    # -- analysis -------------------------------------------------------------------------
    def analyse(self, module: nn.Module, prefix: str, call: tuple[tuple, dict] | None) -> None:
        """Add the sites of ``module`` (named ``prefix``), called with ``call`` when known."""
        if id(module) in self.analysed:
            return
        self.analysed.add(id(module))
        leaf = self._is_leaf(module)
        gm, failure = (None, "leaf") if leaf else self.trace(module, call)
        if gm is None:
            if leaf or not any(True for _ in module.children()):
                if call is not None and prefix not in self.calls:
                    self.record_calls(module, prefix, *call)
                self._add_scanned(module, prefix)
                if not leaf:
                    for site in self.eager_sites.pop(prefix, []):
                        self._append(site)  # a childless module whose forward would not trace
                return
            if prefix == "" and failure and failure != _NO_FORWARD:
                self.graph.notes.append(f"the model's forward could not be traced ({failure}); "
                                        f"analysing its submodules one by one")
            if call is not None:
                self.record_calls(module, prefix, *call)
            for site in self.eager_sites.pop(prefix, []):
                self._append(site)  # the functional calls of this module's own forward
            for name, child in module.named_children():
                recorded = self.calls.get(_join(prefix, name))
                self.analyse(child, _join(prefix, name), recorded[:2] if recorded else None)
            return
        self.any_traced = True
        if prefix == "":
            self.graph.graph_module = gm
        shaped = False
        if call is not None:
            failure = _propagate(gm, *call)
            shaped = failure is None
            if failure is not None:
                where = f" in {prefix}" if prefix else ""
                given = ", ".join(str(tuple(a.shape)) for a in call[0] if isinstance(a, torch.Tensor))
                message = (f"Shape propagation failed{where} at {failure} (example input {given or 'none'}); "
                           f"pass an input shape the model accepts, with input_shape=... or --input-shape.")
                (self.graph.errors if prefix == "" else self.graph.notes).append(message)
        self._add_graph_sites(gm, prefix, shaped)

    def _is_leaf(self, module: nn.Module) -> bool:
        return _is_standard_leaf(module) or is_antialiased_downsampler(module)

    def _add_graph_sites(self, gm: fx.GraphModule, prefix: str, shaped: bool) -> None:
        _mark_input_dependence(gm)
        for node in gm.graph.nodes:
            if node.op == "get_attr":
                try:
                    value = _fetch(gm, node.target)
                except AttributeError:
                    continue
                if isinstance(value, torch.Tensor):
                    self.graph._attrs[node] = (_join(prefix, str(node.target)), value)
                continue
            if node.op not in ("call_module", "call_function", "call_method"):
                continue
            site = self._site_from_node(node, gm, prefix, shaped)
            if site is None:
                continue
            self._append(site)
            self.graph._by_node[node] = site
            if site.family == "other" and node.op == "call_function":
                for inner in _wrapped_function_sites(node.target, site.qualname):
                    self._append(inner)
            if node.op == "call_module" and site.module is not None:
                module = site.module
                if self._is_leaf(module):
                    self.traced_units += 1
                elif id(module) not in self.analysed:
                    # An opaque leaf (its forward would not trace in context): analyse it on its own.
                    call = node.meta.get("lint_call")
                    self.analyse(module, site.qualname, call)

    def _site_from_node(self, node: fx.Node, gm: fx.GraphModule, prefix: str, shaped: bool) -> Site | None:
        shaped = shaped or "lint_is_tensor" in node.meta  # shapes reached this node before a failure
        input_shapes = [a.meta.get("lint_shape") if isinstance(a, fx.Node) else None for a in node.args]
        output_shape = node.meta.get("lint_shape")
        if node.op == "call_module":
            module = gm.get_submodule(node.target)
            qualname = _join(prefix, str(node.target))
            family, ndim, params, op = _layer(module, input_shapes)
            site = Site(qualname=qualname, op=op, kind="module", module=module, params=params,
                        input_shapes=input_shapes, output_shape=output_shape, node=node,
                        family=family, ndim=ndim, shaped=shaped)
            if family not in _UNLOCATED:
                site.file, site.line = self.locator.locate(qualname)
                if site.file is None:
                    site.file, site.line = _user_frame(node.meta.get("stack_trace"))
            return site
        stack = node.meta.get("nn_module_stack") or {}
        owner = ""
        if stack:
            last = list(stack.values())[-1]
            owner = last[0] if isinstance(last, tuple) else str(last)
        qualname = _join(prefix, owner)
        if node.op == "call_function":
            entry = _function_table().get(node.target) if _hashable(node.target) else None
            family, ndim, op = entry if entry else ("other", None, _callable_name(node.target))
            kind = "method" if family == "getitem" or node.target in (operator.add, operator.iadd) else "function"
        else:
            family = _METHOD_FAMILIES.get(str(node.target), "other")
            ndim, op, kind = None, f"Tensor.{node.target}", "method"
        in_shape = input_shapes[0] if input_shapes else None
        if ndim is None and family in ("interpolate",) and in_shape:
            ndim = len(in_shape) - 2
        try:
            if family == "getitem":
                params = _index_params(node, len(in_shape) if in_shape else None)
            elif node.op == "call_function":
                params = _function_params(family, ndim, node, self.graph)
            else:
                params = _method_params(family, node)
        except Exception:
            params = {}
        if family == "conv" and self._is_blur_call(node, params):
            family = "blur"
            params = {"stride": params.get("stride")}
        site = Site(qualname=qualname, op=op, kind=kind, params=params, input_shapes=input_shapes,
                    output_shape=output_shape, node=node, family=family, ndim=ndim, shaped=shaped,
                    from_input=node.meta.get("lint_from_input", True))
        if family not in _UNLOCATED or _may_split(node.op, node.target, node.args):
            site.file, site.line = _user_frame(node.meta.get("stack_trace"))
        return site

    def _is_blur_call(self, node: fx.Node, params: dict[str, Any]) -> bool:
        # F.conv2d(x, self.filt, stride=2, groups=C) with a fixed low-pass buffer: a functional BlurPool.
        weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
        attr = self.graph.attribute(weight)
        if attr is None:
            return False
        _, tensor = attr
        if isinstance(tensor, nn.Parameter) and tensor.requires_grad:
            return False
        if tensor.dim() < 3 or tensor.shape[1] != 1 or math.prod(tensor.shape[2:]) <= 1:
            return False
        return is_lowpass_kernel(tensor) is not False

    def _add_scanned(self, module: nn.Module, prefix: str) -> None:
        """Add module sites for a subtree that no trace covers, layer by layer."""
        previous: Site | None = None

        def visit(m: nn.Module, name: str, in_sequence: bool) -> None:
            nonlocal previous
            if self._is_leaf(m) or not any(True for _ in m.children()):
                site = self._module_site(m, name)
                if in_sequence and previous is not None:
                    self.graph._previous[site] = previous
                self._append(site)
                self.scanned_units += 1
                previous = site
                return
            sequential = isinstance(m, nn.Sequential)
            if not sequential:
                previous = None
            for child_name, child in m.named_children():
                visit(child, _join(name, child_name), sequential)

        visit(module, prefix, False)

    def _module_site(self, module: nn.Module, qualname: str) -> Site:
        recorded = self.calls.get(qualname)
        input_shapes: list[tuple[int, ...] | None] = []
        output_shape = None
        if recorded is not None:
            input_shapes = [_shape_of(a) for a in recorded[0]]
            output_shape = _shape_of(recorded[2])
        family, ndim, params, op = _layer(module, input_shapes)
        site = Site(qualname=qualname, op=op, kind="module", module=module, params=params,
                    input_shapes=input_shapes, output_shape=output_shape, family=family, ndim=ndim,
                    shaped=recorded is not None)
        if family not in _UNLOCATED:
            site.file, site.line = self.locator.locate(qualname)
        return site

    def _append(self, site: Site) -> None:
        site.index = len(self.graph.sites)
        self.graph.sites.append(site)


#: Families whose sites no rule reports: their source is not looked up (it costs a file parse).
_UNLOCATED = frozenset({"activation", "norm", "dropout", "identity", "reshape", "cat", "other"})


_SHAPE_QUERIES = frozenset({"size", "dim", "numel", "shape", "ndim", "device", "dtype", "is_cuda"})


def _mark_input_dependence(gm: fx.GraphModule) -> None:
    """Set ``node.meta["lint_from_input"]``: whether a node's value depends on the input's values."""
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            depends = node.meta.get("lint_is_tensor", True)  # sizes passed as ints carry no signal
        elif node.op in ("get_attr", "output"):
            depends = False
        elif node.op == "call_method" and node.target in _SHAPE_QUERIES:
            depends = False
        elif node.op == "call_function" and node.target is getattr and len(node.args) > 1 \
                and node.args[1] in _SHAPE_QUERIES:
            depends = False
        else:
            inputs: list[fx.Node] = []
            fx.node.map_arg((node.args, node.kwargs), inputs.append)
            depends = any(n.meta.get("lint_from_input", True) for n in inputs)
        node.meta["lint_from_input"] = depends


def _wrapped_function_sites(target: Any, qualname: str) -> list[Site]:
    """Return strided-slice sites inside a user function that fx kept opaque (``torch.fx.wrap``).

    torchvision wraps Swin's patch merging (``x[..., 0::2, 0::2, :]``) this way; the slices are
    read from the function's source, without shapes.
    """
    if not inspect.isfunction(target) or (getattr(target, "__module__", "") or "").startswith("torch."):
        return []
    return [
        Site(qualname=qualname, op="Tensor.__getitem__", kind="method", family="getitem",
             params={"index": text, "strided_dims": list(dims)}, file=file, line=line)
        for file, line, text, dims in _strided_subscripts(target)
    ]


@functools.lru_cache(maxsize=256)
def _strided_subscripts(function: Callable[..., Any]) -> tuple[tuple[str, int, str, tuple[tuple[int, int], ...]], ...]:
    try:
        filename = inspect.getsourcefile(function)
        lines, start = inspect.getsourcelines(function)
        tree = ast.parse(inspect.cleandoc("".join(lines)) if lines[0].startswith((" ", "\t")) else "".join(lines))
    except (OSError, TypeError, SyntaxError):
        return ()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Subscript):
            continue
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        consuming = [it for it in items if not _is_constant(it, (None, Ellipsis))]
        dims: list[tuple[int, int]] = []
        after, position, remaining = False, 0, len(consuming)
        for item in items:
            if _is_constant(item, (Ellipsis,)):
                after = True
                continue
            if _is_constant(item, (None,)):
                continue
            step = item.step if isinstance(item, ast.Slice) else None
            if isinstance(step, ast.Constant) and isinstance(step.value, int) and step.value > 1:
                dims.append((-remaining if after else position, step.value))
            position += 1
            remaining -= 1
        if dims and filename:
            found.append((filename, start + node.lineno - 1, "[" + ast.unparse(node.slice).strip("()") + "]", tuple(dims)))
    return tuple(found)


def _is_constant(node: ast.AST, values: tuple[Any, ...]) -> bool:
    return isinstance(node, ast.Constant) and any(node.value is v for v in values)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _callable_name(target: Any) -> str:
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)
    if module in ("torch", "torch.functional"):
        return f"torch.{name}"
    if module == "torch.nn.functional":
        return f"F.{name}"
    if module == "_operator":
        return f"operator.{name}"
    return name


def _fetch(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def build_graph(model: nn.Module, example_input: Any = None) -> ModelGraph:
    """Return the :class:`ModelGraph` of ``model``: its call sites in execution order, with shapes.

    ``example_input`` is a tensor, a tuple of tensors, a shape tuple such as ``(1, 3, 224, 224)``,
    or ``None`` (no shapes: rules that need them stay quiet). Real inputs are never run: only their
    shapes and dtypes are used, on the ``meta`` device. Never raises for a problem in the model:
    what could not be analysed is listed in ``errors`` (the example input was rejected) and
    ``notes`` (parts analysed without fx, or without shapes).

    Example::

        >>> import torchvision
        >>> graph = build_graph(torchvision.models.resnet18(), (1, 3, 224, 224))
        >>> [s.qualname for s in graph.sites if s.family == "max_pool"]
        ['maxpool']
    """
    builder = _Builder(model)
    graph = builder.graph
    call = _example_args(example_input)
    if call is not None:
        graph.input_shapes = [s for s in (_shape_of(a) for a in call[0]) if s is not None]
    if isinstance(model, torch.jit.ScriptModule):
        graph.errors.append(f"{type(model).__name__} is a TorchScript module, which torch.fx cannot read; "
                            f"lint the nn.Module before passing it to torch.jit.script.")
        graph.mode, graph.coverage = "modules", 0.0
        return graph
    lazy = any(isinstance(m, nn.modules.lazy.LazyModuleMixin) and m.has_uninitialized_params()
               for m in model.modules())
    if lazy:
        graph.notes.append("the model has uninitialized lazy layers, so shapes are not propagated; "
                           "run one forward pass before linting to get them")
        call = None
    try:
        with _eval_mode(model):
            builder.analyse(model, "", call)
    except Exception as exc:  # a real model never crashes the linter
        graph.errors.append(f"Linting stopped early with {type(exc).__name__}: {_first_line(exc)}; "
                            f"the findings so far are reported.")
    if graph.graph_module is not None:
        graph.mode = "fx"
    elif builder.any_traced:
        graph.mode = "hierarchical"
    else:
        graph.mode = "modules"
    total = builder.traced_units + builder.scanned_units
    graph.coverage = builder.traced_units / total if total else (1.0 if builder.any_traced else 0.0)
    return graph
