"""Per-layer equivariance error of a point-cloud or graph model: which module breaks it first.

The model runs on the inputs and on one moved copy (the worst element of a check), with forward hooks
on its leaf modules (and on every module that declares ``irreps_out``, as e3nn's do). Each module's
first output tensor is judged in execution order:

- under a permutation, exactly: a tensor whose first dim is the number of nodes (edges) must come out
  reordered like them, any other must not change;
- under a rotation or inversion, exactly where the module declares its ``irreps_out`` (its output is
  moved by their D-matrices); otherwise by a necessary condition: every orthogonal representation
  keeps norms, so each row's norm over the last dim must not change. The element's translation is
  left out (a coordinate's norm changes under it, while the model may still be equivariant).

Errors are relative L2 (``‖Δ‖₂ / ‖reference‖₂``); the first module above its rounding-noise floor
(:func:`.layer_sites.noise_floor`) is the culprit.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pytest_equivariance import guards
from pytest_equivariance.check import runner
from pytest_equivariance.check.elements import EuclideanElements, Permutations
from pytest_equivariance.check.graphs import GraphInputs
from pytest_equivariance.check.irreps import Irreps
from pytest_equivariance.check.layer_sites import noise_floor
from pytest_equivariance.check.result import LayerError, Profile
from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    from torch import Tensor, nn


def localize_cloud(model: "nn.Module", graph: GraphInputs, elements: "EuclideanElements | Permutations",
                   index: int, *, device: Any = None, grad: bool = False) -> Profile:
    """Return the per-layer profile of ``model`` under element ``index`` of ``elements`` on ``graph``.

    ``grad`` runs the model with autograd on (a model that differentiates inside its forward).
    """
    import torch

    model = guards.eager_module(model, "localize")
    if isinstance(elements, EuclideanElements):
        element = elements.linear_part(index)
        method = ("exact for modules that declare irreps_out; per-row norms over the last dim elsewhere "
                  "(kept by every orthogonal representation); translation left out")
    else:
        element = Permutations(elements.permuted, elements.orders[index:index + 1], {}, [elements.labels[index]])
        method = "exact: per-node (per-edge) outputs reordered with the element, others unchanged"
    moved = graph.copy(element.on_inputs(graph, slice(0, 1)), 0)
    watched = [(name, m) for name, m in model.named_modules()
               if name and (not any(True for _ in m.children()) or hasattr(m, "irreps_out"))]
    if not watched:
        raise EquivarianceUsageError("the model has no submodules to profile; split it into modules to localise.")
    dev = runner.resolve_device(device, model)
    with runner.prepared(model, dev, _float_dtype(graph)), torch.enable_grad() if grad else torch.inference_mode():
        first = _record(model, watched, graph.original)
        second = _record(model, watched, moved)
    layers = []
    for position, (key, t0) in enumerate(first.items()):
        t1 = second.get(key)
        if t1 is None:
            continue
        error = _error(element, graph, dict(watched)[key[0]], t0, t1)
        if error is None:
            continue
        t64 = t0.double()
        rms = float(t64.pow(2).mean().sqrt()) if t64.numel() else 0.0
        peak = float(t64.abs().max()) / rms if rms > 0 else 1.0
        noise = noise_floor(t0.dtype, position=position, peak_ratio=peak)
        name = key[0] if key[1] == 0 else f"{key[0]} (call {key[1] + 1})"
        layers.append(LayerError(qualname=name, op=type(dict(watched)[key[0]]).__name__, error=error, noise=noise))
    culprit = next((layer for layer in layers if layer.error > layer.noise), None)
    return Profile(layers=layers, culprit=culprit, method=method, transform=elements.labels[index])


def _record(model: "nn.Module", watched: list[tuple[str, "nn.Module"]], inputs: Any) -> dict[tuple[str, int], "Tensor"]:
    """Run the model once; return each watched call's first floating output, keyed by (name, call)."""
    seen: dict[tuple[str, int], "Tensor"] = {}
    calls: dict[str, int] = {}

    def hook(name: str):
        def record(module: Any, args: Any, output: Any) -> None:
            floats = [t for _, t in runner.flatten_output(output) if t.is_floating_point()]
            number = calls.get(name, 0)
            calls[name] = number + 1
            if floats:
                seen[(name, number)] = floats[0].detach().clone()
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in watched]
    try:
        model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen  # in execution order (dicts keep insertion order)


def _error(element: Any, graph: GraphInputs, module: Any, t0: "Tensor", t1: "Tensor") -> float | None:
    """The relative error of one module's output pair under ``element`` (None: shapes cannot be compared)."""
    if t0.shape != t1.shape:
        return None
    a, b = t1.double(), t0.double()
    if isinstance(element, Permutations):
        size = graph.nodes if element.permuted == "nodes" else graph.edges
        if b.dim() and b.shape[0] == size:
            b = b[element.orders[0].to(b.device)]
    else:
        R = element.rotations.to(b.device)  # noqa: N806
        declared = getattr(module, "irreps_out", None)
        irreps = None
        if declared is not None:
            try:
                irreps = Irreps.parse(declared)
            except EquivarianceUsageError:
                irreps = None
        if irreps is not None and b.dim() and b.shape[-1] == irreps.dim:
            b = irreps.apply(R, b)[0]
        elif b.dim():
            a, b = a.norm(dim=-1), b.norm(dim=-1)
        else:
            a, b = a.abs(), b.abs()
    reference = float(b.pow(2).sum().sqrt())
    difference = float((a - b).pow(2).sum().sqrt())
    return difference / reference if reference > 0 else (0.0 if difference == 0 else math.inf)


def _float_dtype(graph: GraphInputs) -> Any:
    import torch

    return next((t.dtype for t in graph.tensors.values() if t.is_floating_point()), torch.get_default_dtype())
