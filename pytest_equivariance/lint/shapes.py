"""Shape propagation on the ``meta`` device: every node's output shape, without real compute.

The weights are swapped for meta tensors while a graph runs, so models with real weights, models
built under ``torch.device("meta")`` and models built with empty weights (:mod:`.empty`) all work
alike; code that reads a meta tensor's value gets assumed values (:class:`AssumedValues`).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import fx, nn

from pytest_equivariance.lint.ops import module_family


@contextlib.contextmanager
def meta_weights(module: nn.Module) -> Iterator[None]:
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


class AssumedValues(torch.overrides.TorchFunctionMode):
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


_VALUE_READS = frozenset({torch.Tensor.__bool__, torch.Tensor.item, torch.Tensor.__int__, torch.Tensor.__float__,
                          torch.Tensor.__index__, torch.Tensor.tolist})


def to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and not value.is_meta:
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(to_meta(v) for v in value)
    if isinstance(value, dict):
        return {k: to_meta(v) for k, v in value.items()}
    return value


def shape_of(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        try:
            return tuple(int(s) for s in value.shape)
        except Exception:  # symbolic sizes
            return None
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return shape_of(value[0])  # (values, indices) and similar: the first tensor
    return None


_MISSING = object()


#: How torch says that a real tensor met a meta one.
_DEVICE_MIXING = ("is not on the expected device", "Expected all tensors to be on the same device")


class _ShapeInterpreter(fx.Interpreter):
    """Runs a traced graph on meta tensors, recording each node's output shape and module inputs.

    Tensors a forward creates on a real device (``torch.arange(n, device=x.device)`` fixed at trace
    time as cpu, rotary tables computed in ``forward``) then meet meta ones; such a node runs again
    with every tensor argument on meta, and :attr:`converted` names it.
    """

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.converted: list[str] = []

    def run_node(self, n: fx.Node) -> Any:
        if n.op == "call_module":
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            n.meta["lint_call"] = (args, kwargs)
        try:
            out = super().run_node(n)
        except RuntimeError as exc:
            if n.op not in ("call_function", "call_method") or not any(m in str(exc) for m in _DEVICE_MIXING):
                raise
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            out = getattr(self, n.op)(n.target, to_meta(args), to_meta(kwargs))
            self.converted.append(n.name)
        n.meta["lint_shape"] = shape_of(out)
        n.meta["lint_is_tensor"] = isinstance(out, torch.Tensor)
        return out

    def get_attr(self, target: Any, args: Any, kwargs: Any) -> Any:
        return to_meta(super().get_attr(target, args, kwargs))

    def call_function(self, target: Any, args: Any, kwargs: Any) -> Any:
        # fx hands lists over as immutable lists; functions kept opaque by torch.fx.wrap may mutate them.
        return super().call_function(target, _mutable(args), _mutable(kwargs))

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        # Norms, activations and dropout keep the shape, and convs and linear layers have simple
        # shape formulas: skip their (slow) meta kernels. Anything unusual runs the real module.
        if len(args) == 1 and isinstance(args[0], torch.Tensor) and not kwargs:
            module = self.fetch_attr(target)
            family = module_family(module)[0]
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
    if type(value) is tuple:  # named tuples and torch.return_types keep their type (``.values``)
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


def propagate(gm: fx.GraphModule, args: tuple, kwargs: dict, notes: list[str] | None = None) -> str | None:
    """Run ``gm`` on meta inputs; return ``None``, or the failure as ``"<node>: <message>"``.

    ``notes`` receives a sentence naming the nodes that mixed a real-device tensor with meta ones
    and ran again on meta.
    """
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    values: list[Any] = []
    for i, node in enumerate(placeholders):
        if i < len(args):
            values.append(args[i])
        elif node.target in kwargs:
            values.append(kwargs[node.target])
        elif node.args:
            values.append(node.args[0])  # the parameter's default
        elif str(node.target).startswith("**"):
            values.append({})  # forward(x, **kwargs) called as model(x): nothing extra
        elif str(node.target).startswith("*"):
            values.append(())
        else:
            return f"the forward takes an input {node.target!r} that the example input does not provide"
    interpreter = _ShapeInterpreter(gm)
    try:
        with torch.no_grad(), meta_weights(gm), AssumedValues():
            interpreter.run(*to_meta(tuple(values)))
    except Exception as exc:  # a real model never crashes the linter
        _note_converted(interpreter, notes)
        failing = next((n for n in reversed(gm.graph.nodes) if n in interpreter.env), None)
        current = _next_node(gm, failing)
        where = _node_label(current, gm) if current is not None else "the forward"
        return f"{where}: {type(exc).__name__}: {first_line(exc)}"
    _note_converted(interpreter, notes)
    return None


def _note_converted(interpreter: _ShapeInterpreter, notes: list[str] | None) -> None:
    if notes is not None and interpreter.converted:
        shown = ", ".join(interpreter.converted[:5]) + (", ..." if len(interpreter.converted) > 5 else "")
        notes.append(f"{len(interpreter.converted)} node(s) mixed tensors made on a real device with meta ones "
                     f"({shown}); their shapes were propagated with every input on meta")


def _next_node(gm: fx.GraphModule, last_done: fx.Node | None) -> fx.Node | None:
    if last_done is None:
        return next(iter(gm.graph.nodes), None)
    return last_done.next if last_done.next.op != "root" else None


def _node_label(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return f"{node.target} ({type(gm.get_submodule(node.target)).__name__})"
    target = getattr(node.target, "__name__", str(node.target))
    return f"{node.name} ({target})"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
