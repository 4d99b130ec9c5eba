"""Exact per-layer attribution of a model's Lie derivative: which layers cost how much equivariance.

Write every value of the model's graph as ``y_k = f_k(parents)`` and let ``G`` act on each value
on its own grid (:func:`.lie.output_tangent`; ``G y = 0`` for values that are not images). The
true tangent of ``y_k`` along the generator is ``t_k = J_{f_k}·t_parents``; its departure from the
ideal one, ``e_k = t_k − G y_k``, obeys ``e_k = L_k + J_{f_k}·e_parents`` with the layer's *local*
Lie derivative ``L_k = J_{f_k}·(G parents) − G y_k``. The input's tangent is ``G x`` exactly, so
the output's Lie derivative telescopes into one term per layer::

    L f(x) = Σ_k  J_{k→out} · L_k

(Gruver, Finzi, Goldblum & Wilson, "The Lie Derivative for Measuring Learned Equivariance", ICLR
2023, §6, estimate ``‖J_{k→out} L_k‖²`` with random probes and backward hooks). Here each term is
computed exactly, in forward mode: one walk over the fx graph carries, beside each value, a stack
of tangents — one row per generator for ``J·(G parents)`` and one row per layer already met whose
``L_k`` is above rounding noise, pushed on by one vmapped ``torch.func.jvp`` per node. A layer's
row starts where the layer is, so the work is that of ``K/2`` tangent passes for ``K`` such
layers, all rows sharing one primal pass: each node runs once, inside its jvp, which also gives
its value (a node returning index tensors runs plainly first, as they cannot leave the jvp).

``share`` is a term's squared norm over the sum of all terms' squared norms (Gruver et al.'s
decomposition), ``contribution`` its norm per image in output units per pixel (per radian for
rotations). See ``docs/localize.md``.
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance.check.result import LayerError, Profile
from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

#: Tangent rows one walk carries at most; more layers above noise take further walks (bounds memory).
MAX_ROWS = 48
#: Images per walk when no batch_size is given.
DEFAULT_BATCH = 4
#: Linter op families that act on each value alone: exact under whole-pixel shifts.
POINTWISE = frozenset({"activation"})


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


# --------------------------------------------------------------------------------------------
# The public functions


def attribute(
    model: "nn.Module",
    inputs: "Tensor",
    generator: str | Sequence[str] = "translate_x",
    *,
    method: str = "spectral",
    output: str = "auto",
    circular_padding: bool = False,
    batch_size: int | None = None,
    device: "str | torch.device | None" = None,
) -> Profile:
    """Return the exact per-layer decomposition of ``model``'s Lie derivative at ``inputs``.

    Each :class:`LayerError` of the profile carries ``share`` (its term's squared norm over the sum
    over all layers, 0 for layers exact up to rounding) and ``contribution`` (its term's L2 norm per
    image, in output units per pixel of shift, or per radian); ``error`` and ``noise`` are the
    layer's *local* relative Lie derivative and its rounding floor, so the first layer above its
    floor can still be read. ``Profile.culprit`` is the layer with the largest share (None when
    every term is rounding noise), ``Profile.end_to_end`` the norm per image of the output's Lie
    derivative. A sequence of generators adds their squared terms (``("translate_x",
    "translate_y")`` for 2-D shifts).

    ``method``, ``output``, ``batch_size`` and ``device`` are as for :func:`.lie.lie_derivative`.
    ``circular_padding=True`` runs padded layers with circular padding (convolutions, ``F.pad``,
    the package's own blur layers), so that a zero or reflect border is not blamed: what shift
    checks do. Models without an fx graph are walked module by module (see ``docs/localize.md``).

    Example::

        >>> profile = attribute(model, images, ("translate_x", "translate_y"))
        >>> profile.culprit.qualname, round(profile.culprit.share, 2)
        ('features.pool2', 0.93)
    """
    return _attribute(model, inputs, generator, method=method, output=output, circular_padding=circular_padding,
                      batch_size=batch_size, device=device)


def _attribute(model: "nn.Module", inputs: "Tensor", generator: str | Sequence[str], *, method: str, output: str,
               circular_padding: bool, batch_size: int | None, device: Any,
               exact_families: frozenset[str] = frozenset()) -> Profile:
    """:func:`attribute`, with layers of ``exact_families`` (linter op families) never the culprit."""
    from pytest_equivariance.check import lie, runner

    names = lie._check_arguments(model, inputs, generator, method, output, batch_size)
    dev = runner.resolve_device(device, model)
    dtype = runner.model_dtype(model) or inputs.dtype
    x_all = inputs.detach().to(device=dev, dtype=dtype)
    acc = _Accumulator(names)
    step = batch_size or DEFAULT_BATCH
    with _walking(model, dev, dtype, circular_padding) as graph:
        for start in range(0, x_all.shape[0], step):
            _walk(model, graph, x_all[start : start + step], names, method, output, acc)
    return acc.profile(graph, x_all.shape[0], method, names, circular_padding, exact_families)


def lie_terms(
    model: "nn.Module",
    inputs: "Tensor",
    generator: str,
    *,
    method: str = "spectral",
    output: str = "auto",
    circular_padding: bool = False,
    device: "str | torch.device | None" = None,
) -> dict[str, "Tensor"]:
    """Return each layer's term ``J_{k→out}·L_k`` of the output's Lie derivative along ``generator``.

    Keys are the layer names of :func:`attribute`'s profile (a layer run twice appears twice, the
    second as ``name#2``); each value is the term, flattened over the output's float leaves,
    shaped ``(N, -1)``. Layers whose local Lie derivative is rounding noise have no term. The
    values add up to ``lie_derivative(model, inputs, generator, ...)`` flattened the same way.
    """
    import torch

    from pytest_equivariance.check import lie, runner

    names = lie._check_arguments(model, inputs, generator, method, output, None)
    if len(names) != 1:
        raise EquivarianceUsageError("lie_terms takes one generator; call it once per generator.")
    dev = runner.resolve_device(device, model)
    dtype = runner.model_dtype(model) or inputs.dtype
    x = inputs.detach().to(device=dev, dtype=dtype)
    acc = _Accumulator(names, keep_terms=True)
    with _walking(model, dev, dtype, circular_padding) as graph:
        _walk(model, graph, x, names, method, output, acc)
    labels = acc.labels(graph)
    return {labels[key]: torch.cat(parts) if len(parts) > 1 else parts[0] for key, parts in acc.terms.items()}


def explain(
    model: "nn.Module",
    inputs: "Tensor",
    transform: Any,
    *,
    equivariant: bool,
    passed: bool = False,
    device: "torch.device | str | None" = None,
    batch_size: int | None = None,
) -> Profile:
    """Return the profile a check's report shows for ``transform``: an attribution where one applies.

    Shifts of 2-D images are attributed along the generators of the shifted axes, with padded
    layers made circular; rotations by interpolated angles along ``rotate``. Quarter turns, flips,
    custom transforms and inputs that are not ``(N, C, H, W)`` have no generator: their profile is
    the finite-transform one of :func:`.localize.localize`, as it is when the model has an op
    without forward-mode AD (a note names it) or when no term rises above rounding although the
    check failed. A passing check's attribution names no culprit.
    """
    from pytest_equivariance.check.groups import FIELD_TYPES
    from pytest_equivariance.check.localize import localize

    if getattr(model, FIELD_TYPES, None) is not None and transform.family != "group":
        return Profile(layers=[], method=(
            "not localised: the layers of escnn and e2cnn modules exchange GeometricTensors, which a "
            "shift profile cannot follow; check the module's submodules one by one"), transform=transform.label)
    generators = _generators_for(transform, inputs)

    def finite(note: str | None = None) -> Profile:
        profile = localize(model, inputs, transform, equivariant=equivariant, device=device, batch_size=batch_size)
        if note:
            profile.notes.append(note)
        return profile

    if generators is None:
        return finite()
    # Pointwise layers commute with whole-pixel shifts exactly: they cannot cause such a failure.
    whole = transform.family == "shift" and all(float(a).is_integer() for a in transform.params["shift"])
    try:
        profile = _attribute(
            model, inputs, generators, method="spectral", output="auto" if equivariant else "invariant",
            circular_padding=transform.family == "shift", device=device,
            batch_size=min(batch_size or DEFAULT_BATCH, DEFAULT_BATCH),
            exact_families=POINTWISE if whole else frozenset(),
        )
    except NoForwardAD as exc:
        return finite(f"no exact attribution: {exc.op} has no forward-mode derivative ({exc.reason}); "
                      f"each layer is measured under the transform instead")
    profile.transform = transform.label
    if passed:
        profile.culprit, profile.finding_code, profile.finding_fix = None, None, None
    elif profile.culprit is None:
        return finite("no layer's Lie derivative rises above rounding although the check failed (an "
                      "effect of whole-pixel steps only); each layer is measured under the transform instead")
    return profile


def _generators_for(transform: Any, inputs: "Tensor") -> list[str] | None:
    """Return the generators whose Lie derivative stands for ``transform``, or None when none does."""
    if inputs.dim() != 4:
        return None
    dims = {d % 4 for d in transform.dims}
    if transform.family == "angle" and dims == {2, 3}:
        return ["rotate"]
    if transform.family != "shift" or not dims <= {2, 3}:
        return None
    moved = {d % 4 for d, amount in zip(transform.dims, transform.params["shift"]) if amount}
    names = [name for dim, name in ((3, "translate_x"), (2, "translate_y")) if dim in (moved or dims)]
    return names or None


# --------------------------------------------------------------------------------------------
# Preparing the model


@contextlib.contextmanager
def _walking(model: "nn.Module", dev: "torch.device", dtype: "torch.dtype", circular: bool) -> Iterator["_Graph"]:
    """Prepare the model for walks (eval mode on ``dev``, no in-place ops, padding) and yield its graph holder."""
    import torch

    from pytest_equivariance.check import runner
    from pytest_equivariance.check.padding import circular_padding

    with runner.prepared(model, dev, dtype), torch.no_grad(), _out_of_place(model), \
            circular_padding(model, circular):
        yield _Graph(model, circular)


class _Graph:
    """The linter's graph of the model, built on the first walk's inputs (None when it cannot be)."""

    def __init__(self, model: "nn.Module", circular: bool) -> None:
        self.model = model
        self.circular = circular
        self.graph: Any = None
        self._built = False

    def get(self, x: "Tensor") -> Any:
        if not self._built:
            from pytest_equivariance.check.localize import _build_graph

            self.graph = _build_graph(self.model, x[:1])
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


@dataclass
class _Accumulator:
    """Sums over image chunks: each term's squared norm, the end-to-end value, the local errors."""

    generators: list[str]
    keep_terms: bool = False
    order: dict[Any, int] = field(default_factory=dict)  # layer key -> position in execution order
    local: dict[Any, list[float]] = field(default_factory=dict)  # key -> [‖L‖², scale², peak ratio]
    sumsq: dict[tuple[Any, int], float] = field(default_factory=dict)  # (key, generator) -> Σ ‖term‖²
    total: dict[int, float] = field(default_factory=dict)  # generator -> Σ ‖Σ_k term_k‖²
    terms: dict[Any, list["Tensor"]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    hooked: bool = False
    dtype: Any = None

    def see(self, key: Any, l2: float, scale2: float, peak: float) -> int:
        """Record a layer's local Lie derivative; return its position in execution order."""
        position = self.order.setdefault(key, len(self.order))
        entry = self.local.setdefault(key, [0.0, 0.0, 1.0])
        entry[0] += l2
        entry[1] += scale2
        entry[2] = max(entry[2], peak)
        return position

    def labels(self, holder: _Graph) -> dict[Any, str]:
        """Return each layer's name; a layer met again is ``name#2``, ``name#3``."""
        seen: dict[str, int] = {}
        out = {}
        for key in self.order:
            name = _describe(key, holder.graph).name
            seen[name] = seen.get(name, 0) + 1
            out[key] = name if seen[name] == 1 else f"{name}#{seen[name]}"
        return out

    def profile(self, holder: _Graph, n_images: int, method: str, names: list[str], circular: bool,
                exact_families: frozenset[str] = frozenset()) -> Profile:
        from pytest_equivariance.check.localize import _matching_finding, _plain_params, noise_floor

        total_sq = sum(self.sumsq.values())
        layers, sites = [], []
        for key, position in self.order.items():
            site = _describe(key, holder.graph)
            l2, scale2, peak = self.local[key]
            term_sq = sum(self.sumsq.get((key, g), 0.0) for g in range(len(names)))
            layers.append(LayerError(
                qualname=site.name, op=site.op,
                error=math.sqrt(l2 / scale2) if scale2 > 0 else 0.0,
                noise=noise_floor(self.dtype, position=position, peak_ratio=peak),
                params=_plain_params(site.params), file=site.file, line=site.line,
                share=term_sq / total_sq if total_sq > 0 else 0.0,
                contribution=math.sqrt(term_sq / n_images),
                family=getattr(site.site, "family", None),
            ))
            sites.append(site)
        ranked = [layer for layer in layers if layer.share > 0 and layer.family not in exact_families]
        culprit = max(ranked, key=lambda layer: layer.share) if ranked else None
        generator = " + ".join(names)
        described = f"exact Lie-derivative attribution along {generator} ({method})"
        if circular:
            described += "; padded layers run with circular padding"
        if self.hooked:
            described += ("; walked module by module (the model does not trace whole): functional "
                          "calls between modules are not attributed")
        notes = list(self.notes)
        spared = [layer for layer in layers if layer.share > 0 and layer.family in exact_families]
        if spared and culprit is not None:
            notes.append(
                f"{len(spared)} pointwise layers hold {sum(layer.share for layer in spared):.0%} of the Lie "
                f"derivative, error between samples that whole-pixel shifts do not see; they are not "
                f"named as the culprit"
            )
        profile = Profile(
            layers=layers, culprit=culprit, method=described, transform=generator,
            end_to_end=math.sqrt(sum(self.total.values()) / n_images), notes=notes,
        )
        if culprit is not None:
            finding = _matching_finding(holder.graph, sites[layers.index(culprit)])
            if finding is not None:
                profile.finding_code, profile.finding_fix = finding
        return profile


def _describe(key: Any, graph: Any) -> Any:
    from pytest_equivariance.check.localize import _describe as describe

    return describe(key, graph)


def _walk(model: "nn.Module", holder: _Graph, x: "Tensor", names: list[str], method: str, output: str,
          acc: _Accumulator) -> None:
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

    def run(self, lo: int, hi: int, opened: list[tuple[Any, int]], acc: _Accumulator) -> None:
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

        from pytest_equivariance.check.localize import _peak_ratio, noise_floor

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
            peak = max(_peak_ratio(out_leaves[i]) for i in floats)
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

        from pytest_equivariance.check.lie import load_forward_ad

        load_forward_ad()
        try:
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
                raise NoForwardAD(_op_name(_describe(node, self.graph)), exc2) from exc
        primal = per_row[0][0]
        return primal, tuple(torch.stack([row[1][j] for row in per_row]) for j in range(len(primal)))

    def finish(self, node, env, rows, lo, hi, first, acc) -> None:
        """At the output: each slot's row is its term; add up squared norms (and the total)."""
        import torch
        import torch.fx

        import torch.utils._pytree as pytree

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
                  acc: _Accumulator) -> None:
    """Attribute over leaf modules with forward hooks, for models that do not trace whole.

    A first run computes every leaf call's local Lie derivative from its own input and output;
    then one forward-mode run per call above noise injects that call's ``L_k`` as the tangent of its
    output and reads the output's tangent: ``J_{k→out}·L_k``. Functional calls between modules carry
    tangents but are not attributed.
    """
    import torch
    import torch.autograd.forward_ad as fwad
    from torch.func import jvp

    from pytest_equivariance.check.lie import is_image_like, load_forward_ad, output_tangent
    from pytest_equivariance.check.localize import _peak_ratio, noise_floor
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
            position = acc.see(key, sum(l2), sum(s2), _peak_ratio(out))
            floor = noise_floor(x.dtype, position=position, peak_ratio=_peak_ratio(out))
            local[key] = [t if l2[g] > 0 and math.sqrt(l2[g]) > floor * math.sqrt(s2[g]) else None
                          for g, t in enumerate(ls)]
            return None

        return hook

    handles = [m.register_forward_hook(measure(name)) for name, m in leaves]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
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
