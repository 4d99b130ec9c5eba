"""Checks of point-cloud and graph models: E(3) equivariance and invariance, and node or edge permutations.

``check_e3_equivariant(model, inputs, input_fields=..., output_fields=...)`` draws elements of E(3) (or
SO(3), O(3), SE(3)) from a seed, moves the inputs by each — fields declared ``"points"`` rotated and
translated, irreps (``"8x0e + 4x1o"``) by their Wigner D-matrices, the rest left alone
(:mod:`.irreps`) — and compares ``model(g·x)`` with ``g·model(x)``, element by element. The
permutation checks reorder nodes (renumbering ``edge_index``) or edges (:mod:`.elements`).

All elements run in as few passes as the model allows: the moved copies of the graph go through the
model as one disjoint union (:mod:`.graphs`), with an untransformed copy first; when the model cannot
take a union (a per-graph input, an output that does not split per copy) or mixes the copies (that
first copy's output differs from the model's output on the graph alone), the elements run one at a
time and the result's notes say why. Each element is one trial of the :class:`CheckResult`, labelled
``"E(3) #17"``, so results render, save to baselines and gate like every other check's.

``inputs`` may also be a loader of graphs (:func:`.graphs.is_graph_source`): every element
runs on every graph, and each element's statistics add up over the graphs (:class:`~.metrics.Sums`
in a :class:`~.stream.Outcome`, all-reduced under ``torchrun``), so a trial's figures are the set's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pytest_equivariance import guards
from pytest_equivariance.check import fingerprint, metrics, runner
from pytest_equivariance.check.arguments import expected_value
from pytest_equivariance.check.elements import E3_GROUPS, PERMUTED, EuclideanElements, Permutations
from pytest_equivariance.check.graphs import GraphInputs, GraphSource
from pytest_equivariance.check.irreps import POINTS, Field, declared_inputs, declared_outputs
from pytest_equivariance.check.result import CheckResult, Trial
from pytest_equivariance.check.run import RESULT_LISTENERS
from pytest_equivariance.check.spec import DEFAULT_TRIALS, check_trials, dtype_name
from pytest_equivariance.check.stream import Outcome, Slot, Tally
from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

#: Nodes per pass when ``batch_size`` (copies per pass) is not given: unions stay this size or smaller.
UNION_NODES = 1 << 16


def check_e3_equivariant(
    model: "nn.Module",
    inputs: Any,
    *,
    input_fields: Any = None,
    output_fields: Any = None,
    group: str = "E3",
    trials: int | None = None,
    seed: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    localize: bool | None = None,
    positions: Any = None,
    edge_index: Any = None,
    edge_attrs: Sequence[Any] = (),
    limit: int | None = None,
) -> CheckResult:
    """Return how far ``model(g·x)`` is from ``g·model(x)`` for ``trials`` elements ``g`` of ``group``.

    ``inputs`` is what the model is called with: a tensor, a tuple of positional arguments, a mapping
    (passed as one argument), or a PyG ``Data``/``Batch``; or a loader of them (a ``DataLoader``, a
    generator, a list of such inputs; docs/pointclouds.md), whose graphs are compared one by one and
    tallied together, the first ``limit`` of them when it is given. ``input_fields`` says how each
    input moves — a mapping ``{key: declaration}``, a tuple with one declaration per positional argument, or one
    declaration for a single tensor — where a declaration is ``"points"``, an irreps string such as
    ``"8x0e + 4x1o"``, or ``None`` / ``"invariant"``; by default a single tensor, and an input named
    ``pos``, are points. ``output_fields`` declares the outputs the same way (by tuple position or
    mapping key); undeclared output leaves are compared as invariant. ``group`` is ``"E3"`` (rotations,
    inversions and translations), ``"SE3"``, ``"O3"`` or ``"SO3"``. ``positions``, ``edge_index`` and
    ``edge_attrs`` name inputs the sizes cannot tell apart (:mod:`pytest_equivariance.check.graphs`).

    Tolerances default by dtype (``metrics.CLOUD_TOLERANCES``), absolute and relative:
    ``|a - b| <= atol + rtol·|b|``.
    """
    if output_fields is None:
        raise EquivarianceUsageError(
            "check_e3_equivariant needs output_fields= to know how the outputs move, e.g. output_fields='1x1o' "
            "or {'pos': 'points'}; use check_e3_invariant when every output is invariant."
        )
    return _e3("e3_equivariant", **locals())


def check_e3_invariant(
    model: "nn.Module",
    inputs: Any,
    *,
    input_fields: Any = None,
    group: str = "E3",
    trials: int | None = None,
    seed: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    localize: bool | None = None,
    positions: Any = None,
    edge_index: Any = None,
    edge_attrs: Sequence[Any] = (),
    limit: int | None = None,
) -> CheckResult:
    """Return how far ``model(g·x)`` is from ``model(x)`` for ``trials`` elements of ``group``.

    Arguments as :func:`check_e3_equivariant`, every output compared as invariant.
    """
    return _e3("e3_invariant", output_fields=None, **locals())


def check_permutation_equivariant(
    model: "nn.Module",
    inputs: Any,
    *,
    permute: str = "nodes",
    trials: int | None = None,
    seed: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    localize: bool | None = None,
    positions: Any = None,
    edge_index: Any = None,
    edge_attrs: Sequence[Any] = (),
    limit: int | None = None,
) -> CheckResult:
    """Return how far ``model(σ·x)`` is from ``σ·model(x)`` for ``trials`` random permutations ``σ``.

    ``permute="nodes"`` reorders every per-node tensor and renumbers ``edge_index``; ``"edges"``
    reorders the edges (``edge_index``'s columns and every per-edge tensor). Outputs whose first dim
    is the number of nodes (edges) are reordered the same way; others are compared as invariant. A
    PyG ``Batch`` is permuted within each of its graphs.
    """
    return _permutations("permutation_equivariant", **locals())


def check_permutation_invariant(
    model: "nn.Module",
    inputs: Any,
    *,
    permute: str = "nodes",
    trials: int | None = None,
    seed: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    localize: bool | None = None,
    positions: Any = None,
    edge_index: Any = None,
    edge_attrs: Sequence[Any] = (),
    limit: int | None = None,
) -> CheckResult:
    """Return how far ``model(σ·x)`` is from ``model(x)``; arguments as :func:`check_permutation_equivariant`."""
    return _permutations("permutation_invariant", **locals())


def _setting(kind: str, model: Any, inputs: Any, trials: Any, seed: Any, device: Any, batch_size: Any,
             positions: Any, edge_index: Any, edge_attrs: Any, limit: Any,
             **checked: Any) -> tuple[Any, GraphSource, int, int, Any]:
    """The checks' shared set-up: the model, the inputs read as graphs on the device, trials and seed.

    ``checked`` are further keywords whose values :func:`.arguments.expected_value` judges (atol, rtol, localize).
    """
    entry = f"check_{kind}"
    model = guards.shipped_module(model, entry)
    guards.require_materialised(model, entry)
    check_trials(trials)
    for name, value in {"trials": trials, "seed": seed, "batch_size": batch_size, "limit": limit, **checked}.items():
        expected = None if value is None else expected_value(name, value, "cloud")
        if expected is not None:
            raise EquivarianceUsageError(f"{entry} got {name}={shown(value)}; pass {expected}.")
    if not isinstance(edge_attrs, (str, int, tuple, list)):
        raise EquivarianceUsageError(f"{entry} got edge_attrs={shown(edge_attrs)}; pass a tuple of input keys.")
    if inputs is None:
        raise EquivarianceUsageError(
            f"{entry} needs the model's inputs; pass positions, a tuple of the model's arguments, a mapping, "
            f"a PyG Data, or a loader of them."
        )
    dev = runner.resolve_device(device, model)
    if isinstance(edge_attrs, (str, int)):
        edge_attrs = (edge_attrs,)
    graphs = GraphSource.open(inputs, entry, dev, limit=limit, positions=positions, edge_index=edge_index,
                              edge_attrs=tuple(edge_attrs))
    count = DEFAULT_TRIALS if trials is None else int(trials)
    return model, graphs, count, 0 if seed is None else seed, dev


def _e3(kind: str, *, model: Any, inputs: Any, input_fields: Any, output_fields: Any, group: str, trials: Any,
        seed: Any, atol: Any, rtol: Any, device: Any, batch_size: Any, localize: Any, positions: Any,
        edge_index: Any, edge_attrs: Any, limit: Any) -> CheckResult:
    entry = f"check_{kind}"
    if not isinstance(group, str) or group not in E3_GROUPS:
        raise EquivarianceUsageError(f"{entry} got group={shown(group)}; pass one of {', '.join(E3_GROUPS)}.")
    model, graphs, count, seed, dev = _setting(kind, model, inputs, trials, seed, device, batch_size, positions,
                                               edge_index, edge_attrs, limit, atol=atol, rtol=rtol,
                                               localize=localize)
    graph = graphs.first
    fields_in = declared_inputs(graph, input_fields, entry)
    with runner.prepared(model, dev, _dtype(graph, model)):
        caller, reference = _Caller.first(model, graph.original)
    fields_out = declared_outputs(output_fields, reference, entry)
    # Unit translations, scaled to each cloud: float32 rounding is judged at the scale the model sees, and
    # a graph gets the same element whichever process (or place in the loader) it comes in.
    unit = EuclideanElements.draw(group, count, seed, 1.0, fields_in, fields_out)
    elements = replace(unit, translations=unit.translations * _scale(graph, fields_in))

    def elements_for(graph: GraphInputs, reference: runner.Leaves, index: int) -> EuclideanElements:
        fields = _in_item(index, lambda: declared_inputs(graph, input_fields, entry))
        return replace(unit, input_fields=fields, translations=unit.translations * _scale(graph, fields))

    fields = {f"input{_path(graph, k)}": str(f) for k, f in fields_in.items()}
    fields.update({f"output{path}": str(f) for path, f in fields_out.items()})
    return _run(kind, caller, graphs, elements, elements_for, reference, atol=atol, rtol=rtol, seed=seed, dev=dev,
                batch_size=batch_size, localize=localize, group=group, fields=fields,
                drawn="the same rotations act on every graph, translations scaled to each")


def _permutations(kind: str, *, model: Any, inputs: Any, permute: str, trials: Any, seed: Any, atol: Any, rtol: Any,
                  device: Any, batch_size: Any, localize: Any, positions: Any, edge_index: Any,
                  edge_attrs: Any, limit: Any) -> CheckResult:
    entry = f"check_{kind}"
    if not isinstance(permute, str) or permute not in PERMUTED:
        raise EquivarianceUsageError(f"{entry} got permute={shown(permute)}; pass 'nodes' or 'edges'.")
    model, graphs, count, seed, dev = _setting(kind, model, inputs, trials, seed, device, batch_size, positions,
                                               edge_index, edge_attrs, limit, atol=atol, rtol=rtol,
                                               localize=localize)

    def elements_for(graph: GraphInputs, reference: runner.Leaves, index: int) -> Permutations:
        if permute == "edges" and graph.edge_index is None:
            where = f" of item {index + 1} of the loader" if graphs.streamed else ""
            raise EquivarianceUsageError(
                f"{entry}(permute='edges') found no edge_index among the inputs{where}; name it with edge_index=, "
                f"or permute='nodes'."
            )
        roles = {}
        if kind == "permutation_equivariant":
            for path, t in reference:
                first = t.shape[0] if t.dim() else None
                roles[path] = "node" if first == graph.nodes else ("edge" if first == graph.edges else "graph")
        # Each graph's own permutations (their sizes differ), drawn from the seed and, in a loader, the graph's
        # content: the same graph gets the same permutations whichever process or place it comes in.
        own = seed + int(fingerprint.fingerprint_tensors((str(k), t) for k, t in graph.tensors.items())[:8], 16) \
            if graphs.streamed else seed
        return Permutations.draw(permute, graph, count, own, roles)

    with runner.prepared(model, dev, _dtype(graphs.first, model)):
        caller, reference = _Caller.first(model, graphs.first.original)
    first = elements_for(graphs.first, reference, 0)
    fields = {f"output{path}": f"per {role}" for path, role in first.output_roles.items()}
    return _run(kind, caller, graphs, first, elements_for, reference, atol=atol, rtol=rtol, seed=seed, dev=dev, batch_size=batch_size, localize=localize,
                group=f"S_{permute}", fields=fields or None,
                drawn="each graph's permutations are drawn from the seed and its content; params give the first graph's")


def _run(kind: str, caller: "_Caller", graphs: GraphSource, first_elements: Any,
         elements_for: Callable[[GraphInputs, runner.Leaves, int], Any], reference: runner.Leaves, *, atol: Any,
         rtol: Any, seed: int, dev: Any, batch_size: Any, localize: Any, group: str, fields: dict[str, str] | None,
         drawn: str) -> CheckResult:
    """Run every element on every graph (in unions where it can), tally, and return the result.

    ``first_elements`` act on the first graph; ``elements_for(graph, its outputs, index)`` gives those of
    each later graph of a loader.

    The statistics of each element over the graphs are additive :class:`~.metrics.Sums`, combined as
    the image checks' streams combine theirs (:class:`~.stream.Outcome`), across ``torchrun`` ranks too.
    """
    model = caller.model
    dtype = _dtype(graphs.first, model)
    atol_default, rtol_default = metrics.default_tolerances(dtype, "cloud")
    atol = atol_default if atol is None else float(atol)
    rtol = rtol_default if rtol is None else float(rtol)
    count = len(first_elements.labels)
    notes: list[str] = [caller.note] if caller.note else []
    slots = [Slot() for _ in range(count)]
    prints = fingerprint.StreamFingerprint(whole=False)  # a loader's; one graph is hashed whole, below
    united, fallbacks, passes = True, [], 0
    worst_seen: tuple[float, GraphInputs, Any, int] = (-1.0, graphs.first, first_elements, 0)  # profiled below
    with runner.prepared(model, dev, dtype) as ready:
        notes.extend(ready.notes)
        for index, graph in enumerate(graphs):
            for t in graph.tensors.values() if graphs.streamed else ():
                prints.add(t, None)
            leaves = reference if index == 0 else caller(graph.original, f"item {index + 1} of the loader")
            if index and [p for p, _ in leaves] != [p for p, _ in reference]:
                raise EquivarianceUsageError(
                    f"The model returns {', '.join('output' + p for p, _ in leaves)} on item {index + 1} of the loader "
                    f"but {', '.join('output' + p for p, _ in reference)} on the first; return the same outputs for "
                    f"every graph."
                )
            elements = first_elements if index == 0 else elements_for(graph, leaves, index)
            graph_passes, why, excess = _compare_graph(caller, graph, elements, leaves, slots, atol, rtol, batch_size)
            passes += graph_passes
            trial = max(range(len(excess)), key=excess.__getitem__)
            if excess[trial] > worst_seen[0]:  # the graph and element the profile is measured under
                worst_seen = (excess[trial], graph, elements, trial)
            if why:
                united = False
                if why not in fallbacks:
                    fallbacks.append(why)
    outcome = Outcome(slots, Tally(images=float(graphs.count)), has_reference=True)
    outcome.reduce()
    graph_count = int(outcome.tally.images)
    notes.extend(f"ran element by element: {why}" for why in fallbacks)
    if united:
        notes.insert(0, f"ran the {count} elements as disjoint unions of copies of the graph "
                        f"({passes} pass{'es' if passes > 1 else ''}, an untransformed copy first to show the copies "
                        f"do not mix)")
    if graphs.streamed:
        notes.insert(0, f"streamed {graph_count} graph{'s' if graph_count > 1 else ''} from the loader; {drawn}")
    trials, worst = _trials(first_elements, slots, atol, rtol)
    for path, (largest, rel, label) in worst.items():
        declared = f" ({fields[f'output{path}']})" if fields and f"output{path}" in fields else ""
        notes.append(f"output{path}{declared}: worst max_abs {largest:.3g}, rel_l2 {rel:.3g}, under {label}")
    shape = next((tuple(t.shape) for k, t in graphs.first.tensors.items() if graphs.first.roles.get(k) == "node"), ())
    result = CheckResult(
        kind=kind, passed=all(t.passed for t in trials), trials=trials, atol=atol, rtol=rtol, seed=seed,
        device=str(dev), dtype=dtype_name(dtype), mode="exact", dims=(), input_shape=shape, notes=notes,
        group=group, fields=fields, weights_fingerprint=fingerprint.fingerprint_model(model),
        inputs_fingerprint=prints.digest() if graphs.streamed else fingerprint.fingerprint_tensors(
            (str(k), t) for k, t in graphs.first.tensors.items()),
    )
    want_profile = localize is True or (localize is None and not result.passed)
    if want_profile:
        _attach_profile(result, caller, *worst_seen[1:], dev)
    for listener in list(RESULT_LISTENERS):
        listener(result)
    return result


def _compare_graph(caller: "_Caller", graph: GraphInputs, elements: Any, reference: runner.Leaves, slots: list[Slot],
                   atol: float, rtol: float, batch_size: Any) -> tuple[int, str, list[float]]:
    """Run every element on one graph and add each one's statistics to its slot.

    Returns the passes run, why the elements ran one at a time ("" when they ran as unions), and each
    element's largest excess over the tolerance on this graph.
    """
    count = len(elements.labels)
    per_pass = batch_size or max(1, min(count, UNION_NODES // max(graph.nodes, 1)))
    united, why, passes = graph.can_unite, "", 0
    excess = [0.0] * count
    if not united:
        why = ("an input is per graph (neither per node nor per edge), so copies of the graph cannot run as one "
               "disjoint union")
    for start in range(0, count, per_pass):
        rows = slice(start, min(count, start + per_pass))
        copies = elements.on_inputs(graph, rows)
        n = rows.stop - rows.start
        outputs = None
        if united:
            outputs, reason = _united_outputs(caller, graph, copies, n, reference, atol, rtol, first=start == 0)
            passes += 1
            if outputs is None:
                united, why = False, reason
        if outputs is None:
            outputs = [caller(graph.copy(copies, i), elements.labels[rows.start + i]) for i in range(n)]
        expected = {path: elements.on_output(path, t, rows) for path, t in reference}
        for i, leaves in enumerate(outputs):
            slot, label = slots[rows.start + i], elements.labels[rows.start + i]
            for path, a in leaves:
                b = expected[path][i]
                if a.shape != b.shape:
                    raise EquivarianceUsageError(
                        f"The model's output{path} has shape {tuple(a.shape)} under {label} but {tuple(b.shape)} on "
                        f"the inputs; return outputs of the same shape for every element."
                    )
                sums = metrics.measure(a, b, atol=atol, rtol=rtol)[0]
                excess[rows.start + i] = max(excess[rows.start + i], sums.excess)
                if path in slot.leaves:
                    slot.leaves[path] += sums
                else:
                    slot.leaves[path] = sums
    return passes, why, excess


def _united_outputs(caller: "_Caller", graph: GraphInputs, copies: dict[Any, "Tensor"], n: int,
                    reference: runner.Leaves, atol: float, rtol: float, *, first: bool
                    ) -> tuple[list[runner.Leaves] | None, str]:
    """Run ``n`` copies (and, on the first pass, the untransformed graph before them) as one union.

    Returns each copy's output leaves, or None and why the union cannot stand for the copies.
    """
    import torch

    lead = 1 if first else 0
    if first:
        copies = {k: torch.cat([graph.tensors[k][None].to(v.dtype), v]) for k, v in copies.items()}
    total = n + lead
    try:
        leaves = caller(graph.unite(copies, total), f"a union of {total} copies of the graph")
    except EquivarianceUsageError as exc:  # said again, copy by copy, if the model rejects one graph too
        return None, str(exc).split(";")[0].replace("The model rejected", "the model rejected")
    if [p for p, _ in leaves] != [p for p, _ in reference]:
        return None, "the model's output on a union of copies has other leaves than on the graph alone"
    split = []
    for (path, t), (_, ref) in zip(leaves, reference):
        if ref.dim() == 0 or t.dim() != ref.dim() or t.shape[0] != total * ref.shape[0] or t.shape[1:] != ref.shape[1:]:
            return None, (f"output{path} has shape {tuple(t.shape)} on a union of {total} copies, not {total} "
                          f"times its shape {tuple(ref.shape)} on the graph alone")
        split.append(t.reshape(total, *ref.shape))
    if first:
        for (path, ref), pieces in zip(reference, split):
            sums, _ = metrics.measure(pieces[0], ref, atol=atol, rtol=rtol)
            if sums.comparison(atol=atol, rtol=rtol).excess > 1:
                return None, (f"the model mixes the copies of a union (output{path} of an untransformed copy differs "
                              f"from the graph alone by {sums.max_abs:.3g})")
    return [[(path, pieces[i + lead]) for (path, _), pieces in zip(reference, split)] for i in range(n)], ""


def _trials(elements: Any, slots: list[Slot], atol: float, rtol: float
            ) -> tuple[list[Trial], dict[str, tuple[float, float, str]]]:
    """Each element's trial from its statistics, and per output leaf its largest error and under which element."""
    trials, worst = [], {}
    for i, slot in enumerate(slots):
        label = elements.labels[i]
        comparisons = [sums.comparison(leaf=path, atol=atol, rtol=rtol) for path, sums in slot.leaves.items()]
        for c in comparisons:
            if c.max_abs >= worst.get(c.leaf, (-1.0, 0.0, ""))[0]:
                worst[c.leaf] = (c.max_abs, c.rel_l2, label)
        w = metrics.worst(comparisons)
        trials.append(Trial(transform=label, params=elements.params(i), max_abs=w.max_abs, mean_abs=w.mean_abs,
                            rel_l2=w.rel_l2, cosine=w.cosine, passed=all(c.passed for c in comparisons), leaf=w.leaf,
                            psnr=w.psnr))
    return trials, worst


def _attach_profile(result: CheckResult, caller: "_Caller", graph: GraphInputs, elements: Any, index: int,
                    dev: Any) -> None:
    """Fill ``result.profile`` under element ``index`` on ``graph``, the worst seen (the per-layer check of
    :mod:`.cloud_localize`)."""
    from pytest_equivariance.check.cloud_localize import localize_cloud

    if not result.trials:
        return
    try:
        result.profile = localize_cloud(caller.model, graph, elements, index, device=dev, grad=caller.grad)
        if not result.passed and result.profile.culprit is None:
            result.profile.notes.append(
                "no module breaks equivariance by its own irreps_out or by norms; check how the outputs are "
                "declared (output_fields)")
    except EquivarianceUsageError as exc:
        result.notes.append(f"per-layer localisation skipped: {exc}")
    except Exception as exc:  # the verdict stands even if the profile cannot be made
        result.notes.append(f"per-layer localisation failed: {type(exc).__name__}: {exc}")


@dataclass
class _Caller:
    """Calls the model as a check does: under ``torch.inference_mode()``, or with autograd on for a model
    that differentiates inside its forward (forces as the gradient of an energy), found on the first call."""

    model: Any
    grad: bool = False
    note: str = ""

    @classmethod
    def first(cls, model: Any, inputs: Any) -> "tuple[_Caller, runner.Leaves]":
        """Return the caller that runs ``model``, and its output leaves on ``inputs``."""
        caller = cls(model)
        try:
            return caller, caller(inputs, "the inputs")
        except EquivarianceUsageError as refused:
            caller = cls(model, grad=True, note="ran with autograd on: the model differentiates inside its forward")
            try:
                return caller, caller(inputs, "the inputs")
            except EquivarianceUsageError:
                raise refused from None

    def __call__(self, inputs: Any, what: str) -> runner.Leaves:
        return _forward(self.model, inputs, what, grad=self.grad)


def _forward(model: Any, inputs: Any, what: str, *, grad: bool = False) -> runner.Leaves:
    """The model's output leaves on ``inputs``, under ``torch.inference_mode()`` (autograd on with ``grad``);
    refusals said as usage errors."""
    import torch

    try:
        with torch.enable_grad() if grad else torch.inference_mode():
            output = model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)
    except EquivarianceUsageError:
        raise
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
        raise EquivarianceUsageError(
            f"The model rejected {what} ({type(exc).__name__}: {message}); pass inputs the model accepts, and "
            f"declare which are positions and features with input_fields=."
        ) from exc
    leaves = [(path, t.detach()) for path, t in runner.flatten_output(
        output.to_dict() if hasattr(output, "to_dict") and not isinstance(output, torch.Tensor) else output)]
    if not leaves:
        raise EquivarianceUsageError(
            f"The model returned {type(output).__name__}, which holds no tensor to compare; return a tensor, or a "
            f"tuple, list or dict of tensors."
        )
    for path, t in leaves:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise EquivarianceUsageError(
                f"The model's output{path} contains NaN or inf for {what}; fix the model or pass inputs it handles."
            )
    return leaves


def _scale(graph: GraphInputs, fields: dict[Any, Field]) -> float:
    """How far a cloud's translations reach: its points' spread (at least 1)."""
    points = [graph.tensors[k] for k, f in fields.items() if f.kind == POINTS]
    return max([1.0] + [float(p.double().std()) * math.sqrt(3) for p in points if p.numel() > 1])


def _in_item(index: int, read: Callable[[], Any]) -> Any:
    """``read()``, its refusal saying which item of the loader it is about."""
    try:
        return read()
    except EquivarianceUsageError as exc:
        message = str(exc)
        raise EquivarianceUsageError(f"In item {index + 1} of the loader, {message[0].lower()}{message[1:]}") from None


def _dtype(graph: GraphInputs, model: Any) -> "torch.dtype":
    floats = [t.dtype for t in graph.tensors.values() if t.is_floating_point()]
    return floats[0] if floats else (runner.model_dtype(model) or __import__("torch").get_default_dtype())


def _path(graph: GraphInputs, key: Any) -> str:
    return "" if graph.form == "tensor" else (f".{key}" if graph.form == "pyg" else f"[{key!r}]")
