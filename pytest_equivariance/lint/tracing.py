"""The fx tracers: which modules stay leaves, and which nodes keep a stack trace.

One tracer, extended by subclassing, in the spirit of torchvision's ``feature_extraction``:
:class:`LeafModuleAwareTracer` keeps standard ``torch.nn`` layers, fixed low-pass layers and
untraceable library layers as leaves; :class:`SiteTracer` adds what the linter needs on top (stack
traces for the nodes a rule may report, and which module was being traced when tracing failed).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import fx, nn

from pytest_equivariance.lint.locations import user_frame
from pytest_equivariance.lint.ops import (
    METHOD_FAMILIES,
    UNLOCATED,
    function_table,
    hashable,
    is_standard_leaf,
    library_autowrap_functions,
    library_leaf_classes,
)
from pytest_equivariance.lint.recognize import is_antialiased_downsampler


class LeafModuleAwareTracer(fx.Tracer):
    """An fx tracer that keeps standard layers, fixed low-pass layers and given classes as leaves.

    Leaves are: any module deriving from a ``torch.nn`` layer class (analysed from its attributes),
    any anti-aliased downsampler (:func:`~pytest_equivariance.lint.recognize.is_antialiased_downsampler`:
    its strided internals are what makes it safe), library layers registered as untraceable (timm's
    notrace modules), and the classes in ``leaf_classes``.
    """

    def __init__(self, leaf_classes: frozenset[type] = frozenset()) -> None:
        super().__init__(autowrap_functions=library_autowrap_functions(), param_shapes_constant=True)
        self.leaf_classes = frozenset(leaf_classes) | frozenset(library_leaf_classes())

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in self.leaf_classes or is_standard_leaf(m) or is_antialiased_downsampler(m):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _wants_location(kind: str, target: Any, args: Any = ()) -> bool:
    if may_split(kind, target, args):
        return True
    if kind == "call_function":
        if not hashable(target):
            return True
        entry = function_table().get(target)
        return entry is not None and entry[0] not in UNLOCATED
    if kind == "call_method":
        return METHOD_FAMILIES.get(str(target), "other") not in UNLOCATED
    return False


def may_split(kind: str, target: Any, args: Any) -> bool:
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
    """Records where the user wrote each call a rule may report, and which module failed to trace.

    The location (``node.meta["lint_location"]``: file and line of the innermost user frame) is
    taken for functional and method calls a rule may report only; layers are located from their
    constructor instead. fx's own ``record_stack_traces`` would format the whole stack for every
    node (and import ``torch.export`` to filter it): several times the cost of the trace itself.
    """

    def __init__(self, leaf_classes: frozenset[type] = frozenset()) -> None:
        super().__init__(leaf_classes)
        self.failed_module: nn.Module | None = None

    def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any, *rest: Any, **options: Any) -> Any:
        proxy = super().create_proxy(kind, target, args, kwargs, *rest, **options)
        if _wants_location(kind, target, args):
            proxy.node.meta["lint_location"] = user_frame(2)
        return proxy

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_module is None:  # the innermost module: exceptions unwind outwards
                self.failed_module = m
            raise
