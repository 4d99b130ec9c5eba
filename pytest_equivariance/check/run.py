"""The run loop every check shares: inputs, batched model runs, trials, the result and its extras.

Finite transforms go through :func:`run_check`; ``measure="lie"`` through :func:`run_lie_check`.
Both hand each finished result to :data:`RESULT_LISTENERS`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from pytest_equivariance import forms
from pytest_equivariance.check import detections, distributed, fingerprint, geometry, groups, metrics, progress, runner, transforms
from pytest_equivariance.check.canvas import Canvas
from pytest_equivariance.check.moves import LeafMoves
from pytest_equivariance.check.result import CheckResult, ShiftGrid, Trial
from pytest_equivariance.check.spec import (
    INTERP_MARGIN,
    CheckSpec,
    DrawContext,
    dtype_name,
    entry_name,
    resolve_dims,
    setting_up,
    usage_error,
)
from pytest_equivariance.check.stream import Pair, Plan, Slot, stream
from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

#: Called with every finished CheckResult (the pytest plugin listens here to collect results of
#: checks a test runs directly). Listeners must not raise.
RESULT_LISTENERS: list[Callable[[CheckResult], None]] = []


def run_check(
    spec: CheckSpec,
    build: Callable[[DrawContext], list[transforms.Transform]],
    *,
    plane: bool = False,
    announce: bool = True,
) -> CheckResult:
    """Run a check of finite transforms over its inputs — one tensor, or a stream of batches — and return its result.

    ``build`` draws the transforms once the reference outputs of the first batch are known; the
    same transforms act on every batch, unless ``spec.protocol`` plans the pairs itself.
    """
    setting = setting_up(spec)
    model, dev, dtype, seed, shape, source = (setting.model, setting.device, setting.dtype, setting.seed,
                                              setting.shape, setting.source)
    dims = resolve_dims(spec.dims, len(shape), plane=plane) if spec.kind != "custom" else ()
    notes: list[str] = list(setting.notes)
    eager = setting.eager  # hooks and the profile run here; the figures come from the model as shipped
    runs = detections.packed(runner.shipped(model), spec.output_geometry)  # sets of detections: one tensor
    canvas = Canvas(spec, shape, dims, dtype, dev, given=source is not None, notes=notes)
    model_shape = canvas.model_shape
    first = source.first() if source is not None else None
    x0 = canvas.frame(first.images) if first is not None else canvas.generated(seed)
    identity = _identity(spec, dims, canvas)
    _require_labels(spec, first)

    atol_default, rtol_default = metrics.default_tolerances(dtype, spec.mode)
    atol = atol_default if spec.atol is None else float(spec.atol)
    rtol = rtol_default if spec.rtol is None else float(spec.rtol)
    # Exact group elements (SO2's quarter turns, SO3's cube) by the dtype's tolerances, not the resampling's.
    exact = metrics.default_tolerances(dtype) if spec.atol is None and spec.rtol is None else (atol, rtol)

    with runner.prepared(model, dev, dtype) as ready:
        notes.extend(ready.notes)
        ref_input = identity.reference(x0) if identity is not None else x0
        if spec.batch_size:
            chunk = runner.ChunkSize(spec.batch_size)
        else:
            # Activations are measured with hooks, which only an eager model runs without recompiling.
            chunk = runner.ChunkSize(runner.first_guess(ref_input, dev), measure=eager is model, device=dev)
        # Equivariance needs the output grid before it can draw shifts, so the first batch's reference
        # goes through the model first; for invariance it shares the first chunk with the moved copies.
        ref_leaves: runner.Leaves | None = None
        strides: dict[str, tuple[int, ...]] = {}
        lattice = None
        located: dict[str, geometry.Geometry] = {}
        if spec.equivariant:
            ((_, ref_leaves),) = runner.run_batches(runs, [("reference", ref_input)], chunk)
            _accept(spec, ref_leaves, "the reference input")
            located = geometry.leaves(spec.output_geometry, ref_leaves, len(model_shape), len(dims))
            strides, lattice = _strides(spec, [(p, t) for p, t in ref_leaves if p not in located], model_shape, dims,
                                        located)
            if lattice is not None:
                step = str(lattice[0]) if len(set(lattice)) == 1 else str(lattice)
                notes.append(
                    f"output is {step} times coarser than the input along dims {dims}; "
                    f"shifts drawn on the stride lattice (multiples of {step})"
                )
            flat = [p or "output" for p, t in ref_leaves if p not in strides and p not in located]
            if flat and (strides or located):
                notes.append(f"leaves without spatial dims ({', '.join(flat)}) compared as invariant")
            for path, geo in located.items():
                notes.append(f"output{path} moved as {geo.describe()} (x, y in input pixels; docs/geometry.md)")

        ctx = DrawContext(model_shape, dims, lattice, seed, ref_leaves)
        if spec.protocol is not None:
            plan = spec.protocol.plan(canvas.source_shape, model_shape, dims, seed)
            notes.append(spec.protocol.note)
            if not plan.reference and spec.max_accuracy_drop is not None:
                raise usage_error(
                    f"protocol={spec.protocol.name!r} compares two moved copies and has no untransformed accuracy "
                    f"to drop from; use min_accuracy= (the accuracy under its shifts) instead of max_accuracy_drop=."
                )
        else:
            transform_list = build(ctx)
            if not transform_list:  # a check of nothing must not pass
                raise usage_error(
                    f"{entry_name(spec.kind)} has no transform to check with these arguments; pass at least "
                    f"one shift or angle (shifts=, angles=), or a max_shift and trials of at least 1."
                )
            plan = Plan.fixed(transform_list)
        first_pairs: list[Pair] = []
        plan = plan.remembering(first_pairs)
        out_margin = _margin(spec, eager if eager is not None else runs, ref_input, dims, strides, notes)

        frame = tuple(model_shape[d] for d in reversed(dims))  # where coordinates live: (W, H) or (W, H, D)
        moves = LeafMoves(strides, located, frame, out_margin)

        def compare(pair: Pair, leaves: runner.Leaves, against: runner.Leaves, x: "Tensor"):
            return _compare(spec, pair, leaves, against, moves, *(exact if pair.b.params.get("exact") else (atol, rtol)))

        fingerprints = fingerprint.StreamFingerprint(whole=source is None or source.is_tensor)

        def framed() -> Iterator[tuple[int, "Tensor", "Tensor | None"]]:
            if source is None:
                fingerprints.add(x0, None)
                yield 0, x0, None
                return
            for p, one_pass in enumerate(source.passes(plan.passes)):
                for batch in one_pass:
                    x = x0 if p == 0 and batch.index == 0 else canvas.frame(batch.images)
                    if p == 0:
                        fingerprints.add(x, batch.labels)
                    yield p, x, batch.labels

        total = source.size_hint() if source is not None else x0.shape[0]
        show = progress.wanted(spec.progress) and source is not None and not source.is_tensor
        with progress.Tracker(total and total * plan.passes, entry_name(spec.kind), enabled=show) as tracker:
            outcome = stream(
                runs, plan, framed(), chunk, compare,
                reference=lambda x: identity.reference(x) if identity is not None else x,
                accept=lambda leaves, what: _accept(spec, leaves, what),
                first_reference=ref_leaves, advance=tracker.advance,
            )
        outcome.reduce()
        trials = [_trial(spec, label, params, slot, *(exact if params.get("exact") else (atol, rtol)))
                  for (label, params), slot in zip(plan.slots, outcome.slots)]
        detections.require_compared(trials)
        notes.extend(groups.exactness_notes(trials, exact, spec.max_rel_l2))
        tally = outcome.tally
        result = CheckResult(
            kind=spec.kind,
            passed=all(t.passed for t in trials),
            trials=trials,
            atol=atol,
            rtol=rtol,
            seed=seed,
            device=str(dev),
            dtype=dtype_name(dtype),
            mode=spec.mode,
            dims=dims,
            input_shape=model_shape,
            min_consistency=spec.min_consistency,
            lattice=lattice,
            notes=notes,
            min_psnr=spec.min_psnr,
            all_shift_consistency=tally.all_agree / tally.compared if tally.compared else None,
            weights_fingerprint=fingerprint.fingerprint_model(eager if eager is not None else model),
            inputs_fingerprint=fingerprints.digest(),
            group=spec.group.name if spec.group is not None else None,
            fields=ctx.fields,
            max_rel_l2=spec.max_rel_l2,
            images=int(tally.images // plan.passes) if _sampled(source) else None,
            accuracy=tally.clean_correct / tally.labelled if tally.labelled and outcome.has_reference else None,
            worst_case_accuracy=tally.all_correct / tally.labelled if tally.labelled else None,
            min_accuracy=spec.min_accuracy,
            max_accuracy_drop=spec.max_accuracy_drop, max_channel_error=spec.max_channel_error,
            protocol=spec.protocol.name if spec.protocol is not None else None,
        )
        _classifier_verdict(spec, result)
        if spec.kind.startswith("rotation"):
            result.angle_errors = [
                (float(tr.params.get("angle", 90 * tr.params.get("k", 0))), tr.max_abs)
                for tr in trials
                if ("angle" in tr.params or "k" in tr.params) and not tr.params.get("flip")
            ] or None
        worst = _worst_transform(result, first_pairs)
        _attach_extras(spec, result, eager, model, x0, worst, dims, dev, chunk.size, out_margin, set(located))
    if spec.grid and spec.kind.startswith("shift") and located and len(dims) == 2:
        result.grid = _coordinate_grid(spec, dims, model_shape)
    for listener in list(RESULT_LISTENERS) if announce else ():
        listener(result)
    return result


#: Shifts per side of the displacement grid of coordinate outputs (as check.grid's window).
COORDINATE_GRID_WINDOW = 32


def _coordinate_grid(spec: CheckSpec, dims: tuple[int, ...], model_shape: tuple[int, ...]) -> ShiftGrid:
    """The displacement (px) of coordinate outputs for every shift of the window: the same check, rerun
    over all of them (check.grid measures image-shaped outputs only)."""
    canvas = (spec.max_shift,) * 2 if spec.mode == "crop" else None
    reach = [spec.max_shift + 1 if canvas else model_shape[d] for d in dims]
    offsets = [list(range(min(COORDINATE_GRID_WINDOW, n))) for n in reach]
    every = [(dy, dx) for dy in offsets[0] for dx in offsets[1]]
    quiet = replace(spec, grid=False, localize=False, progress=False)
    rerun = run_check(quiet, lambda ctx: [transforms.shift(d, ctx.dims, spec.mode, canvas) for d in every],
                      announce=False)
    errors = {tuple(t.params["shift"]): t.max_abs for t in rerun.trials}
    return ShiftGrid(offsets[0], offsets[1], [[errors[(dy, dx)] for dx in offsets[1]] for dy in offsets[0]],
                     figure="displacement")


def _require_labels(spec: CheckSpec, first: Any) -> None:
    """Refuse accuracy criteria when the inputs carry no labels."""
    for name in ("min_accuracy", "max_accuracy_drop"):
        if getattr(spec, name) is not None and (first is None or first.labels is None):
            raise usage_error(
                f"{name} judges accuracy, which needs labels; pass inputs that yield (images, labels) "
                f"batches, e.g. a DataLoader over labelled images, or drop {name}."
            )


def _classifier_verdict(spec: CheckSpec, result: CheckResult) -> None:
    """Let the classifier criteria decide the verdict when any is given (every one must hold)."""
    if any(v is not None for v in (spec.min_consistency, spec.min_accuracy, spec.max_accuracy_drop)):
        result.passed = result.classifier_failure() is None


def run_lie_check(spec: CheckSpec, generators: tuple[str, ...]) -> CheckResult:
    """Run a check by Lie derivatives (``measure="lie"``): one trial per generator of the family.

    A trial passes when ``max |L f(x)| <= atol + rtol * max |J_f(x)·G x|``: the derivative of the
    output along the generator is the natural scale, so the dtype's tolerances apply as they do to
    finite transforms. Invariance checks take the invariant form (outputs are not moved back). A
    stream's batches are differentiated one at a time and their figures combined exactly.
    """
    from pytest_equivariance.check import lie

    setting = setting_up(spec)
    model, dev, dtype, seed, shape, source = (setting.model, setting.device, setting.dtype, setting.seed,
                                              setting.shape, setting.source)
    # Forward-mode AD runs eagerly: a compiled model is differentiated through its original module.
    model = setting.eager if setting.eager is not None else model
    if len(shape) != 4:
        raise usage_error(
            f"measure='lie' acts on images of shape (N, C, H, W), got inputs of shape {tuple(shape)}; pass "
            f"images, or measure='error' for other inputs."
        )
    dims = resolve_dims(spec.dims, len(shape), plane=False)
    if dims != (-2, -1):
        raise usage_error(
            f"measure='lie' differentiates along the image plane (dims (-2, -1)), not dims {dims}; drop dims= "
            f"or use measure='error'."
        )
    notes: list[str] = [note for note in [forms.note(setting.model, figures=False)] if note] + [
        f"measured by Lie derivatives ({', '.join(generators)}; spectral, per pixel and per radian)"]
    spec.mode = "circular" if spec.mode in transforms.SHIFT_MODES else spec.mode
    canvas = Canvas(spec, shape, dims, dtype, dev, given=source is not None, notes=notes)
    atol_default, rtol_default = metrics.default_tolerances(dtype)
    atol = atol_default if spec.atol is None else float(spec.atol)
    rtol = rtol_default if spec.rtol is None else float(spec.rtol)
    output = "auto" if spec.equivariant else "invariant"
    fingerprints = fingerprint.StreamFingerprint(whole=source is None or source.is_tensor)
    # Per generator: max |L|, max |J G x|, sum |L|, sum L², sum (J G x)², elements.
    totals = {name: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0] for name in generators}
    images = 0
    for x in _framed_batches(canvas, source, seed):
        fingerprints.add(x, None)
        images += x.shape[0]
        derivatives, pushforwards = lie.lie_derivative_and_pushforward(
            model, x, list(generators), output=output, batch_size=spec.batch_size, device=dev)
        for name in generators:
            values = [v.double() for v in lie.leaves(derivatives[name])]
            scales = [v.double() for v in lie.leaves(pushforwards[name])]
            t = totals[name]
            t[0] = max([t[0]] + [float(v.abs().max()) for v in values if v.numel()])
            t[1] = max([t[1]] + [float(v.abs().max()) for v in scales if v.numel()])
            t[2] += sum(float(v.abs().sum()) for v in values)
            t[3] += sum(float(v.pow(2).sum()) for v in values)
            t[4] += sum(float(v.pow(2).sum()) for v in scales)
            t[5] += sum(v.numel() for v in values)
    trials = []
    for name in generators:
        (sums, maxima) = distributed.reduce(totals[name][2:], totals[name][:2])
        largest, scale = maxima
        abs_sum, norm2, scale2, count = sums
        trials.append(Trial(
            transform=f"Lie derivative {name}", params={"generator": name}, max_abs=largest,
            mean_abs=abs_sum / (count or 1),
            rel_l2=math.sqrt(norm2) / math.sqrt(scale2) if scale2 > 0 else 0.0, cosine=0.0,
            passed=largest <= atol + rtol * scale,
        ))
    result = CheckResult(
        kind=spec.kind, passed=all(t.passed for t in trials), trials=trials, atol=atol, rtol=rtol, seed=seed,
        device=str(dev), dtype=dtype_name(dtype), mode=spec.mode, dims=dims, input_shape=tuple(shape),
        notes=notes, measure="lie", weights_fingerprint=fingerprint.fingerprint_model(model),
        inputs_fingerprint=fingerprints.digest(),
        images=int(distributed.reduce([images], [])[0][0]) if _sampled(source) else None,
    )
    for listener in list(RESULT_LISTENERS):
        listener(result)
    return result


def _framed_batches(canvas: Canvas, source: Any, seed: int) -> Iterator["Tensor"]:
    """Yield each batch of ``source`` framed by ``canvas`` (generated images when there is no source)."""
    if source is None:
        yield canvas.generated(seed)
        return
    for batch in source:
        yield canvas.frame(batch.images)


def _accept(spec: CheckSpec, leaves: runner.Leaves, what: str) -> None:
    """Reject outputs a check cannot use: NaN/inf, or no class scores when a classifier figure decides."""
    _check_finite(leaves, what)
    wanted = [name for name in ("min_consistency", "min_accuracy", "max_accuracy_drop") if getattr(spec, name) is not None]
    if (wanted or spec.protocol is not None) and not any(metrics.is_classifier_output(t) for _, t in leaves):
        cause = wanted[0] if wanted else f"protocol={spec.protocol.name!r}"
        raise usage_error(
            f"{cause} needs classifier outputs of shape (batch, classes), which this model does not return; "
            f"return class scores, or drop {cause.split('=')[0]} to compare outputs with atol/rtol."
        )


def _identity(spec: CheckSpec, dims: tuple[int, ...], canvas: Canvas) -> transforms.Transform | None:
    """The transform that gives the untransformed input the model sees: the centre crop in crop modes."""
    if spec.protocol is not None and spec.protocol.layout != "own":
        return spec.protocol.identity(tuple(canvas.source_shape[d] for d in dims),
                                      tuple(canvas.model_shape[d] for d in dims), dims)
    if spec.mode in transforms.SHIFT_MODES:
        canvas = (spec.max_shift,) * len(dims) if spec.mode == "crop" else None
        return transforms.shift((0,) * len(dims), dims, spec.mode, canvas)
    return None


def _check_finite(leaves: runner.Leaves, what: str) -> None:
    import torch

    for path, t in leaves:
        if t.is_floating_point() or t.is_complex():
            if not bool(torch.isfinite(t).all()):
                raise usage_error(
                    f"The model's output{path} contains NaN or inf for {what}; fix the model or its "
                    f"initialisation, or pass inputs= in the range it expects."
                )


def _strides(
    spec: CheckSpec, leaves: runner.Leaves, model_shape: tuple[int, ...], dims: tuple[int, ...],
    located: Mapping[str, Any] | None = None,
) -> tuple[dict[str, tuple[int, ...]], tuple[int, ...] | None]:
    """Return each spatial output leaf's stride per dim and their common lattice.

    The lattice is None when shifts need not keep to one: for invariance, rotations, custom checks,
    and outputs on the input's own grid.
    """
    if not spec.equivariant or spec.kind == "custom":
        return {}, None
    ndim = len(model_shape)
    strides: dict[str, tuple[int, ...]] = {}
    for path, t in leaves:
        if t.dim() < ndim:  # extra axes before the spatial dims (scale or group channels) move with them
            continue
        if spec.kind.startswith(("rotation", "scale")):  # they act on any grid centred like the input's
            strides[path] = (1,) * len(dims)
            continue
        stride = []
        for d in dims:
            n_in, n_out = model_shape[d], t.shape[d]
            if n_out > n_in:
                raise usage_error(
                    f"The output{path} is larger than the input along dim {d} ({n_out} > {n_in}); "
                    f"check upsampling models with check_equivariant and a custom output transform."
                )
            if n_in % n_out == 0:
                stride.append(n_in // n_out)
            elif spec.mode in ("crop", "zero") and n_out > 0:
                stride.append(max(1, round(n_in / n_out)))
            else:
                raise usage_error(
                    f"The output{path} has {n_out} pixels along dim {d} for {n_in} input pixels, not an "
                    f"integer fraction, so a circular shift has no exact counterpart on it; pad the model "
                    f"to keep sizes, or pass mode='crop' or mode='zero'."
                )
        strides[path] = tuple(stride)
    if not strides and located:  # coordinates only: they move in input pixels, on no lattice
        return {}, None
    if not strides:
        raise usage_error(
            f"The model's output has no spatial dims to shift or rotate (shapes "
            f"{', '.join(str(tuple(t.shape)) for _, t in leaves)}); use the invariance check instead."
        )
    if spec.kind.startswith(("rotation", "scale")):
        return strides, None
    lattice = tuple(math.lcm(*(s[i] for s in strides.values())) for i in range(len(dims)))
    return strides, lattice if any(k > 1 for k in lattice) else None


def _margin(
    spec: CheckSpec,
    model: Any,
    ref_input: "Tensor",
    dims: tuple[int, ...],
    strides: dict[str, tuple[int, ...]],
    notes: list[str],
) -> int:
    """Return the border margin in output pixels: measured for crop/zero shifts, fixed for interp."""
    if spec.mode == "interp":
        # The disk's edge is itself resampled; outputs that see it differ by more than the interior.
        return INTERP_MARGIN if spec.margin is None else spec.margin
    if not spec.equivariant or spec.mode not in ("crop", "zero", "antialias"):
        return spec.margin or 0
    if spec.margin is not None:
        notes.append(f"compared outputs at least {spec.margin} pixels from the border (margin={spec.margin})")
        return spec.margin
    radii = runner.receptive_radius(model, ref_input, dims)
    if radii is None:
        notes.append("the receptive field could not be measured; no border margin applied (pass margin=)")
        return 0
    coarsest = [max((s[i] for s in strides.values()), default=1) for i in range(len(dims))]
    margin = max(math.ceil(r / k) + (1 if k > 1 else 0) for r, k in zip(radii, coarsest))
    notes.append(
        f"compared outputs at least {margin} pixels from the border (the measured receptive-field radius; "
        f"pass margin= to override)"
    )
    return margin


def _compare(
    spec: CheckSpec,
    pair: Pair,
    leaves: runner.Leaves,
    against: runner.Leaves,
    moves: "LeafMoves",
    atol: float,
    rtol: float,
) -> list[tuple[str, metrics.Sums, "Tensor | None"]]:
    """Return each output leaf's statistics for one pair, and per image whether its top-1 class survived."""
    t = pair.b
    if [p for p, _ in leaves] != [p for p, _ in against]:
        raise usage_error(
            f"The model's output structure changed under {t.label}; return the same structure for every input."
        )
    out = []
    for (path, a), (_, b) in zip(leaves, against):
        mask = None
        if pair.a is None and spec.kind == "custom":
            b = t.on_output(b)
        elif pair.a is None:  # equivariance: the leaf moves with the input as its kind says
            a, b, mask = moves.move(t, path, a, b)
        if a.shape != b.shape:
            raise usage_error(
                f"The model's output{path} has shape {tuple(a.shape)} under {t.label} but {tuple(b.shape)} "
                f"was expected; make the output transform match the model, or check invariance."
            )
        if pair.a is None and path in moves.matched:  # detection sets: matched, then measured
            out.append((path, moves.match(t, path, a, b, atol, rtol), None))
            continue
        sums, agreement = metrics.measure(a, b, atol=atol, rtol=rtol, mask=mask, classifier=not spec.equivariant,
                                          spatial=len(t.dims) if spec.channel_figures else 0)
        out.append((path, sums, agreement))
    return out


def _sampled(source: Any) -> bool:
    """Whether the figures are a sample of a data set (a stream of batches), which carries sampling
    noise; generated inputs and one given tensor are the same images every run."""
    return source is not None and not source.is_tensor


def _trial(
    spec: CheckSpec,
    label: str,
    params: dict[str, Any],
    slot: Slot,
    atol: float,
    rtol: float,
) -> Trial:
    """Return one trial's figures from its slot's statistics (all batches, all processes)."""
    comparisons = [sums.comparison(leaf=path, atol=atol, rtol=rtol, min_consistency=spec.min_consistency,
                                   max_channel_error=spec.max_channel_error) for path, sums in slot.leaves.items()]
    judged = comparisons
    if spec.min_consistency is not None:
        judged = [c for c in comparisons if c.consistency is not None] or comparisons
    w = metrics.worst(judged, by_consistency=spec.min_consistency is not None)
    if spec.max_channel_error is not None:  # the per-channel error decides: lead with the leaf furthest over
        w = max(judged, key=lambda c: -math.inf if c.channel_error is None else c.channel_error)
    passed = all(c.passed for c in judged)
    psnr = min((c.psnr for c in comparisons if c.psnr is not None), default=None)
    if spec.min_psnr is not None:  # the PSNR decides, as StyleGAN3's EQ-T and EQ-R report it
        passed = psnr is not None and psnr >= spec.min_psnr
    elif spec.max_rel_l2 is not None and not params.get("exact"):  # exact elements: atol/rtol
        passed = all(c.rel_l2 <= spec.max_rel_l2 for c in judged)
    accuracy = slot.correct / slot.labelled if slot.labelled else None
    sets = w.sets
    if spec.min_accuracy is not None:
        passed = accuracy is not None and accuracy >= spec.min_accuracy and (
            spec.min_consistency is None or passed)
    return Trial(
        transform=label,
        params={k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        max_abs=w.max_abs,
        mean_abs=w.mean_abs,
        rel_l2=w.rel_l2,
        cosine=w.cosine,
        passed=passed,
        leaf=w.leaf,
        consistency=w.consistency,
        prob_change=w.prob_change,
        psnr=psnr,
        accuracy=accuracy, channel_error=w.channel_error,
        matched=sets.matched if sets else None,
        appeared=sets.appeared if sets else None,
        vanished=sets.vanished if sets else None,
        mean_iou=sets.mean_iou if sets else None,
        min_iou=sets.min_iou if sets else None,
        score_change=sets.score_change if sets else None,
        mask_iou=sets.mean_mask_iou if sets else None,
        mask_change=sets.mask_change if sets else None,
    )


def _worst_transform(result: CheckResult, first_pairs: list[Pair]) -> transforms.Transform | None:
    """The transform of ``result.worst`` on the first batch, which the profile is measured under
    (None when that trial compares two moved inputs, as some protocols do)."""
    worst = result.worst
    if worst is None:
        return None
    slot = next(i for i, trial in enumerate(result.trials) if trial is worst)
    return next((pair.b for pair in first_pairs if pair.slot == slot and pair.a is None), None)


def _attach_extras(
    spec: CheckSpec,
    result: CheckResult,
    eager: Any,
    model: Any,
    x: "Tensor",
    worst: transforms.Transform | None,
    dims: tuple[int, ...],
    dev: "torch.device",
    batch_size: int,
    out_margin: int,
    coordinates: "set[str] | frozenset[str]" = frozenset(),
) -> None:
    """Fill result.profile (per-layer localisation, on the ``eager`` module; none without one) and
    result.grid (on ``eager`` too: it measures activations with hooks) when asked for."""
    # Imported here: both build on this module's transforms and runner, and most checks need neither.
    from pytest_equivariance.check.attribution import explain
    from pytest_equivariance.check.grid import shift_grid

    want_profile = spec.localize is True or (spec.localize is None and not result.passed)
    if want_profile and result.worst is not None and result.worst.leaf in coordinates:
        want_profile = False
        result.notes.append(
            "per-layer localisation skipped: the output is coordinates (points, boxes or detections), which no "
            "layer holds; localize the heatmap or feature map they are read from (localize(model.backbone, x, ...))"
        )
    if want_profile and worst is not None and eager is not None:
        try:
            result.profile = explain(
                eager, x, worst, equivariant=spec.equivariant, passed=result.passed, device=dev,
                batch_size=batch_size,
            )
        except EquivarianceUsageError as exc:
            result.notes.append(f"per-layer localisation skipped: {exc}")
        except Exception as exc:  # the check's verdict stands even if the profile cannot be made
            result.notes.append(f"per-layer localisation failed: {type(exc).__name__}: {exc}")
    if spec.grid and spec.kind.startswith("shift") and not coordinates:  # coordinates: run_check's own grid
        try:
            grid_model = eager if eager is not None else model
            result.grid = shift_grid(
                grid_model, x, dims=dims, mode=spec.mode, equivariant=spec.equivariant, device=dev,
                batch_size=batch_size, lattice=result.lattice,
                canvas=spec.max_shift if spec.mode == "crop" else None, margin=out_margin,
            )
        except EquivarianceUsageError as exc:
            result.notes.append(f"shift grid skipped: {exc}")
        except Exception as exc:
            result.notes.append(f"shift grid failed: {type(exc).__name__}: {exc}")
