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

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance import guards
from pytest_equivariance.check.layer_sites import describe
from pytest_equivariance.check.result import LayerError, Profile
from pytest_equivariance.check.tangent_walk import (
    GraphHolder,
    NoForwardAD,
    walk_chunk,
    walking,
)
from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

#: Images per walk when no batch_size is given.
DEFAULT_BATCH = 4
#: Linter op families that act on each value alone: exact under whole-pixel shifts.
POINTWISE = frozenset({"activation"})


# --------------------------------------------------------------------------------------------
# The public functions


def attribute(
    model: "nn.Module",
    inputs: "Tensor | Iterable[Any]",
    generator: str | Sequence[str] = "translate_x",
    *,
    method: str = "spectral",
    output: str = "auto",
    circular_padding: bool = False,
    batch_size: int | None = None,
    device: "str | torch.device | None" = None,
) -> Profile:
    """Return the exact per-layer decomposition of ``model``'s Lie derivative at ``inputs``.

    ``inputs`` is a float tensor ``(N, C, H, W)`` or a stream of such batches (a ``DataLoader``, a
    list, :class:`~pytest_equivariance.Batches`), whose profile is that of their concatenation.
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
    from pytest_equivariance.check import batches, lie, runner

    model = guards.eager_module(model, "attribute")  # hooks run on a compiled model's original module
    stream = batches.as_batches(inputs, "attribute") if batches.is_stream(inputs) else None
    first = stream.first().images if stream is not None else inputs
    names = lie._check_arguments(model, first, generator, method, output, batch_size, entry="attribute")
    guards.require_flag(circular_padding, "circular_padding", "attribute")
    dev = runner.resolve_device(device, model)
    dtype = runner.model_dtype(model) or first.dtype
    acc = Accumulator(names)
    step = batch_size or DEFAULT_BATCH
    images = 0
    with walking(model, dev, dtype, circular_padding) as graph:
        # The terms' squared norms add over images, so a stream's profile is that of its concatenation.
        for x in (b.images for b in stream) if stream is not None else [inputs]:
            if x is not first:
                lie._check_arguments(model, x, generator, method, output, batch_size, entry="attribute")
            x_all = x.detach().to(device=dev, dtype=dtype)
            images += x_all.shape[0]
            for start in range(0, x_all.shape[0], step):
                walk_chunk(model, graph, x_all[start : start + step], names, method, output, acc)
    return acc.profile(graph, images, method, names, circular_padding, exact_families)


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

    model = guards.eager_module(model, "lie_terms")
    names = lie._check_arguments(model, inputs, generator, method, output, None, entry="lie_terms")
    guards.require_flag(circular_padding, "circular_padding", "lie_terms")
    if len(names) != 1:
        raise EquivarianceUsageError("lie_terms takes one generator; call it once per generator.")
    dev = runner.resolve_device(device, model)
    dtype = runner.model_dtype(model) or inputs.dtype
    x = inputs.detach().to(device=dev, dtype=dtype)
    acc = Accumulator(names, keep_terms=True)
    with walking(model, dev, dtype, circular_padding) as graph:
        walk_chunk(model, graph, x, names, method, output, acc)
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
    from pytest_equivariance.check.libraries import FIELD_TYPES
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


@dataclass
class Accumulator:
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

    def labels(self, holder: GraphHolder) -> dict[Any, str]:
        """Return each layer's name; a layer met again is ``name#2``, ``name#3``."""
        seen: dict[str, int] = {}
        out = {}
        for key in self.order:
            name = describe(key, holder.graph).name
            seen[name] = seen.get(name, 0) + 1
            out[key] = name if seen[name] == 1 else f"{name}#{seen[name]}"
        return out

    def profile(self, holder: GraphHolder, n_images: int, method: str, names: list[str], circular: bool,
                exact_families: frozenset[str] = frozenset()) -> Profile:
        from pytest_equivariance.check.layer_sites import (
            matching_finding,
            noise_floor,
            plain_params,
        )

        total_sq = sum(self.sumsq.values())
        layers, sites = [], []
        for key, position in self.order.items():
            site = describe(key, holder.graph)
            l2, scale2, peak = self.local[key]
            term_sq = sum(self.sumsq.get((key, g), 0.0) for g in range(len(names)))
            layers.append(LayerError(
                qualname=site.name, op=site.op,
                error=math.sqrt(l2 / scale2) if scale2 > 0 else 0.0,
                noise=noise_floor(self.dtype, position=position, peak_ratio=peak),
                params=plain_params(site.params), file=site.file, line=site.line,
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
            finding = matching_finding(holder.graph, sites[layers.index(culprit)])
            if finding is not None:
                profile.finding_code, profile.finding_fix = finding
        return profile
