"""The walks behind :func:`.attribution.attribute`: the model's graph run once per chunk of images, each
value carrying a stack of tangents (see :mod:`.attribution` for the decomposition they compute).

With a whole-model fx graph each node runs inside one vmapped ``torch.func.jvp``
(:class:`_FxWalk`); a model that does not trace whole is walked module by module with forward hooks
(:func:`_walk_modules`), and the functional calls between its modules are not attributed.
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pytest_equivariance.check.layer_sites import describe
from pytest_equivariance.check.lie import no_float_output
from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from pytest_equivariance.check.attribution import Accumulator

#: Tangent rows one walk carries at most; more layers above noise take further walks (bounds memory).
MAX_ROWS = 48


class NoForwardAD(EquivarianceUsageError):
    """A node of the model cannot be differentiated in forward mode, so it has no exact attribution."""

    def __init__(self, op: str, cause: BaseException) -> None:
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        self.op = op
        self.reason = text
        super().__init__(
            f"The model cannot be differentiated in forward mode at {op} ({text}); attribution needs "
            f"forward-mode AD through every op: give that op a jvp (torch.autograd.Function.jvp) or "
            f"replace it, or profile with localize(model, inputs, transform) instead."
        )


@contextlib.contextmanager
def walking(model: "nn.Module", dev: "torch.device", dtype: "torch.dtype", circular: bool) -> Iterator["GraphHolder"]:
    """Prepare the model for walks (eval mode on ``dev``, no in-place ops, padding) and yield its graph holder."""
    import torch

    from pytest_equivariance.check import runner
    from pytest_equivariance.check.padding import circular_padding

    with runner.prepared(model, dev, dtype), torch.no_grad(), _out_of_place(model), \
            circular_padding(model, circular):
        yield GraphHolder(model, circular)


class GraphHolder:
    """The linter's graph of the model, built on the first walk's inputs (None when it cannot be)."""

    def __init__(self, model: "nn.Module", circular: bool) -> None:
        self.model = model
        self.circular = circular
        self.graph: Any = None
        self._built = False

    def get(self, x: "Tensor") -> Any:
        if not self._built:
            from pytest_equivariance.check.layer_sites import model_graph

            self.graph = model_graph(self.model, x[:1])
            self._built = True
        return self.graph


@contextlib.contextmanager
def _out_of_place(model: "nn.Module") -> Iterator[None]:
    """Turn off ``inplace=True`` on the model's modules while the block runs.

    In-place ops would write into values the walk keeps for other consumers, and vmap cannot batch
    an in-place op on an unbatched primal.
    """
    changed = [m for m in model.modules() if getattr(m, "inplace", None) is True]
    for m in changed:
        m.inplace = False
    try:
        yield
    finally:
        for m in changed:
            m.inplace = True


#: In-place operators as fx records them, and their out-of-place twins.
_OUT_OF_PLACE = {
    operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
    operator.itruediv: operator.truediv, operator.imatmul: operator.matmul,
}


def _target(node: Any, model: "nn.Module", circular: bool, ndim: int) -> Callable[..., Any]:
    """Return the function an fx node calls, on the real model, out of place, with circular ``F.pad``."""
    import torch
    import torch.nn.functional as F

    if node.op == "call_module":
        return model.get_submodule(node.target)
    if node.op == "call_method":
        name = node.target
        if name.endswith("_") and not name.startswith("__") and hasattr(torch.Tensor, name[:-1]):
            name = name[:-1]
        return lambda self, *args, **kwargs: getattr(self, name)(*args, **kwargs)
    target = _OUT_OF_PLACE.get(node.target, node.target)
    if circular and target in (getattr(F.pad, "__wrapped__", F.pad), torch._C._nn.pad):
        from pytest_equivariance.check.padding import circular_pad_for

        return circular_pad_for(ndim)
    return target


# --------------------------------------------------------------------------------------------
# One walk over the graph


class _Structured(Exception):
    """A node's output holds non-float tensors, which cannot leave a jvp: run it plainly first."""


def _values(args: Any, env: dict[Any, Any]) -> Any:
    """Return fx arguments with every node replaced by its value."""
    import torch.fx

    return torch.fx.node.map_arg(args, lambda n: env[n])


def _out_of_place_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "inplace": False} if kwargs.get("inplace") is True else kwargs


class _Hole:
    """Where a live tensor goes in a node's arguments."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def walk_chunk(model: "nn.Module", holder: GraphHolder, x: "Tensor", names: list[str], method: str, output: str,
          acc: Accumulator) -> None:
    """Attribute the Lie derivative of one chunk of images into ``acc``."""
    graph = holder.get(x)
    acc.dtype = x.dtype
    if graph is None or graph.graph_module is None:
        acc.hooked = True
        _walk_modules(model, x, names, method, output, acc)
        return
    walk = _FxWalk(model, graph, x, names, method, output, holder.circular)
    opened: list[tuple[Any, int]] = []
    lo = 0
    while lo == 0 or lo < len(opened):  # the first walk opens the slots; more walks when they are many
        walk.run(lo, lo + MAX_ROWS, opened, acc)
        lo += MAX_ROWS
    for g, part in walk.partial.items():
        acc.total[g] = acc.total.get(g, 0.0) + float(part.double().square().sum())


class _FxWalk:
    """The tangent-carrying walk over an fx graph (see the module docstring)."""

    def __init__(self, model, graph, x, names, method, output, circular) -> None:
        import torch.fx

        fx_graph = graph.graph_module.graph
        self.graph = graph
        self.model, self.x, self.names, self.method, self.output = model, x, names, method, output
        self.nodes = list(fx_graph.nodes)
        self.n_gen = len(names)
        self.circular = circular
        last: dict[Any, int] = {}
        for i, node in enumerate(self.nodes):
            for arg in node.all_input_nodes:
                last[arg] = i
        self.last_use = last
        self.outputs: set[Any] = set()
        for node in self.nodes:
            if node.op == "output":
                torch.fx.node.map_arg(node.args, self.outputs.add)
        self.opened: list[tuple[Any, int]] = []
        self.partial: dict[int, "Tensor"] = {}  # generator -> Σ of its terms so far, (N, features)
        self.targets = {node: _target(node, model, circular, x.dim()) for node in self.nodes
                        if node.op.startswith("call_")}

    # -- generators on values ---------------------------------------------------------------

    def acts(self, node: Any, y: "Tensor") -> bool:
        """Whether the transformation acts on value ``y`` of ``node`` (else ``G y = 0``)."""
        from pytest_equivariance.check.lie import is_image_like

        if node in self.outputs and self.output != "auto":
            if self.output == "equivariant" and y.dim() != 4:
                raise EquivarianceUsageError(
                    f"output='equivariant' needs image outputs (N, C, H, W), got {tuple(y.shape)}; use "
                    f"output='auto' or 'invariant'."
                )
            return self.output == "equivariant"
        return is_image_like(y, self.x)

    def ideal(self, node: Any, y: "Tensor") -> list["Tensor"]:
        """Return ``G y`` per generator for value ``y`` of ``node`` (zeros where G does not act)."""
        import torch

        from pytest_equivariance.check.lie import output_tangent

        if not self.acts(node, y):
            return [torch.zeros_like(y) for _ in self.names]
        return [output_tangent(name, y, self.x.shape, self.method) for name in self.names]

    # -- the walk ---------------------------------------------------------------------------

    def run(self, lo: int, hi: int, opened: list[tuple[Any, int]], acc: Accumulator) -> None:
        """Walk once, carrying the slots ``opened[lo:hi]``; the first walk (lo == 0) opens them."""
        import torch

        first = lo == 0
        self.opened = opened
        slot_of = {key: i for i, key in enumerate(opened)}
        env: dict[Any, Any] = {}
        rows: dict[Any, list[Any]] = {}  # node -> per flattened leaf: (n_gen + S, *shape) or None
        placeholders = 0
        for index, node in enumerate(self.nodes):
            if node.op == "placeholder":
                value = self.x if placeholders == 0 else (node.args[0] if node.args else None)
                placeholders += 1
                env[node] = value
                if isinstance(value, torch.Tensor) and value is self.x:
                    rows[node] = [torch.stack(self.ideal(node, value))]
            elif node.op == "get_attr":
                env[node] = _fetch_attr(self.model, node.target)
            elif node.op == "output":
                self.finish(node, env, rows, lo, hi, first, acc)
            else:
                self.call(node, env, rows, lo, hi, opened, slot_of, first, acc)
            for arg in node.all_input_nodes:
                if self.last_use.get(arg) == index:
                    env.pop(arg, None)
                    rows.pop(arg, None)

    def call(self, node, env, rows, lo, hi, opened, slot_of, first, acc) -> None:
        import torch
        import torch.fx
        import torch.utils._pytree as pytree

        from pytest_equivariance.check.layer_sites import noise_floor, peak_ratio

        target = self.targets[node]
        if not any(n in rows for n in node.all_input_nodes):  # nothing moves into it: its value only
            env[node] = target(*_values(node.args, env), **_out_of_place_kwargs(_values(node.kwargs, env)))
            return
        # The live tensors become holes: fn(*live) recomputes the node from them alone.
        live: list["Tensor"] = []
        tangents: list["Tensor"] = []

        def holed(n: Any) -> Any:
            if n not in rows:
                return env[n]
            leaves, spec = pytree.tree_flatten(env[n])
            for i, r in enumerate(rows[n]):
                if r is not None:
                    live.append(leaves[i])
                    tangents.append(r)
                    leaves[i] = _Hole(len(live) - 1)
            return pytree.tree_unflatten(leaves, spec)

        h_args = torch.fx.node.map_arg(node.args, holed)
        h_kwargs = _out_of_place_kwargs(torch.fx.node.map_arg(node.kwargs, holed))

        def fill(value: Any, ts: tuple) -> Any:
            return torch.fx.node.map_aggregate(value, lambda a: ts[a.index] if isinstance(a, _Hole) else a)

        # The node runs once, inside its jvp: its float outputs are the primal, and anything else it
        # returns (sizes, None) is kept as it is. An output holding non-float tensors (indices) cannot
        # leave the transform, so such a node runs plainly first and only its float leaves are pushed.
        shape: dict[str, Any] = {}

        def fn(*ts: "Tensor") -> tuple["Tensor", ...]:
            leaves, spec = pytree.tree_flatten(target(*fill(h_args, ts), **fill(h_kwargs, ts)))
            floats = [i for i, leaf in enumerate(leaves) if _is_float(leaf)]
            if not floats or any(isinstance(leaf, torch.Tensor) and i not in floats for i, leaf in enumerate(leaves)):
                raise _Structured
            shape.update(spec=spec, floats=floats, leaves=leaves)
            return tuple(leaves[i] for i in floats)

        width = max(t.shape[0] for t in tangents)
        tangents = [_pad_rows(t, width) for t in tangents]
        try:
            primal, pushed = self._push(fn, live, tangents, node)
            floats = shape["floats"]
            out_leaves = list(shape["leaves"])
            for j, i in enumerate(floats):
                out_leaves[i] = primal[j]
            env[node] = pytree.tree_unflatten(out_leaves, shape["spec"])
        except _Structured:
            value = target(*_values(node.args, env), **_out_of_place_kwargs(_values(node.kwargs, env)))
            env[node] = value
            out_leaves = pytree.tree_flatten(value)[0]
            floats = [i for i, leaf in enumerate(out_leaves) if _is_float(leaf)]
            if not floats:
                return

            def float_leaves(*ts: "Tensor") -> tuple["Tensor", ...]:
                leaves = pytree.tree_flatten(target(*fill(h_args, ts), **fill(h_kwargs, ts)))[0]
                return tuple(leaves[i] for i in floats)

            _, pushed = self._push(float_leaves, live, tangents, node)
        # Local Lie derivative per generator: J·(G parents) − G y, summed over the float leaves.
        ideals = [self.ideal(node, out_leaves[i]) for i in floats]
        local = [[pushed[j][g] - ideals[j][g] for j in range(len(floats))] for g in range(self.n_gen)]
        new_rows: dict[int, "Tensor"] = {}
        if first:
            l2 = [sum(float(t.double().square().sum()) for t in local[g]) for g in range(self.n_gen)]
            # The scale rounding is relative to: both sides of the difference, and the tangents that
            # went in (a contraction such as global pooling makes both sides tiny, not its rounding).
            given = [sum(float(t[g].double().norm()) for t in tangents) for g in range(self.n_gen)]
            s2 = [sum(float((pushed[j][g].double().norm() + ideals[j][g].double().norm()) ** 2)
                      for j in range(len(floats))) + given[g] ** 2 for g in range(self.n_gen)]
            peak = max(peak_ratio(out_leaves[i]) for i in floats)
            position = acc.see(node, sum(l2), sum(s2), peak)
            floor = noise_floor(self.x.dtype, position=position, peak_ratio=peak)
            for g in range(self.n_gen):
                if l2[g] > 0 and math.sqrt(l2[g]) > floor * math.sqrt(s2[g]):
                    opened.append((node, g))
                    slot_of[(node, g)] = len(opened) - 1
        opened_here = [g for g in range(self.n_gen) if (node, g) in slot_of]
        carried = width - self.n_gen
        mine = [slot_of[(node, g)] - lo for g in opened_here if lo <= slot_of[(node, g)] < hi]
        size = max([carried] + [m + 1 for m in mine])
        for j, i in enumerate(floats):
            slots = _pad_rows(pushed[j][self.n_gen:], size)
            for g in opened_here:
                s = slot_of[(node, g)]
                if lo <= s < hi:
                    slots[s - lo] = local[g][j]
            new_rows[i] = torch.cat([torch.stack(ideals[j]), slots])
        rows[node] = [new_rows.get(i) for i in range(len(out_leaves))]

    def _push(self, fn: Callable[..., tuple["Tensor", ...]], live: list["Tensor"], tangents: list["Tensor"],
              node: Any) -> tuple[tuple["Tensor", ...], tuple["Tensor", ...]]:
        """Return ``fn(*live)`` and, stacked, its jvp along each row of ``tangents``: one vmapped pass,
        or one pass per row when vmap cannot batch an op of the node."""
        import torch
        from torch.func import jvp, vmap

        from pytest_equivariance.check.lie import load_forward_ad, quiet_vmap_fallback

        load_forward_ad()
        try:
            with quiet_vmap_fallback():
                primal, pushed = vmap(lambda *ts: jvp(fn, tuple(live), ts))(*tangents)
            return tuple(p[0] for p in primal), pushed  # the primal does not vary over rows
        except _Structured:
            raise
        except Exception as exc:  # noqa: BLE001 - one row at a time when vmap cannot batch the op
            try:
                per_row = [jvp(fn, tuple(live), tuple(t[r] for t in tangents)) for r in range(tangents[0].shape[0])]
            except _Structured:
                raise
            except Exception as exc2:  # noqa: BLE001
                raise NoForwardAD(_op_name(describe(node, self.graph)), exc2) from exc
        primal = per_row[0][0]
        return primal, tuple(torch.stack([row[1][j] for row in per_row]) for j in range(len(primal)))

    def finish(self, node, env, rows, lo, hi, first, acc) -> None:
        """At the output: each slot's row is its term; add up squared norms (and the total)."""
        import torch
        import torch.fx
        import torch.utils._pytree as pytree

        returned = torch.fx.node.map_arg(node.args[0], lambda arg: env[arg])
        if not any(_is_float(leaf) for leaf in pytree.tree_flatten(returned)[0]):
            raise no_float_output("attribute", returned)
        n = self.x.shape[0]
        per_leaf: list["Tensor"] = []

        def collect(arg: Any) -> Any:
            leaves = pytree.tree_flatten(env[arg])[0]
            for r in rows.get(arg, [None] * len(leaves)):
                if r is not None:
                    per_leaf.append(r[self.n_gen:].reshape(r.shape[0] - self.n_gen, n, r[0].numel() // n))
            return arg

        torch.fx.node.map_arg(node.args, collect)
        if not per_leaf:
            return
        width = max(t.shape[0] for t in per_leaf)
        stacked = torch.cat([_pad_rows(t, width) for t in per_leaf], dim=2)  # (slots, N, features)
        for s in range(stacked.shape[0]):
            key, g = self.opened[lo + s]
            term = stacked[s]
            acc.sumsq[(key, g)] = acc.sumsq.get((key, g), 0.0) + float(term.double().square().sum())
            if acc.keep_terms:
                acc.terms.setdefault(key, []).append(term.clone())
            self.partial[g] = term.clone() if g not in self.partial else self.partial[g] + term


def _pad_rows(t: "Tensor", width: int) -> "Tensor":
    """Return ``t`` with zero rows appended along dim 0 up to ``width`` rows (a copy when padded)."""
    import torch

    if t.shape[0] >= width:
        return t
    return torch.cat([t, t.new_zeros((width - t.shape[0], *t.shape[1:]))])


def _is_float(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _op_name(site: Any) -> str:
    """Return ``layer1.0.conv1 (nn.Conv2d)``: the layer as the profile names it, and its op."""
    return f"{site.name} ({site.op})"


def _fetch_attr(model: "nn.Module", target: str) -> Any:
    value: Any = model
    for part in target.split("."):
        value = getattr(value, part)
    return value


# --------------------------------------------------------------------------------------------
# Without an fx graph: module by module


def _walk_modules(model: "nn.Module", x: "Tensor", names: list[str], method: str, output: str,
                  acc: Accumulator) -> None:
    """Attribute over leaf modules with forward hooks, for models that do not trace whole.

    A first run computes every leaf call's local Lie derivative from its own input and output;
    then one forward-mode run per call above noise injects that call's ``L_k`` as the tangent of its
    output and reads the output's tangent: ``J_{k→out}·L_k``. Functional calls between modules carry
    tangents but are not attributed.
    """
    import torch
    import torch.autograd.forward_ad as fwad
    from torch.func import jvp

    from pytest_equivariance.check.layer_sites import noise_floor, peak_ratio
    from pytest_equivariance.check.lie import (
        is_image_like,
        load_forward_ad,
        output_tangent,
    )
    from pytest_equivariance.check.detections import refuse_sets
    from pytest_equivariance.check.runner import flatten_output

    load_forward_ad()

    leaves = [(name, m) for name, m in model.named_modules() if name and not any(True for _ in m.children())]
    calls: dict[int, int] = {}

    def ideal(y: "Tensor", g: int) -> "Tensor":
        if not is_image_like(y, x):
            return torch.zeros_like(y)
        return output_tangent(names[g], y, x.shape, method)

    local: dict[tuple[str, int], list["Tensor"]] = {}

    def measure(name: str):
        def hook(module, args, out):
            k = calls.get(id(module), 0)
            calls[id(module)] = k + 1
            if not (_is_float(out) and len(args) == 1 and _is_float(args[0])):
                return None
            (inp,) = args
            key = (name, k)
            try:
                # forward, not the module: calling it would run this hook again.
                pushed = [jvp(module.forward, (inp,), (ideal(inp, g),))[1] for g in range(len(names))]
            except Exception as exc:  # noqa: BLE001
                raise NoForwardAD(f"{name} ({module.__class__.__name__})", exc) from exc
            ls = [p - ideal(out, g) for g, p in enumerate(pushed)]
            l2 = [float(t.double().square().sum()) for t in ls]
            s2 = [float((p.double().norm() + ideal(out, g).double().norm()) ** 2 + ideal(inp, g).double().norm() ** 2)
                  for g, p in enumerate(pushed)]
            position = acc.see(key, sum(l2), sum(s2), peak_ratio(out))
            floor = noise_floor(x.dtype, position=position, peak_ratio=peak_ratio(out))
            local[key] = [t if l2[g] > 0 and math.sqrt(l2[g]) > floor * math.sqrt(s2[g]) else None
                          for g, t in enumerate(ls)]
            return None

        return hook

    handles = [m.register_forward_hook(measure(name)) for name, m in leaves]
    try:
        returned = model(x)
    finally:
        for h in handles:
            h.remove()
    refuse_sets("attribute", returned)
    if not any(_is_float(leaf) for _, leaf in flatten_output(returned)):
        raise no_float_output("attribute", returned)
    n = x.shape[0]
    totals: dict[int, "Tensor"] = {}
    for (name, k), per_gen in local.items():
        for g, lk in enumerate(per_gen):
            if lk is None:
                continue
            calls.clear()

            def inject(name_: str):
                def hook(module, args, out):
                    c = calls.get(id(module), 0)
                    calls[id(module)] = c + 1
                    if name_ == name and c == k:
                        return fwad.make_dual(out, lk)
                    return None

                return hook

            handles = [m.register_forward_hook(inject(nm)) for nm, m in leaves]
            try:
                with fwad.dual_level():
                    out = model(x)
                    parts = []
                    for _, leaf in flatten_output(out):
                        if _is_float(leaf):
                            t = fwad.unpack_dual(leaf).tangent
                            parts.append(torch.zeros(n, leaf.numel() // n, dtype=leaf.dtype, device=leaf.device)
                                         if t is None else t.reshape(n, -1))
            finally:
                for h in handles:
                    h.remove()
            term = torch.cat(parts, dim=1)
            key = (name, k)
            acc.sumsq[(key, g)] = acc.sumsq.get((key, g), 0.0) + float(term.double().square().sum())
            if acc.keep_terms:
                acc.terms.setdefault(key, []).append(term)
            totals[g] = term if g not in totals else totals[g] + term
    for g, part in totals.items():
        acc.total[g] = acc.total.get(g, 0.0) + float(part.double().square().sum())
