"""Model -> graph of call sites: torch.fx tracing with fallbacks, shapes on ``meta``, source locations.

:func:`build_graph` turns an ``nn.Module`` into a :class:`ModelGraph`: every layer call, functional
call and tensor method call as a :class:`Site`, in execution order, with canonical parameters, the
shapes it saw and the file:line a user would edit.

How it gets there, in the spirit of torchvision's ``feature_extraction``:

* One fx tracer, extended by subclassing (:mod:`.tracing`): standard ``torch.nn`` layers, fixed
  low-pass layers and untraceable library layers stay leaves.
* A module whose forward cannot be traced (data-dependent control flow, ``*args`` iteration ...) is
  made a leaf, and the whole model traced again; the opaque leaf is then analysed on its own. When
  the model's own forward cannot be traced (torchvision detection models, RAFT), each child is
  analysed instead ("hierarchical"); a module no part of which traces is scanned layer by layer
  ("modules"). ``coverage`` says which fraction of the layers was seen through fx.
* Shapes come from running the graph once on the ``meta`` device (:mod:`.shapes`): no real compute,
  and models with real, meta or empty weights work alike.
* Each site's op maps to a family (:mod:`.ops`) with canonical parameters (:mod:`.params`); its
  file:line (:mod:`.locations`) is looked up only when something asks for it (:meth:`Site.locate`).

This module holds the walk that builds the graph; the data (:class:`Site`, :class:`ModelGraph`) is
:mod:`.sites`, and what fx cannot see is read by :mod:`.opaque`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import operator
from typing import Any, Callable, Iterator

import torch
from torch import fx, nn

from pytest_equivariance.lint.locations import SourceLocator
from pytest_equivariance.lint.opaque import CallRecorder, wrapped_function_sites
from pytest_equivariance.lint.ops import (
    METHOD_FAMILIES,
    UNLOCATED,
    blur_call_stride,
    blur_functions,
    function_table,
    hashable,
    is_standard_leaf,
    module_family,
)
from pytest_equivariance.lint.params import (
    function_params,
    index_params,
    method_params,
    module_params,
)
from pytest_equivariance.lint.recognize import (
    is_antialiased_downsampler,
    is_lowpass_kernel,
)
from pytest_equivariance.lint.shapes import (
    first_line,
    meta_weights,
    propagate,
    shape_of,
    to_meta,
)
from pytest_equivariance.lint.sites import ModelGraph, Site
from pytest_equivariance.lint.tracing import (
    LeafModuleAwareTracer,
    SiteTracer,
    may_split,
)

__all__ = ["LeafModuleAwareTracer", "ModelGraph", "Site", "SiteTracer", "build_graph"]

#: Maximum number of times a trace is retried after making the failing module a leaf.
MAX_TRACE_RETRIES = 24

try:  # a GraphModule that generates and compiles its Python code on first call, not when built:
    from torch.fx._lazy_graph_module import (
        _LazyGraphModule as _GraphModule,  # the linter never calls it
    )
except ImportError:  # pragma: no cover - torch < 2.2
    _GraphModule = fx.GraphModule


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
        return (to_meta(example),), {}
    if isinstance(example, dict):
        return (), to_meta(example)
    if isinstance(example, (tuple, list)) and example and all(isinstance(s, int) for s in example):
        return (torch.empty(tuple(example), device="meta"),), {}
    if isinstance(example, (tuple, list)):
        return tuple(to_meta(v) for v in example), {}
    return (example,), {}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


def _layer(module: nn.Module, input_shapes: list[tuple[int, ...] | None]) -> tuple[str, int | None, dict[str, Any], str]:
    """Return ``(family, ndim, params, op)`` of a layer's site: ``op`` as written, ``nn.Conv2d``."""
    family, ndim = module_family(module)
    if ndim is None and family == "interpolate" and input_shapes and input_shapes[0]:
        ndim = len(input_shapes[0]) - 2
    try:
        params = module_params(module, family, ndim)
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
        self.locator = SourceLocator(model)
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
                    return None, f"{type(exc).__name__}: {first_line(exc)}"
                self.failed_classes.add(type(culprit))
                continue
            finally:
                added = set(vars(module)) - before
            try:
                return _GraphModule(tracer.root, graph, type(module).__name__), None
            except Exception as exc:
                return None, f"{type(exc).__name__}: {first_line(exc)}"
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
        recorder = CallRecorder()

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
            with torch.no_grad(), meta_weights(module), recorder:
                module(*to_meta(args), **to_meta(kwargs))
        except Exception as exc:
            self.graph.notes.append(
                f"shapes are partial in {prefix or type(module).__name__}: running it on the meta device "
                f"stopped with {type(exc).__name__}: {first_line(exc)}"
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
            failure = propagate(gm, *call, notes=self.graph.notes)
            shaped = failure is None
            if failure is not None:
                where = f" in {prefix}" if prefix else ""
                given = ", ".join(str(tuple(a.shape)) for a in call[0] if isinstance(a, torch.Tensor))
                message = (f"Shape propagation failed{where} at {failure} (example input {given or 'none'}); "
                           f"pass an input shape the model accepts, with input_shape=... or --input-shape.")
                (self.graph.errors if prefix == "" else self.graph.notes).append(message)
        self._add_graph_sites(gm, prefix, shaped)

    def _is_leaf(self, module: nn.Module) -> bool:
        return is_standard_leaf(module) or is_antialiased_downsampler(module)

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
                for inner in wrapped_function_sites(node.target, site.qualname):
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
            if family not in UNLOCATED:
                site.pending_location = functools.partial(self._locate_layer, qualname, node)
            return site
        stack = node.meta.get("nn_module_stack") or {}
        owner = ""
        if stack:
            last = list(stack.values())[-1]
            owner = last[0] if isinstance(last, tuple) else str(last)
        qualname = _join(prefix, owner)
        if node.op == "call_function":
            entry = function_table().get(node.target) if hashable(node.target) else None
            family, ndim, op = entry if entry else ("other", None, _callable_name(node.target))
            kind = "method" if family == "getitem" or node.target in (operator.add, operator.iadd) else "function"
        else:
            family = METHOD_FAMILIES.get(str(node.target), "other")
            ndim, op, kind = None, f"Tensor.{node.target}", "method"
        in_shape = input_shapes[0] if input_shapes else None
        if ndim is None and family in ("interpolate",) and in_shape:
            ndim = len(in_shape) - 2
        try:
            if family == "getitem":
                params = index_params(node, len(in_shape) if in_shape else None)
            elif node.op == "call_function":
                params = function_params(family, ndim, node, self.graph)
            else:
                params = method_params(family, node)
        except Exception:
            params = {}
        if family == "conv" and self._is_blur_call(node, params):
            family = "blur"
            params = {"stride": params.get("stride")}
        elif node.op == "call_function" and hashable(node.target) and node.target in blur_functions():
            ndim = blur_functions()[node.target]
            stride = blur_call_stride(node.target, node.args, dict(node.kwargs))
            family, op, params = "blur", f"pytest_equivariance.{node.target.__name__}", {"stride": stride}
            if isinstance(stride, int):
                params["stride"] = (stride,) * ndim
        site = Site(qualname=qualname, op=op, kind=kind, params=params, input_shapes=input_shapes,
                    output_shape=output_shape, node=node, family=family, ndim=ndim, shaped=shaped,
                    from_input=node.meta.get("lint_from_input", True))
        if family not in UNLOCATED or may_split(node.op, node.target, node.args):
            site.pending_location = functools.partial(_recorded_location, node)
        return site

    def _locate_layer(self, qualname: str, node: fx.Node) -> tuple[str | None, int | None]:
        # Where the layer was constructed; else where it was called (a layer built elsewhere).
        file, line = self.locator.locate(qualname)
        return (file, line) if file is not None else _recorded_location(node)

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
            input_shapes = [shape_of(a) for a in recorded[0]]
            output_shape = shape_of(recorded[2])
        family, ndim, params, op = _layer(module, input_shapes)
        site = Site(qualname=qualname, op=op, kind="module", module=module, params=params,
                    input_shapes=input_shapes, output_shape=output_shape, family=family, ndim=ndim,
                    shaped=recorded is not None)
        if family not in UNLOCATED:
            site.pending_location = functools.partial(self.locator.locate, qualname)
        return site

    def _append(self, site: Site) -> None:
        site.index = len(self.graph.sites)
        self.graph.sites.append(site)


_SHAPE_QUERIES = frozenset({"size", "dim", "numel", "shape", "ndim", "device", "dtype", "is_cuda"})


def _recorded_location(node: fx.Node) -> tuple[str | None, int | None]:
    """Where the user wrote the call of ``node``, as the tracer recorded it."""
    return node.meta.get("lint_location", (None, None))


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
        graph.input_shapes = [s for s in (shape_of(a) for a in call[0]) if s is not None]
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
        graph.errors.append(f"Linting stopped early with {type(exc).__name__}: {first_line(exc)}; "
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
