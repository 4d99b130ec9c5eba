"""Sites inside what fx cannot see: calls recorded while a module runs eagerly on ``meta``, and strided
slices read from the source of a function fx kept opaque (``torch.fx.wrap``).
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
from typing import Any, Callable

import torch

from pytest_equivariance.lint.locations import user_frame
from pytest_equivariance.lint.ops import UNLOCATED, function_table, hashable
from pytest_equivariance.lint.params import function_params, index_params
from pytest_equivariance.lint.recognize import is_lowpass_kernel
from pytest_equivariance.lint.shapes import AssumedValues, shape_of
from pytest_equivariance.lint.sites import Site


class CallRecorder(AssumedValues):
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
            if family is not None and family not in UNLOCATED:
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
    if not hashable(func):
        return None
    entry = function_table().get(func)
    return entry[0] if entry else None


class _EagerCall:
    """The arguments of one eager call, shaped like an fx node for the parameter readers."""

    def __init__(self, target: Any, args: tuple, kwargs: dict) -> None:
        self.target, self.args, self.kwargs, self.meta = target, args, kwargs, {}


def _eager_site(func: Any, family: str, args: tuple, kwargs: dict, out: Any, owner: str) -> Site:
    entry = function_table().get(func) if hashable(func) else None
    ndim = entry[1] if entry else None
    op = entry[2] if entry else "Tensor.__getitem__"
    input_shapes = [shape_of(a) for a in args]
    in_shape = input_shapes[0] if input_shapes else None
    if ndim is None and family == "interpolate" and in_shape:
        ndim = len(in_shape) - 2
    call = _EagerCall(func, tuple(args), kwargs)
    if family == "getitem":
        params = index_params(call, len(in_shape) if in_shape else None)  # type: ignore[arg-type]
    else:
        params = function_params(family, ndim, call, None)  # type: ignore[arg-type]
    if family == "conv":
        weight = args[1] if len(args) > 1 else kwargs.get("weight")
        if isinstance(weight, torch.Tensor) and not weight.requires_grad and weight.dim() >= 3 \
                and weight.shape[1] == 1 and math.prod(weight.shape[2:]) > 1 and is_lowpass_kernel(weight) is not False:
            family, params = "blur", {"stride": params.get("stride")}
    file, line = user_frame(2)
    kind = "method" if family in ("getitem", "add") else "function"
    return Site(qualname=owner, op=op, kind=kind, params=params, input_shapes=input_shapes,
                output_shape=shape_of(out), file=file, line=line, family=family, ndim=ndim,
                shaped=in_shape is not None)


def wrapped_function_sites(target: Any, qualname: str) -> list[Site]:
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
