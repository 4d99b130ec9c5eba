"""Scale checks: ``check_scale_equivariant`` and ``check_scale_invariant``, and how factors are drawn.

Rescaling is not a group on a finite grid, so how the image is resampled decides what a check can
charge to the model; the resamplers, what they represent exactly, and the scale-channel field are in
:mod:`.rescaling` (docs/metrics.md, "Rescaling").
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from pytest_equivariance.check import arguments, rescaling, transforms
from pytest_equivariance.check.fields import check_leaf_keys, leaf_fields
from pytest_equivariance.check.result import CheckResult
from pytest_equivariance.check.run import run_check, run_lie_check
from pytest_equivariance.check.spec import CheckSpec, DrawContext, check_measures, check_trials, usage_error
from pytest_equivariance.errors import shown

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from pytest_equivariance.check.protocols import Protocol

#: The factors a scale check applies when none are given: half and double size.
DEFAULT_SCALES = (0.5, 2.0)
#: The range ``trials`` factors are drawn from when no ``scale_range`` is given.
DEFAULT_SCALE_RANGE = (0.5, 2.0)
#: How many factors a check draws from ``scale_range`` when ``trials`` is not given.
DEFAULT_SCALE_TRIALS = 4


def check_scale_equivariant(
    model: "nn.Module",
    inputs: "Tensor | Iterable[Any] | None" = None,
    *,
    input_shape: Sequence[int] | None = None,
    scales: Sequence[float] | None = None,
    scale: float | None = None,
    scale_range: Sequence[float] | None = None,
    trials: int | None = None,
    mode: str = "fourier",
    dims: Sequence[int] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    max_channel_error: float | None = None,
    seed: int | None = None,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    localize: bool | None = None,
    margin: int | None = None,
    min_psnr: float | None = None,
    measure: str = "error",
    limit: int | None = None,
    progress: bool = True,
    output_fields: Any = None,
) -> CheckResult:
    """Return how far ``model(D_s x)`` is from ``D_s model(x)`` over rescalings by factors ``s``.

    ``s`` magnifies: 2 doubles the image's size in pixels, 0.5 halves it (the ``scale`` Lie
    derivative's convention, ``s = e^t``). ``scale=`` checks one factor, ``scales=`` a list, and
    ``scale_range=(lo, hi)`` (or ``trials`` alone: from 0.5 to 2) draws ``trials`` factors log-uniformly
    from ``seed``; by default 0.5 and 2.
    Every factor must map the input's and the outputs' sizes onto whole pixels (drawn ones are
    snapped to such factors).

    ``mode`` names the resampler: ``"fourier"`` (ideal: crop or zero-pad the spectrum; exact for
    band-limited periodic signals, and the band neither grid holds is left out of the comparison) or
    ``"antialias"`` (``F.interpolate(mode="bilinear", antialias=True)``, what data pipelines do;
    ``margin`` output pixels at the border are left out, the measured receptive field by default).

    ``output_fields=scale_channels(n, axis=...)`` (or a dict of them by output leaf) declares scale
    channels that move by one step per factor of their ``base``; factors must then be whole powers
    of it. Trials carry Rahman & Yeh's per-channel relative error (``Trial.channel_error``), and
    ``max_channel_error=`` makes it the verdict. ``measure="lie"`` checks the ``scale`` Lie derivative.
    """
    return _scale_check(**locals(), equivariant=True)


def check_scale_invariant(
    model: "nn.Module",
    inputs: "Tensor | Iterable[Any] | None" = None,
    *,
    input_shape: Sequence[int] | None = None,
    scales: Sequence[float] | None = None,
    scale: float | None = None,
    scale_range: Sequence[float] | None = None,
    trials: int | None = None,
    mode: str = "fourier",
    dims: Sequence[int] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    min_consistency: float | None = None,
    seed: int | None = None,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    localize: bool | None = None,
    min_psnr: float | None = None,
    measure: str = "error",
    limit: int | None = None,
    progress: bool = True,
    min_accuracy: float | None = None,
    max_accuracy_drop: float | None = None,
    protocol: "str | Protocol | None" = None,
) -> CheckResult:
    """Return how far ``model(D_s x)`` is from ``model(x)``; arguments as :func:`check_scale_equivariant`.

    For classifiers the result holds top-1 consistency and the mean change of the top class
    probability under each rescaling (Azulay & Weiss 2019 measured both), and with labelled inputs
    the accuracy, as :func:`~pytest_equivariance.check_shift_invariant` does.

    ``protocol="azulay2019"`` runs Azulay & Weiss's scaling setting on a loader of images smaller
    than the model's input (``input_shape``): each is pasted into a black canvas at 8 diagonal
    positions, and beside it the image one pixel larger; it reports the probability of a top-1
    change (``1 - consistency``) and the mean change of the top-class probability
    (docs/metrics.md, "The field's protocols").
    """
    return _scale_check(**locals(), equivariant=False)


def _scale_check(
    *, model: Any, inputs: Any, input_shape: Any, scales: Any, scale: Any, scale_range: Any, trials: Any, mode: Any,
    dims: Any, atol: Any, rtol: Any, seed: Any, device: Any, batch_size: Any, localize: Any, min_psnr: Any,
    measure: Any, limit: Any, progress: Any, equivariant: bool, margin: Any = None, max_channel_error: Any = None,
    output_fields: Any = None, min_consistency: Any = None, min_accuracy: Any = None, max_accuracy_drop: Any = None,
    protocol: Any = None,
) -> CheckResult:
    if not isinstance(mode, str) or mode not in transforms.SCALE_MODES:
        raise usage_error(
            f"mode={shown(mode)} is not a resampler; pass 'fourier' (ideal, band-limited) or 'antialias' "
            f"(F.interpolate with antialias=True)."
        )
    given = [name for name, value in (("scale", scale), ("scales", scales), ("scale_range", scale_range)) if value is not None]
    if len(given) > 1:
        raise usage_error(f"Both {given[0]} and {given[1]} were given; pass only one of scale=, scales= or scale_range=.")
    for name, value in (("scale", scale), ("scales", scales), ("scale_range", scale_range), ("trials", trials),
                        ("max_channel_error", max_channel_error)):
        if value is not None and (expected := arguments.expected_value(name, value, "scale")):
            raise usage_error(f"{name}={shown(value)} is not accepted; pass {expected}.")
    check_trials(trials)
    check_measures(min_psnr=min_psnr, measure=measure)
    kind = "scale_equivariant" if equivariant else "scale_invariant"
    spec = CheckSpec(
        kind=kind, equivariant=equivariant, model=model, inputs=inputs, input_shape=input_shape, dims=dims,
        atol=atol, rtol=rtol, min_consistency=min_consistency, seed=seed, device=device, batch_size=batch_size,
        localize=localize, grid=False, mode=mode, margin=margin, min_psnr=min_psnr, limit=limit, progress=progress,
        min_accuracy=min_accuracy, max_accuracy_drop=max_accuracy_drop, channel_figures=equivariant,
        max_channel_error=max_channel_error,
    )
    if protocol is not None:
        from pytest_equivariance.check.protocols import protocol_check

        return protocol_check(spec, protocol, "scale", scales=scales, scale=scale, scale_range=scale_range,
                              trials=trials, measure=measure, mode=mode)
    if measure == "lie":
        if output_fields is not None:
            raise usage_error("measure='lie' differentiates scalar maps; drop output_fields or use measure='error'.")
        return run_lie_check(spec, ("scale",))
    explicit = [scale] if scale is not None else list(scales) if scales is not None else None

    def build(ctx: DrawContext) -> list[transforms.Transform]:
        resampler = rescaling.RESAMPLERS[mode]
        if len(ctx.dims) not in resampler.spatial_dims:
            raise usage_error(
                f"mode='{mode}' resizes images of {' or '.join(map(str, resampler.spatial_dims))} spatial dims, not "
                f"{len(ctx.dims)} (dims {ctx.dims}); pass dims=(-2, -1), or mode='fourier' for any dims."
            )
        outputs = [(p, t) for p, t in (ctx.outputs or []) if t.dim() >= len(ctx.input_shape)]
        fields = output_scale_fields(output_fields, [p for p, _ in ctx.outputs or []])
        for path, f in fields.items():
            f.validate(dict(ctx.outputs or [])[path], f"output{path}", len(ctx.dims))
        sizes = [ctx.input_shape[d] for d in ctx.dims] + [t.shape[d] for _, t in outputs for d in ctx.dims]
        base = next(iter(fields.values())).base if fields else None
        if explicit is not None:
            factors = [float(v) for v in explicit]
        elif base is not None:  # scale channels: whole steps of their base
            factors = base_steps(base, scale_range or (1 / base, base), trials or DEFAULT_SCALE_TRIALS, sizes)
        elif scale_range is not None or trials is not None:
            factors = draw_scales(random.Random(ctx.seed), scale_range or DEFAULT_SCALE_RANGE,
                                  trials or DEFAULT_SCALE_TRIALS, math.gcd(*sizes))
        else:
            factors = list(DEFAULT_SCALES)
        if not factors:
            raise usage_error(
                f"No factor in scale_range={shown(scale_range or DEFAULT_SCALE_RANGE)} maps sizes {sorted(set(sizes))} "
                f"onto whole pixels{' in whole steps of the scale channels' if base else ''}; pass a wider "
                f"scale_range, or scales= that do."
            )
        for factor in factors:
            off = [n for n in sizes if rescaling.scaled_size(n, factor) is None]
            if off:
                raise usage_error(
                    f"scale ×{factor:g} of {off[0]} pixels is not a whole number of pixels, so it has no exact "
                    f"counterpart on the grid; pass factors that map sizes {sorted(set(sizes))} onto whole pixels."
                )
            for path, f in fields.items():
                if f.steps(factor) is None:
                    raise usage_error(
                        f"scale ×{factor:g} is not a whole number of steps of output{path}'s scale channels (base "
                        f"{f.base:g}); pass factors that are powers of {f.base:g}, e.g. scales=[{1 / f.base:g}, {f.base:g}]."
                    )
        if fields:
            ctx.fields = {f"output{p}": f.describe() for p, f in fields.items()}
        return [transforms.rescale(f, ctx.dims, mode, fields) for f in factors]

    return run_check(spec, build)


def output_scale_fields(output_fields: Any, paths: Sequence[str]) -> dict[str, rescaling.ScaleChannels]:
    """Return the :class:`~.rescaling.ScaleChannels` of each output leaf ``output_fields`` declares (none: scalar maps)."""
    if output_fields is None:
        return {}
    check_leaf_keys(output_fields, paths)
    out = {}
    for path in paths:
        value = leaf_fields(output_fields, path) if isinstance(output_fields, Mapping) else output_fields
        if isinstance(value, rescaling.ScaleChannels):
            out[path] = value
        elif value != "scalar":
            raise usage_error(
                f"output_fields={shown(output_fields)} is not a scale field; rescaling moves scalar maps and "
                f"scale channels, so pass 'scalar' or scale_channels(n, axis=...), or a dict of them by output leaf."
            )
    return out


def base_steps(base: float, scale_range: Sequence[float], trials: int, sizes: Sequence[int]) -> list[float]:
    """Return up to ``trials`` whole powers of ``base`` within ``scale_range`` that map ``sizes`` onto
    whole pixels, the smallest steps first (one step down and up before two)."""
    lo, hi = (float(v) for v in scale_range)
    out = []
    for k in sorted(range(-16, 17), key=lambda k: (abs(k), k)):
        factor = round(base**k, 12)  # 0.5, not 0.49999999999999994, for two steps of √2
        if k and lo - 1e-9 <= factor <= hi + 1e-9 and all(rescaling.scaled_size(n, factor) for n in sizes):
            out.append(factor)
    return out[:trials]


def draw_scales(rng: random.Random, scale_range: Sequence[float], trials: int, grid: int) -> list[float]:
    """Return up to ``trials`` distinct factors other than 1, drawn log-uniformly from ``scale_range``
    and snapped to multiples of ``1/grid`` (so that every size divisible by ``grid`` maps onto whole pixels)."""
    lo, hi = (float(v) for v in scale_range)
    out: list[float] = []
    for _ in range(100 * trials):
        if len(out) >= trials:
            break
        factor = round(math.exp(rng.uniform(math.log(lo), math.log(hi))) * grid) / grid
        if factor > 0 and factor != 1.0 and lo <= factor <= hi and factor not in out:
            out.append(factor)
    return out
