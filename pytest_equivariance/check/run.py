"""The run loop every check shares: inputs, batched model runs, trials, the result and its extras.

Finite transforms go through :func:`run_check`; ``measure="lie"`` through :func:`run_lie_check`.
Both hand each finished result to :data:`RESULT_LISTENERS`.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any, Callable

from pytest_equivariance import guards
from pytest_equivariance.check import fingerprint, metrics, runner, transforms
from pytest_equivariance.check.result import CheckResult, Trial
from pytest_equivariance.check.spec import (
    DEFAULT_MAX_SHIFT,
    INTERP_EXPONENT,
    INTERP_MARGIN,
    CheckSpec,
    DrawContext,
    dtype_name,
    entry_name,
    resolve_dims,
    setting_up,
    usage_error,
)
from pytest_equivariance.errors import EquivarianceUsageError, InputShapeError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

#: Called with every finished CheckResult (the pytest plugin listens here to collect results of
#: checks a test runs directly). Listeners must not raise.
RESULT_LISTENERS: list[Callable[[CheckResult], None]] = []


_REFERENCE = "reference"  # job key of the untransformed input


def run_check(spec: CheckSpec, build: Callable[[DrawContext], list[transforms.Transform]], *, plane: bool = False) -> CheckResult:
    model, dev, dtype, seed, shape = setting_up(spec)
    dims = resolve_dims(spec.dims, len(shape), plane=plane) if spec.kind != "custom" else ()
    notes: list[str] = []

    x, model_shape = source_tensor(spec, shape, dims, dtype, dev, seed, notes)
    identity = _identity(spec, dims)

    atol_default, rtol_default = metrics.default_tolerances(dtype, spec.mode)
    atol = atol_default if spec.atol is None else float(spec.atol)
    rtol = rtol_default if spec.rtol is None else float(spec.rtol)

    with runner.prepared(model, dev, dtype) as ready:
        notes.extend(ready.notes)
        ref_input = identity.reference(x) if identity is not None else x
        if spec.batch_size:
            chunk = runner.ChunkSize(spec.batch_size)
        else:
            chunk = runner.ChunkSize(runner.first_guess(ref_input, dev), measure=True, device=dev)
        # Equivariance needs the output grid before it can draw shifts, so the reference goes through
        # the model first; for invariance it shares the first chunk with the transformed copies.
        ref_leaves: runner.Leaves | None = None
        strides: dict[str, tuple[int, ...]] = {}
        lattice = None
        if spec.equivariant:
            ((_, ref_leaves),) = runner.run_batches(model, [(_REFERENCE, ref_input)], chunk)
            _accept_reference(spec, ref_leaves)
            strides, lattice = _strides(spec, ref_leaves, model_shape, dims)
            if lattice is not None:
                step = str(lattice[0]) if len(set(lattice)) == 1 else str(lattice)
                notes.append(
                    f"output is {step} times coarser than the input along dims {dims}; "
                    f"shifts drawn on the stride lattice (multiples of {step})"
                )
            flat = [p or "output" for p, t in ref_leaves if p not in strides]
            if flat and strides:
                notes.append(f"leaves without spatial dims ({', '.join(flat)}) compared as invariant")

        ctx = DrawContext(model_shape, dims, lattice, seed, ref_leaves)
        transform_list = build(ctx)
        if not transform_list:  # a check of nothing must not pass
            raise usage_error(
                f"{entry_name(spec.kind)} has no transform to check with these arguments; pass at least "
                f"one shift or angle (shifts=, angles=), or a max_shift and trials of at least 1."
            )
        out_margin = _margin(spec, model, ref_input, dims, strides, notes)

        trials: list[Trial] = []
        agreements: list[tuple[bool, ...]] = []  # per trial, per image: did the top-1 class survive?
        jobs = itertools.chain(
            [(_REFERENCE, ref_input)] if ref_leaves is None else [],
            ((i, t.on_input(x)) for i, t in enumerate(transform_list)),
        )
        for key, leaves in runner.run_batches(model, jobs, chunk):
            if key == _REFERENCE:  # always first: it is the first job
                ref_leaves = leaves
                _accept_reference(spec, ref_leaves)
                continue
            t = transform_list[key]
            _check_finite(leaves, f"the input under {t.label}")
            assert ref_leaves is not None
            trial, agreement = _trial(spec, t, leaves, ref_leaves, strides, out_margin, atol, rtol)
            trials.append(trial)
            if agreement is not None:
                agreements.append(agreement)
        batch_size = chunk.size

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
            all_shift_consistency=_all_shift_consistency(agreements),
            weights_fingerprint=fingerprint.fingerprint_model(model),
            inputs_fingerprint=fingerprint.fingerprint_tensors([("inputs", x)]),
            group=spec.group.name if spec.group is not None else None,
            fields=ctx.fields,
            max_rel_l2=spec.max_rel_l2,
        )
        if spec.min_consistency is not None:  # the mean over trials decides, not each trial
            mean = result.consistency
            result.passed = mean is not None and mean >= spec.min_consistency
        if spec.kind.startswith("rotation"):
            result.angle_errors = [
                (float(tr.params.get("angle", 90 * tr.params.get("k", 0))), tr.max_abs)
                for tr in trials
                if ("angle" in tr.params or "k" in tr.params) and not tr.params.get("flip")
            ] or None
        worst = _worst_transform(result, transform_list)
        _attach_extras(spec, result, model, x, worst, dims, dev, batch_size, out_margin)
    for listener in list(RESULT_LISTENERS):
        listener(result)
    return result


def run_lie_check(spec: CheckSpec, generators: tuple[str, ...]) -> CheckResult:
    """Run a check by Lie derivatives (``measure="lie"``): one trial per generator of the family.

    A trial passes when ``max |L f(x)| <= atol + rtol * max |J_f(x)·G x|``: the derivative of the
    output along the generator is the natural scale, so the dtype's tolerances apply as they do to
    finite transforms. Invariance checks take the invariant form (outputs are not moved back).
    """
    from pytest_equivariance.check import lie

    model, dev, dtype, seed, shape = setting_up(spec)
    if len(shape) != 4:
        raise usage_error(
            f"measure='lie' acts on images of shape (N, C, H, W), got inputs of shape {tuple(shape)}; pass "
            f"images, or measure='error' for other inputs."
        )
    dims = resolve_dims(spec.dims, len(shape), plane=True)
    if dims != (-2, -1):
        raise usage_error(
            f"measure='lie' differentiates along the image plane (dims (-2, -1)), not dims {dims}; drop dims= "
            f"or use measure='error'."
        )
    notes: list[str] = [f"measured by Lie derivatives ({', '.join(generators)}; spectral, per pixel and per radian)"]
    spec.mode = "circular" if spec.mode in transforms.SHIFT_MODES else spec.mode
    x, _ = source_tensor(spec, shape, dims, dtype, dev, seed, notes)
    atol_default, rtol_default = metrics.default_tolerances(dtype)
    atol = atol_default if spec.atol is None else float(spec.atol)
    rtol = rtol_default if spec.rtol is None else float(spec.rtol)
    output = "auto" if spec.equivariant else "invariant"
    derivatives, pushforwards = lie.lie_derivative_and_pushforward(
        model, x, list(generators), output=output, batch_size=spec.batch_size, device=dev)
    trials = []
    for name in generators:
        values = [v.double() for v in lie.leaves(derivatives[name])]
        scales = [v.double() for v in lie.leaves(pushforwards[name])]
        largest = max(float(v.abs().max()) for v in values if v.numel())
        scale = max(float(v.abs().max()) for v in scales if v.numel())
        count = sum(v.numel() for v in values) or 1
        norm = math.sqrt(sum(float(v.pow(2).sum()) for v in values))
        scale_norm = math.sqrt(sum(float(v.pow(2).sum()) for v in scales))
        trials.append(Trial(
            transform=f"Lie derivative {name}", params={"generator": name}, max_abs=largest,
            mean_abs=sum(float(v.abs().sum()) for v in values) / count,
            rel_l2=norm / scale_norm if scale_norm > 0 else 0.0, cosine=0.0,
            passed=largest <= atol + rtol * scale,
        ))
    result = CheckResult(
        kind=spec.kind, passed=all(t.passed for t in trials), trials=trials, atol=atol, rtol=rtol, seed=seed,
        device=str(dev), dtype=dtype_name(dtype), mode=spec.mode, dims=dims, input_shape=tuple(shape),
        notes=notes, measure="lie", weights_fingerprint=fingerprint.fingerprint_model(model),
        inputs_fingerprint=fingerprint.fingerprint_tensors([("inputs", x)]),
    )
    for listener in list(RESULT_LISTENERS):
        listener(result)
    return result


def source_tensor(
    spec: CheckSpec,
    shape: tuple[int, ...],
    dims: tuple[int, ...],
    dtype: "torch.dtype",
    dev: "torch.device",
    seed: int,
    notes: list[str],
) -> tuple["Tensor", tuple[int, ...]]:
    """Return the tensor the transforms act on and the shape of what the model sees.

    That is the inputs (given, or natural images from ``seed``), a canvas ``max_shift`` pixels larger
    on each side in crop mode, or the inputs masked to their inscribed disk in interp mode.
    """
    if spec.mode == "crop":
        margin = spec.max_shift or DEFAULT_MAX_SHIFT
        spec.max_shift = margin
        if spec.inputs is not None:
            small = [d for d in dims if shape[d] - 2 * margin < 1]
            if small:
                raise InputShapeError(
                    f"In crop mode the inputs are the canvas, and {tuple(shape)} leaves no crop after "
                    f"{margin} pixels on each side; pass larger inputs or a smaller max_shift."
                )
            source_shape = shape
        else:
            source_shape = tuple(s + 2 * margin if i - len(shape) in dims else s for i, s in enumerate(shape))
        model_shape = tuple(s - 2 * margin if i - len(shape) in dims else s for i, s in enumerate(source_shape))
        notes.append(
            f"crop mode: the model saw {'x'.join(map(str, model_shape[2:]))} crops of a "
            f"{'x'.join(map(str, source_shape[2:]))} canvas"
        )
    else:
        source_shape = model_shape = shape

    if spec.inputs is not None:
        x = spec.inputs.detach()
        if x.is_floating_point() and x.dtype != dtype:
            notes.append(f"inputs cast from {dtype_name(x.dtype)} to the model's {dtype_name(dtype)}")
        x = x.to(device=dev, dtype=dtype if x.is_floating_point() else x.dtype)
    else:
        from pytest_equivariance.inputs import natural_images

        if spec.mode == "crop":
            what = (f"mode='crop' with max_shift={spec.max_shift} (a {'x'.join(map(str, source_shape[2:]))} "
                    f"canvas for {'x'.join(map(str, model_shape[2:]))} crops)")
            remedy = "pass a smaller max_shift, or a smaller input_shape"
        else:
            what, remedy = f"input_shape={tuple(shape)}", "pass a smaller input_shape"
        guards.require_fits(source_shape, dtype, dev, what, remedy)
        # Resampling blurs what it rotates; smoother (1/f²) images keep that error well below what a
        # model that is not rotation-equivariant shows.
        exponent = INTERP_EXPONENT if spec.mode == "interp" else 1.0
        x = natural_images(source_shape, seed=seed, dtype=dtype, device=dev, exponent=exponent)
    if spec.mode == "interp" and spec.group is not None:
        x = x * transforms.soft_disk(x.shape, dims, dtype=x.dtype, device=x.device)
        notes.append(
            "group elements off the pixel grid are resampled band-limitedly; inputs tapered to the "
            "inscribed disk, outputs compared inside it"
            + ("" if spec.inputs is not None else f", on 1/f^{INTERP_EXPONENT:g} images")
        )
        if spec.max_rel_l2 is not None:
            notes.append(
                f"judged by the relative L2 error inside the disk (<= {spec.max_rel_l2:g}), as resampled "
                f"filters are equivariant only up to their discretisation; pass atol=/rtol= to judge "
                f"every element"
            )
    elif spec.mode == "interp":
        x = x * transforms.disk_mask(x.shape, dims, dtype=x.dtype, device=x.device)
        notes.append(
            "interp mode: inputs masked to the inscribed disk; outputs compared inside it"
            + ("" if spec.inputs is not None else f", on 1/f^{INTERP_EXPONENT:g} images that resample smoothly")
        )
    return x, tuple(model_shape)


def _accept_reference(spec: CheckSpec, ref_leaves: runner.Leaves) -> None:
    """Reject reference outputs a check cannot use: NaN/inf, or no class scores for min_consistency."""
    _check_finite(ref_leaves, "the reference input")
    if spec.min_consistency is not None and not any(metrics.is_classifier_output(t) for _, t in ref_leaves):
        raise usage_error(
            "min_consistency needs classifier outputs of shape (batch, classes), which this model does "
            "not return; drop min_consistency to compare outputs with atol/rtol."
        )


def _identity(spec: CheckSpec, dims: tuple[int, ...]) -> transforms.Transform | None:
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
    spec: CheckSpec, leaves: runner.Leaves, model_shape: tuple[int, ...], dims: tuple[int, ...]
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
        if t.dim() != ndim:
            continue
        if spec.kind.startswith("rotation"):  # rotations act on any grid centred like the input's
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
    if not strides:
        raise usage_error(
            f"The model's output has no spatial dims to shift or rotate (shapes "
            f"{', '.join(str(tuple(t.shape)) for _, t in leaves)}); use the invariance check instead."
        )
    if spec.kind.startswith("rotation"):
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
    if not spec.equivariant or spec.mode not in ("crop", "zero"):
        return spec.margin or 0
    if spec.margin is not None:
        notes.append(f"compared outputs at least {spec.margin} pixels from the border (margin={spec.margin})")
        return spec.margin
    radii = runner.receptive_radius(model, ref_input, dims)
    if radii is None:
        notes.append("the receptive field could not be measured; no border margin applied (pass margin=)")
        return 0
    coarsest = [max(s[i] for s in strides.values()) for i in range(len(dims))]
    margin = max(math.ceil(r / k) + (1 if k > 1 else 0) for r, k in zip(radii, coarsest))
    notes.append(
        f"compared outputs at least {margin} pixels from the border (the measured receptive-field radius; "
        f"pass margin= to override)"
    )
    return margin


def _trial(
    spec: CheckSpec,
    t: transforms.Transform,
    leaves: runner.Leaves,
    ref_leaves: runner.Leaves,
    strides: dict[str, tuple[int, ...]],
    margin: int,
    atol: float,
    rtol: float,
) -> tuple[Trial, tuple[bool, ...] | None]:
    """Return the trial's figures, and per image whether its top-1 class survived (classifiers)."""
    if [p for p, _ in leaves] != [p for p, _ in ref_leaves]:
        raise usage_error(
            f"The model's output structure changed under {t.label}; return the same structure for every input."
        )
    comparisons = []
    for (path, a), (_, b) in zip(leaves, ref_leaves):
        mask = None
        if spec.kind == "custom":
            b = t.on_output(b)
        elif path in strides:
            b = t.on_output(b, strides[path], path)
            mask = t.mask(tuple(b.shape), strides[path], margin, device=b.device)
            if mask is not None and not bool(mask.any()):
                raise usage_error(
                    f"Nothing is left to compare in output{path} under {t.label} after the border margin of "
                    f"{margin} pixels; pass a larger input_shape, a smaller max_shift, margin=, or mode='circular'."
                )
        if a.shape != b.shape:
            raise usage_error(
                f"The model's output{path} has shape {tuple(a.shape)} under {t.label} but {tuple(b.shape)} "
                f"was expected; make the output transform match the model, or check invariance."
            )
        comparisons.append(
            metrics.compare(
                a, b, atol=atol, rtol=rtol, mask=mask, leaf=path,
                classifier=not spec.equivariant, min_consistency=spec.min_consistency,
            )
        )
    judged = comparisons
    if spec.min_consistency is not None:
        judged = [c for c in comparisons if c.consistency is not None] or comparisons
    w = metrics.worst(judged, by_consistency=spec.min_consistency is not None)
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in t.params.items()}
    passed = all(c.passed for c in judged)
    psnr = min((c.psnr for c in comparisons if c.psnr is not None), default=None)
    if spec.min_psnr is not None:  # the PSNR decides, as StyleGAN3's EQ-T and EQ-R report it
        passed = psnr is not None and psnr >= spec.min_psnr
    elif spec.max_rel_l2 is not None:
        passed = all(c.rel_l2 <= spec.max_rel_l2 for c in judged)
    agreement = next((c.agreement for c in judged if c.agreement is not None), None)
    trial = Trial(
        transform=t.label,
        params=params,
        max_abs=w.max_abs,
        mean_abs=w.mean_abs,
        rel_l2=w.rel_l2,
        cosine=w.cosine,
        passed=passed,
        leaf=w.leaf,
        consistency=w.consistency,
        prob_change=w.prob_change,
        psnr=psnr,
    )
    return trial, agreement


def _all_shift_consistency(agreements: list[tuple[bool, ...]]) -> float | None:
    """The fraction of images whose top-1 class is the same under every trial's transform."""
    if not agreements or len({len(a) for a in agreements}) != 1:
        return None
    kept = [all(trial[i] for trial in agreements) for i in range(len(agreements[0]))]
    return sum(kept) / len(kept) if kept else None


def _worst_transform(result: CheckResult, transform_list: list[transforms.Transform]) -> transforms.Transform | None:
    """The transform of ``result.worst``, the trial the reports lead with (trials follow transform_list)."""
    worst = result.worst
    return next(t for trial, t in zip(result.trials, transform_list) if trial is worst) if worst else None


def _attach_extras(
    spec: CheckSpec,
    result: CheckResult,
    model: Any,
    x: "Tensor",
    worst: transforms.Transform | None,
    dims: tuple[int, ...],
    dev: "torch.device",
    batch_size: int,
    out_margin: int,
) -> None:
    """Fill result.profile (per-layer localisation) and result.grid when asked for."""
    # Imported here: both build on this module's transforms and runner, and most checks need neither.
    from pytest_equivariance.check.attribution import explain
    from pytest_equivariance.check.grid import shift_grid

    want_profile = spec.localize is True or (spec.localize is None and not result.passed)
    if want_profile and worst is not None:
        try:
            result.profile = explain(
                model, x, worst, equivariant=spec.equivariant, passed=result.passed, device=dev,
                batch_size=batch_size,
            )
        except EquivarianceUsageError as exc:
            result.notes.append(f"per-layer localisation skipped: {exc}")
        except Exception as exc:  # the check's verdict stands even if the profile cannot be made
            result.notes.append(f"per-layer localisation failed: {type(exc).__name__}: {exc}")
    if spec.grid and spec.kind.startswith("shift"):
        try:
            result.grid = shift_grid(
                model, x, dims=dims, mode=spec.mode, equivariant=spec.equivariant, device=dev,
                batch_size=batch_size, lattice=result.lattice,
                canvas=spec.max_shift if spec.mode == "crop" else None, margin=out_margin,
            )
        except EquivarianceUsageError as exc:
            result.notes.append(f"shift grid skipped: {exc}")
        except Exception as exc:
            result.notes.append(f"shift grid failed: {type(exc).__name__}: {exc}")
