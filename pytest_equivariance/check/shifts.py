"""Shift checks: ``check_shift_equivariant`` and ``check_shift_invariant``, and how shifts are drawn."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from pytest_equivariance.check import arguments, geometry, transforms
from pytest_equivariance.check.result import CheckResult
from pytest_equivariance.check.run import run_check, run_lie_check
from pytest_equivariance.check.spec import (
    DEFAULT_MAX_SHIFT,
    DEFAULT_TRIALS,
    CheckSpec,
    DrawContext,
    check_measures,
    check_trials,
    library_model,
    usage_error,
)
from pytest_equivariance.errors import shown

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from pytest_equivariance.check.protocols import Protocol


def check_shift_equivariant(
    model: "nn.Module",
    inputs: "Tensor | Iterable[Any] | None" = None,
    *,
    input_shape: Sequence[int] | None = None,
    max_shift: int | None = None,
    shifts: Sequence[Any] | None = None,
    shift: Any = None,
    trials: int | None = None,
    mode: str = "circular",
    dims: Sequence[int] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    min_consistency: float | None = None,
    seed: int | None = None,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    localize: bool | None = None,
    grid: bool = False,
    margin: int | None = None,
    subpixel: bool = False,
    min_psnr: float | None = None,
    measure: str = "error",
    limit: int | None = None,
    progress: bool = True,
    output_fields: Any = None,
) -> CheckResult:
    """Return how far ``model(shift(x))`` is from ``shift(model(x))`` over seeded random shifts.

    ``mode``: "circular" (``torch.roll``, exact for circular-padded models), "crop" (crops of a
    larger canvas, Zhang 2019) or "zero" (zeros shifted in; only outputs at least ``margin`` pixels
    from the border are compared, ``margin`` measured from the receptive field when not given).
    When the output is ``k`` times coarser than the input, a shift ``Δ`` acts as ``Δ/k`` on it and
    shifts are drawn on multiples of ``k`` (``result.lattice``); an explicit shift off that lattice is
    a usage error. ``shift=`` checks one shift, ``shifts=`` a list, otherwise ``trials`` shifts with
    entries up to ``max_shift`` are drawn from ``seed``.

    Sub-pixel shifts: fractional entries (``shifts=[(0, 0.5)]``), or ``subpixel=True`` to draw them,
    are band-limited (Fourier) shifts — of the input in circular mode, of the canvas in crop mode —
    and act on a strided output's own grid as ``Δ/k`` of its pixels. ``min_psnr=`` (dB) makes the
    PSNR decide each trial (StyleGAN3's EQ-T). ``measure="lie"`` checks Lie derivatives instead of
    finite shifts: one trial per generator (``translate_x``, ``translate_y``), passing when
    ``max |L f(x)| <= atol + rtol * max |J_f(x) G x|`` (docs/metrics.md).

    ``output_fields=points()`` or ``boxes()`` (or a dict of them by output leaf) says that an output
    holds coordinates in input pixels, which a shift moves by adding it (docs/geometry.md).
    """
    return _shift_check(**locals(), equivariant=True)


def check_shift_invariant(
    model: "nn.Module",
    inputs: "Tensor | Iterable[Any] | None" = None,
    *,
    input_shape: Sequence[int] | None = None,
    max_shift: int | None = None,
    shifts: Sequence[Any] | None = None,
    shift: Any = None,
    trials: int | None = None,
    mode: str = "circular",
    dims: Sequence[int] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    min_consistency: float | None = None,
    seed: int | None = None,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    localize: bool | None = None,
    grid: bool = False,
    margin: int | None = None,
    subpixel: bool = False,
    min_psnr: float | None = None,
    measure: str = "error",
    limit: int | None = None,
    progress: bool = True,
    min_accuracy: float | None = None,
    max_accuracy_drop: float | None = None,
    protocol: "str | Protocol | None" = None,
) -> CheckResult:
    """Return how far ``model(shift(x))`` is from ``model(x)`` over seeded random shifts.

    Same arguments as :func:`check_shift_equivariant`. For classifiers (``(batch, classes)``
    outputs) the result also holds top-1 consistency (Zhang 2019) and the mean change of the top
    class probability (Azulay & Weiss 2019); ``min_consistency=0.9`` passes on consistency alone.
    """
    return _shift_check(**locals(), equivariant=False)


def _shift_check(
    *,
    model: Any,
    inputs: Any,
    input_shape: Any,
    max_shift: Any,
    shifts: Any,
    shift: Any,
    trials: Any,
    mode: str,
    dims: Any,
    atol: Any,
    rtol: Any,
    min_consistency: Any,
    seed: Any,
    device: Any,
    batch_size: Any,
    localize: Any,
    grid: Any,
    margin: Any,
    subpixel: Any = False,
    min_psnr: Any = None,
    measure: Any = "error",
    limit: Any = None,
    progress: Any = True,
    min_accuracy: Any = None,
    max_accuracy_drop: Any = None,
    protocol: Any = None,
    output_fields: Any = None,
    equivariant: bool,
) -> CheckResult:
    model = library_model(model)  # translations act on escnn / e2cnn fields' grids only
    fields, located = geometry.split(output_fields)
    names = list(fields.values()) if isinstance(fields, dict) else [fields]
    if fields is not None and any(name != "scalar" for name in names):  # scalar maps move as they are
        raise usage_error(
            f"output_fields={shown(output_fields)} is not a geometric field; shifts move channels as they are, "
            f"so pass points() or boxes() (or a dict of them by output leaf), or drop output_fields."
        )
    if mode not in transforms.SHIFT_MODES:
        raise usage_error(f"mode={shown(mode)} is not a shift mode; pass one of {', '.join(map(repr, transforms.SHIFT_MODES))}.")
    if max_shift is not None and (expected := arguments.expected_value("max_shift", max_shift, "shift")):
        raise usage_error(f"max_shift={shown(max_shift)} is not accepted; pass {expected}.")
    if shift is not None and shifts is not None:
        raise usage_error("Both shift and shifts were given; pass shift= for one shift or shifts= for a list.")
    if shifts is not None and not (isinstance(shifts, (tuple, list)) and shifts):
        raise usage_error(f"shifts={shown(shifts)} is not a list of shifts; pass e.g. shifts=[(0, 1), (2, -3)].")
    check_trials(trials)
    check_measures(subpixel=subpixel, min_psnr=min_psnr, measure=measure)
    spec = CheckSpec(
        kind="shift_equivariant" if equivariant else "shift_invariant", equivariant=equivariant, model=model,
        inputs=inputs, input_shape=input_shape, dims=dims, atol=atol, rtol=rtol,
        min_consistency=min_consistency, seed=seed, device=device, batch_size=batch_size,
        localize=localize, grid=grid, mode=mode, margin=margin, max_shift=max_shift,
        min_psnr=min_psnr, limit=limit, progress=progress, min_accuracy=min_accuracy,
        max_accuracy_drop=max_accuracy_drop, output_geometry=located,
    )
    if located is not None and measure == "lie":
        raise usage_error("measure='lie' differentiates image-shaped outputs; use measure='error' for points and boxes.")
    if protocol is not None:
        from pytest_equivariance.check.protocols import protocol_check

        return protocol_check(spec, protocol, shifts=shifts, shift=shift, max_shift=max_shift, trials=trials,
                              subpixel=subpixel, measure=measure, mode=mode)
    explicit = None if shift is None and shifts is None else ([shift] if shift is not None else list(shifts))
    n_trials = trials or DEFAULT_TRIALS
    entries = [v for e in (explicit or []) for v in (e if isinstance(e, (tuple, list)) else [e])]
    fractional = subpixel or any(arguments.is_real(v) and not float(v).is_integer() for v in entries)
    if fractional and mode == "zero":
        raise usage_error(
            "Sub-pixel shifts need mode='circular' (the band-limited shift of the input) or mode='crop' "
            "(of the canvas); zero mode shifts whole pixels of zeros in."
        )
    if fractional and mode == "crop" and equivariant:
        raise usage_error(
            "Sub-pixel shifts of an equivariant output need mode='circular': a crop's output is not periodic, "
            "so shifting it by a fraction of a pixel rings across it; use mode='circular', or check invariance "
            "in crop mode."
        )
    if mode == "crop" and max_shift is None and explicit:
        # The canvas only needs to reach the largest explicit shift.
        sizes = [math.ceil(abs(v)) for v in entries if arguments.is_real(v)]
        spec.max_shift = max(sizes + [1])
    if measure == "lie":
        return run_lie_check(spec, ("translate_x", "translate_y"))

    def build(ctx: DrawContext) -> list[transforms.Transform]:
        nd = len(ctx.dims)
        canvas = (spec.max_shift,) * nd if mode == "crop" else None
        lattice = ctx.lattice or (1,) * nd
        if explicit is not None:
            name = "shift" if shift is not None else "shifts"
            deltas = [_as_shift(v, nd, name) for v in explicit]
            for delta in deltas:
                # A sub-pixel shift is band-limited: it moves a coarser output by fractions of its pixels.
                subpixel_entry = any(isinstance(d, float) for d in delta)
                off = [(d, k) for d, k in zip(delta, lattice) if isinstance(d, int) and d % k]
                if off and not subpixel_entry:
                    raise usage_error(
                        f"{name} entry {delta} does not map onto the output grid, which is {lattice} times "
                        f"coarser than the input along dims {ctx.dims}; pass shifts that are multiples of "
                        f"{lattice}, or check invariance instead."
                    )
                if canvas is not None and any(abs(d) > m for d, m in zip(delta, canvas)):
                    raise usage_error(
                        f"{name} entry {delta} is larger than the crop canvas margin {canvas[0]}; "
                        f"pass max_shift= at least {max(abs(d) for d in delta)} in crop mode."
                    )
        elif subpixel:
            limit = spec.max_shift or _default_max_shift(ctx, lattice)
            deltas = draw_subpixel_shifts(random.Random(ctx.seed), nd, limit, n_trials)
        else:
            limit = spec.max_shift or _default_max_shift(ctx, lattice)
            deltas = draw_shifts(random.Random(ctx.seed), lattice, limit, n_trials)
            if not deltas:
                raise usage_error(
                    f"max_shift={limit} is smaller than the output stride {max(lattice)}, so no shift maps "
                    f"onto the output grid; pass max_shift={max(lattice)} or more."
                )
        return [transforms.shift(d, ctx.dims, mode, canvas) for d in deltas]

    return run_check(spec, build)


def _as_shift(value: Any, nd: int, name: str) -> tuple[float, ...]:
    """Return one shift as a tuple of pixels: integers stay ints, fractions are sub-pixel shifts."""
    if arguments.is_real(value) and nd == 1:
        value = (value,)
    if not arguments.real_tuple(value) or len(value) != nd:
        example = tuple([1] * nd) if nd > 1 else 1
        raise usage_error(
            f"{name}={shown(value)} does not give one number of pixels per shifted dim ({nd}); pass e.g. "
            f"{name}={example!r}."
        )
    return tuple(int(v) if float(v).is_integer() else float(v) for v in value)


def _default_max_shift(ctx: DrawContext, lattice: tuple[int, ...]) -> int:
    smallest = min(ctx.input_shape[d] for d in ctx.dims)
    return max(DEFAULT_MAX_SHIFT if smallest >= 4 * DEFAULT_MAX_SHIFT else max(1, smallest // 4), max(lattice))


def draw_shifts(
    rng: random.Random, lattice: tuple[int, ...], max_shift: int, trials: int
) -> list[tuple[int, ...]]:
    """Return up to ``trials`` distinct non-zero shifts on ``lattice`` with entries within ``max_shift``.

    The unit shifts of the lattice (one step along each dim) come first, because the smallest
    shift off the sampling grid is where aliasing shows most; the rest are drawn uniformly.
    """
    steps = [max_shift // k for k in lattice]
    if not any(steps):
        return []
    out: list[tuple[int, ...]] = []
    for i, (k, s) in enumerate(zip(lattice, steps)):
        if s and len(out) < trials:
            out.append(tuple(k if j == i else 0 for j in range(len(lattice))))
    possible = math.prod(2 * s + 1 for s in steps) - 1
    seen = set(out)
    while len(out) < min(trials, possible):
        delta = tuple(rng.randint(-s, s) * k for s, k in zip(steps, lattice))
        if any(delta) and delta not in seen:
            seen.add(delta)
            out.append(delta)
    return out


#: Sub-pixel shifts are drawn on this grid of fractions of a pixel.
SUBPIXEL_STEP = 0.25


def draw_subpixel_shifts(rng: random.Random, nd: int, max_shift: int, trials: int) -> list[tuple[float, ...]]:
    """Return up to ``trials`` distinct shifts with at least one fractional entry, within ``max_shift``.

    The half-pixel shifts along each dim come first (where a model that aliases is furthest from
    equivariant: StyleGAN3's EQ-T_frac draws uniformly); the rest are multiples of a quarter pixel.
    """
    out: list[tuple[float, ...]] = [tuple(0.5 if j == i else 0 for j in range(nd)) for i in range(nd)][:trials]
    seen = set(out)
    steps = int(max_shift / SUBPIXEL_STEP)
    for _ in range(100 * trials):
        if len(out) >= trials:
            break
        delta = tuple(rng.randint(-steps, steps) * SUBPIXEL_STEP for _ in range(nd))
        if delta not in seen and any(not float(d).is_integer() for d in delta):
            seen.add(delta)
            out.append(tuple(int(d) if float(d).is_integer() else d for d in delta))
    return out
