"""The dynamic checks: ``check_shift_equivariant`` and friends, each returning a :class:`CheckResult`.

A check applies a set of transforms to a batch of inputs, puts every transformed copy through the
model (batched, chunked, on the chosen device, in eval mode), and compares ``model(g·x)`` with
``g·model(x)`` (equivariance) or ``model(x)`` (invariance) output leaf by output leaf. It never raises
because the model fails the check: that is ``result.passed``. It raises
:class:`~pytest_equivariance.errors.EquivarianceUsageError` for arguments it cannot honour.

Example::

    from pytest_equivariance import check_shift_invariant

    result = check_shift_invariant(model, input_shape=(4, 3, 64, 64), max_shift=8, seed=0)
    if not result.passed:
        print(result.worst.transform, result.worst.max_abs)
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from pytest_equivariance.check import arguments, fingerprint, metrics, runner, transforms
from pytest_equivariance.check import transforms as transforms_mod  # `transforms` is also an argument name
from pytest_equivariance.check.result import CheckResult, Trial
from pytest_equivariance.errors import EquivarianceUsageError, InputShapeError

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

#: Called with every finished CheckResult (the pytest plugin listens here to collect results of
#: checks a test runs directly). Listeners must not raise.
RESULT_LISTENERS: list[Callable[[CheckResult], None]] = []

DEFAULT_TRIALS = 16
DEFAULT_MAX_SHIFT = 8
DEFAULT_BATCH = 2
#: Angles of the default sweep for ``mode="interp"``, in degrees.
INTERP_ANGLES = tuple(float(a) for a in range(15, 360, 15))
#: Spectral exponent of the default images in ``mode="interp"`` (1/f² noise: smooth to resample).
INTERP_EXPONENT = 2.0
#: The default verdict of a group check with resampled elements: relative L2 error inside the disk.
GROUP_REL_L2 = 0.1
#: Image size a group check of an escnn / e2cnn module uses when no shape is given (odd: a centre pixel).
GROUP_SPATIAL = (33, 33)
#: Output pixels left out inside the disk's edge in ``mode="interp"``.
INTERP_MARGIN = 2
_REFERENCE = "reference"  # job key of the untransformed input

# -- public checks ---------------------------------------------------------------------------------


def check_shift_equivariant(
    model: "nn.Module",
    inputs: "Tensor | None" = None,
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
    """
    return _check_shifts(**locals(), equivariant=True)


def check_shift_invariant(
    model: "nn.Module",
    inputs: "Tensor | None" = None,
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
) -> CheckResult:
    """Return how far ``model(shift(x))`` is from ``model(x)`` over seeded random shifts.

    Same arguments as :func:`check_shift_equivariant`. For classifiers (``(batch, classes)``
    outputs) the result also holds top-1 consistency (Zhang 2019) and the mean change of the top
    class probability (Azulay & Weiss 2019); ``min_consistency=0.9`` passes on consistency alone.
    """
    return _check_shifts(**locals(), equivariant=False)


def check_rotation_equivariant(
    model: "nn.Module",
    inputs: "Tensor | None" = None,
    *,
    input_shape: Sequence[int] | None = None,
    angles: Sequence[Any] | None = None,
    angle: Any = None,
    trials: int | None = None,
    mode: str | None = None,
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
    min_psnr: float | None = None,
    measure: str = "error",
    group: str | None = None,
    input_fields: Any = None,
    output_fields: Any = None,
) -> CheckResult:
    """Return how far ``model(rotate(x))`` is from ``rotate(model(x))``.

    ``mode="exact"`` (the default without ``group``): quarter turns (default 90, 180, 270) and flips
    (``"hflip"``, ``"vflip"`` in ``angles``), exact pixel permutations. ``mode="interp"``: any angle
    by bilinear resampling, compared inside the inscribed disk only (default: a sweep every 15°, or
    ``trials`` random angles drawn from ``seed``), with looser default tolerances for the
    interpolation error.

    ``group="C<N>"``, ``"D<N>"``, ``"SO2"`` or ``"O2"`` checks every element of that group instead
    (SO2 and O2: the sweep or ``trials`` random elements), exact for quarter turns and flips and
    band-limited resampling otherwise; ``input_fields`` / ``output_fields`` say how the elements act
    on channels (``"scalar"``, ``"regular"``, ``"vector"``, ``"irrep(k)"``, ``"sign"``, a list of
    them along the channel dim, a dict per output leaf, an escnn / e2cnn ``FieldType``, or a callable
    ``(element, tensor) -> tensor``). escnn and e2cnn modules are read directly: their group and
    field types come from the module. See ``docs/groups.md``.
    """
    return _check_rotations(**locals(), equivariant=True)


def check_rotation_invariant(
    model: "nn.Module",
    inputs: "Tensor | None" = None,
    *,
    input_shape: Sequence[int] | None = None,
    angles: Sequence[Any] | None = None,
    angle: Any = None,
    trials: int | None = None,
    mode: str | None = None,
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
    min_psnr: float | None = None,
    measure: str = "error",
    group: str | None = None,
    input_fields: Any = None,
    output_fields: Any = None,
) -> CheckResult:
    """Return how far ``model(rotate(x))`` is from ``model(x)``; arguments as :func:`check_rotation_equivariant`."""
    return _check_rotations(**locals(), equivariant=False)


def check_equivariant(
    model: "nn.Module",
    inputs: "Tensor | None" = None,
    transforms: Iterable[Any] = (),
    *,
    input_shape: Sequence[int] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    min_consistency: float | None = None,
    seed: int | None = None,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    localize: bool | None = None,
    trials: int | None = None,
) -> CheckResult:
    """Return how far ``model(f(x))`` is from ``g(model(x))`` for each custom pair ``(f, g)`` in ``transforms``.

    ``g`` is applied to each output tensor; ``g=None`` means invariance under ``f``. Items may also
    be :class:`~pytest_equivariance.check.transforms.Transform` objects, which act on the outputs
    too (pass ``(t.on_input, None)`` for invariance under one). ``trials`` is accepted for
    uniformity with the other checks and ignored: every given transform is one trial.
    """
    _check_trials(trials)
    items = list(transforms)
    if not items:
        raise EquivarianceUsageError(
            "transforms is empty; pass a list of (input_fn, output_fn) pairs, e.g. [(flip_x, flip_y)]."
        )
    built: list[transforms_mod.Transform] = []
    for i, item in enumerate(items):
        if isinstance(item, transforms_mod.Transform):
            built.append(item)
            continue
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and callable(item[0])):
            raise EquivarianceUsageError(
                f"transforms[{i}] is {type(item).__name__}, not an (input_fn, output_fn) pair; "
                f"pass pairs of callables (output_fn may be None for invariance)."
            )
        f, g = item
        if g is not None and not callable(g):
            raise EquivarianceUsageError(f"transforms[{i}][1] is not callable; pass a function or None.")
        built.append(transforms_mod.custom(f, g, label=_pair_label(f, i)))
    # Transform objects act on outputs as group elements; pairs with output_fn=None mean invariance.
    equivariant = any(t.output_fn is not None or t.family != "custom" for t in built)
    spec = _Spec(
        kind="custom", equivariant=equivariant, model=model, inputs=inputs, input_shape=input_shape, dims=None,
        atol=atol, rtol=rtol, min_consistency=min_consistency, seed=seed, device=device,
        batch_size=batch_size, localize=localize, grid=False, mode="custom", margin=0,
    )
    return _run(spec, lambda ctx: built)


def _pair_label(f: Callable[..., Any], index: int) -> str:
    """A report label for a custom pair: the transform's or function's name, else its position."""
    owner = getattr(f, "__self__", None)
    if isinstance(owner, transforms_mod.Transform):
        return owner.label
    name = getattr(f, "__name__", "")
    return name if name and name != "<lambda>" else f"custom #{index}"


# -- argument handling -----------------------------------------------------------------------------


@dataclass
class _Spec:
    """A check's validated arguments."""

    kind: str
    equivariant: bool
    model: Any
    inputs: Any
    input_shape: Any
    dims: Any
    atol: float | None
    rtol: float | None
    min_consistency: float | None
    seed: int | None
    device: Any
    batch_size: int | None
    localize: bool | None
    grid: bool
    mode: str
    margin: int | None
    max_shift: int | None = None
    min_psnr: float | None = None
    group: Any = None  # check.groups.Group of a group check
    max_rel_l2: float | None = None  # when set, the verdict: rel_l2 of every trial at most this


@dataclass
class _Context:
    """What a check's transforms are drawn from once the reference outputs are in."""

    input_shape: tuple[int, ...]  # what the model sees (the crop, in crop mode)
    dims: tuple[int, ...]
    lattice: tuple[int, ...] | None  # output stride per dim that shifts must be multiples of
    seed: int
    outputs: Any = None  # the reference output leaves, when known before the transforms are drawn
    fields: dict[str, str] | None = None  # what build() chose: "input" / "output<path>" -> description


def _usage(message: str) -> EquivarianceUsageError:
    return EquivarianceUsageError(message)


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _validate_common(spec: _Spec) -> None:
    import torch
    from torch import nn

    if not isinstance(spec.model, nn.Module):
        raise _usage(
            f"model is {type(spec.model).__name__}, not a torch.nn.Module; pass the model instance "
            f"(call the factory first)."
        )
    if spec.inputs is not None and not isinstance(spec.inputs, torch.Tensor):
        raise _usage(
            f"inputs is {type(spec.inputs).__name__}, not a tensor; pass one (batch, channels, *spatial) "
            f"tensor, or input_shape= instead."
        )
    if spec.inputs is not None and spec.input_shape is not None:
        raise _usage("Both inputs and input_shape were given; pass only one of them.")
    for name in ("atol", "rtol", "min_consistency", "seed", "batch_size", "localize", "margin"):
        value = getattr(spec, name)
        if value is None:  # None means "the default" for every one of these
            continue
        expected = arguments.expected_value(name, value, "shift")
        if expected is not None:
            raise _usage(f"{name}={value!r} is not accepted; pass {expected}.")
    if spec.min_consistency is not None and spec.equivariant:
        raise _usage(
            "min_consistency judges classifiers' top-1 agreement, which only invariance checks measure; "
            "use check_shift_invariant / check_rotation_invariant, or drop min_consistency."
        )


def _input_shape(spec: _Spec) -> tuple[int, ...]:
    from pytest_equivariance.inputs import CHECK_SPATIAL, infer_input_shape

    if spec.inputs is not None:
        return tuple(spec.inputs.shape)
    if spec.input_shape is not None:
        shape = spec.input_shape
        if (
            not isinstance(shape, (tuple, list))
            or len(shape) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
        ):
            raise InputShapeError(
                f"input_shape={shape!r} is not a shape; pass positive integers, batch and channels first, "
                f"e.g. input_shape=(2, 3, 64, 64)."
            )
        return tuple(shape)
    from pytest_equivariance.check.groups import FIELD_TYPES

    field_types = getattr(spec.model, FIELD_TYPES, None)
    if field_types is not None:  # an escnn / e2cnn module: its in_type says the channels
        return (DEFAULT_BATCH, field_types[0].size, *CHECK_SPATIAL[2])
    return infer_input_shape(spec.model, spatial=CHECK_SPATIAL, batch=DEFAULT_BATCH)


def _resolve_dims(dims: Any, ndim: int, *, plane: bool) -> tuple[int, ...]:
    spatial = ndim - 2
    if spatial < 1:
        raise InputShapeError(
            f"Inputs of {ndim} dims have no spatial dims to transform; pass (batch, channels, *spatial) "
            f"inputs, e.g. input_shape=(2, 3, 64, 64)."
        )
    if dims is None:
        if plane:
            if spatial < 2:
                raise _usage(
                    "Rotations need two spatial dims but the inputs have one; pass 2-D or 3-D inputs, "
                    "or use check_equivariant with a custom transform."
                )
            return (-2, -1)
        return tuple(range(-min(spatial, 3), 0))
    if isinstance(dims, int):
        dims = (dims,)
    if not isinstance(dims, (tuple, list)) or not dims or not all(isinstance(d, int) for d in dims):
        raise _usage(f"dims={dims!r} is not a tuple of spatial dims; pass e.g. dims=(-2, -1).")
    out = []
    for d in dims:
        neg = d - ndim if d >= 0 else d
        if not -spatial <= neg <= -1:
            raise _usage(
                f"dims={tuple(dims)!r} names dim {d}, which is not a spatial dim of {ndim}-d inputs; "
                f"pass dims among {tuple(range(-spatial, 0))}."
            )
        out.append(neg)
    if len(set(out)) != len(out):
        raise _usage(f"dims={tuple(dims)!r} repeats a dim; pass each spatial dim once.")
    if len(out) > 3:
        raise _usage(f"dims={tuple(dims)!r} has more than three dims; pass at most three spatial dims.")
    if plane and len(out) != 2:
        raise _usage(f"dims={tuple(dims)!r} is not a plane; rotations need exactly two dims, e.g. dims=(-2, -1).")
    return tuple(out)


def _as_shift(value: Any, nd: int, name: str) -> tuple[float, ...]:
    """Return one shift as a tuple of pixels: integers stay ints, fractions are sub-pixel shifts."""
    if arguments.is_real(value) and nd == 1:
        value = (value,)
    if not arguments.real_tuple(value) or len(value) != nd:
        example = tuple([1] * nd) if nd > 1 else 1
        raise _usage(
            f"{name}={value!r} does not give one number of pixels per shifted dim ({nd}); pass e.g. "
            f"{name}={example!r}."
        )
    return tuple(int(v) if float(v).is_integer() else float(v) for v in value)


# -- shifts -------------------------------------------------------------------------------------------


def _check_shifts(
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
    equivariant: bool,
) -> CheckResult:
    model = _library_model(model)  # translations act on escnn / e2cnn fields' grids only
    if mode not in transforms.SHIFT_MODES:
        raise _usage(f"mode={mode!r} is not a shift mode; pass one of {', '.join(map(repr, transforms.SHIFT_MODES))}.")
    if max_shift is not None and (expected := arguments.expected_value("max_shift", max_shift, "shift")):
        raise _usage(f"max_shift={max_shift!r} is not accepted; pass {expected}.")
    if shift is not None and shifts is not None:
        raise _usage("Both shift and shifts were given; pass shift= for one shift or shifts= for a list.")
    if shifts is not None and not (isinstance(shifts, (tuple, list)) and shifts):
        raise _usage(f"shifts={shifts!r} is not a list of shifts; pass e.g. shifts=[(0, 1), (2, -3)].")
    _check_trials(trials)
    _check_measures(subpixel=subpixel, min_psnr=min_psnr, measure=measure)
    spec = _Spec(
        kind="shift_equivariant" if equivariant else "shift_invariant", equivariant=equivariant, model=model,
        inputs=inputs, input_shape=input_shape, dims=dims, atol=atol, rtol=rtol,
        min_consistency=min_consistency, seed=seed, device=device, batch_size=batch_size,
        localize=localize, grid=grid, mode=mode, margin=margin, max_shift=max_shift,
        min_psnr=min_psnr,
    )
    explicit = None if shift is None and shifts is None else ([shift] if shift is not None else list(shifts))
    n_trials = trials or DEFAULT_TRIALS
    entries = [v for e in (explicit or []) for v in (e if isinstance(e, (tuple, list)) else [e])]
    fractional = subpixel or any(arguments.is_real(v) and not float(v).is_integer() for v in entries)
    if fractional and mode == "zero":
        raise _usage(
            "Sub-pixel shifts need mode='circular' (the band-limited shift of the input) or mode='crop' "
            "(of the canvas); zero mode shifts whole pixels of zeros in."
        )
    if fractional and mode == "crop" and equivariant:
        raise _usage(
            "Sub-pixel shifts of an equivariant output need mode='circular': a crop's output is not periodic, "
            "so shifting it by a fraction of a pixel rings across it; use mode='circular', or check invariance "
            "in crop mode."
        )
    if mode == "crop" and max_shift is None and explicit:
        # The canvas only needs to reach the largest explicit shift.
        sizes = [math.ceil(abs(v)) for v in entries if arguments.is_real(v)]
        spec.max_shift = max(sizes + [1])
    if measure == "lie":
        return _run_lie(spec, ("translate_x", "translate_y"))

    def build(ctx: _Context) -> list[transforms.Transform]:
        nd = len(ctx.dims)
        canvas = (spec.max_shift,) * nd if mode == "crop" else None
        lattice = ctx.lattice or (1,) * nd
        if explicit is not None:
            name = "shift" if shift is not None else "shifts"
            deltas = [_as_shift(v, nd, name) for v in explicit]
            for delta in deltas:
                off = [(d, k) for d, k in zip(delta, lattice) if isinstance(d, int) and d % k]
                if off:
                    raise _usage(
                        f"{name} entry {delta} does not map onto the output grid, which is {lattice} times "
                        f"coarser than the input along dims {ctx.dims}; pass shifts that are multiples of "
                        f"{lattice}, or check invariance instead."
                    )
                if canvas is not None and any(abs(d) > m for d, m in zip(delta, canvas)):
                    raise _usage(
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
                raise _usage(
                    f"max_shift={limit} is smaller than the output stride {max(lattice)}, so no shift maps "
                    f"onto the output grid; pass max_shift={max(lattice)} or more."
                )
        return [transforms.shift(d, ctx.dims, mode, canvas) for d in deltas]

    return _run(spec, build)


def _default_max_shift(ctx: _Context, lattice: tuple[int, ...]) -> int:
    smallest = min(ctx.input_shape[d] for d in ctx.dims)
    return max(DEFAULT_MAX_SHIFT if smallest >= 4 * DEFAULT_MAX_SHIFT else max(1, smallest // 4), max(lattice))


def _check_trials(trials: Any) -> None:
    if trials is not None and (expected := arguments.expected_value("trials", trials, "shift")):
        raise _usage(f"trials={trials!r} is not accepted; pass {expected}.")


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


def _check_measures(**values: Any) -> None:
    for name, value in values.items():
        if value is not None and (expected := arguments.expected_value(name, value, "shift")):
            raise _usage(f"{name}={value!r} is not accepted; pass {expected}.")


# -- rotations ----------------------------------------------------------------------------------------


def _check_rotations(
    *,
    model: Any,
    inputs: Any,
    input_shape: Any,
    angles: Any,
    angle: Any,
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
    min_psnr: Any = None,
    measure: Any = "error",
    group: Any = None,
    input_fields: Any = None,
    output_fields: Any = None,
    equivariant: bool,
) -> CheckResult:
    from pytest_equivariance.check.groups import FIELD_TYPES

    model = _library_model(model)
    library = getattr(model, FIELD_TYPES, None)  # (in_type, out_type) of an escnn / e2cnn module
    if library is not None or group is not None or input_fields is not None or output_fields is not None:
        return _check_group(
            model=model, library=library, group=group, input_fields=input_fields, output_fields=output_fields,
            inputs=inputs, input_shape=input_shape, angles=angles, angle=angle, trials=trials, mode=mode,
            dims=dims, atol=atol, rtol=rtol, min_consistency=min_consistency, seed=seed, device=device,
            batch_size=batch_size, localize=localize, grid=grid, margin=margin, min_psnr=min_psnr,
            measure=measure, equivariant=equivariant,
        )
    mode = mode or "exact"
    if mode not in transforms.ROTATION_MODES:
        raise _usage(
            f"mode={mode!r} is not a rotation mode; pass 'exact' (quarter turns and flips) or 'interp' (any angle)."
        )
    if angle is not None and angles is not None:
        raise _usage("Both angle and angles were given; pass angle= for one angle or angles= for a list.")
    if angles is not None and not (isinstance(angles, (tuple, list)) and angles):
        raise _usage(f"angles={angles!r} is not a list of angles; pass e.g. angles=[90, 180] or ['hflip'].")
    _check_trials(trials)
    explicit = None if angle is None and angles is None else ([angle] if angle is not None else list(angles))
    name = "angle" if angle is not None else "angles"
    items: list[Any] = []
    for value in explicit or []:
        if isinstance(value, str):
            if value not in transforms.FLIP_NAMES:
                raise _usage(f"{name} entry {value!r} is not a rotation; pass degrees or 'hflip' / 'vflip'.")
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise _usage(f"{name} entry {value!r} is not an angle; pass degrees as a number.")
        elif mode == "exact" and value % 90:
            raise _usage(
                f"{name} entry {value!r} is not a multiple of 90 degrees, which mode='exact' needs; "
                f"pass mode='interp' for arbitrary angles."
            )
        items.append(value)
    spec = _Spec(
        kind="rotation_equivariant" if equivariant else "rotation_invariant", equivariant=equivariant,
        model=model, inputs=inputs, input_shape=input_shape, dims=dims, atol=atol, rtol=rtol,
        min_consistency=min_consistency, seed=seed, device=device, batch_size=batch_size,
        localize=localize, grid=grid, mode=mode, margin=margin, min_psnr=min_psnr,
    )
    _check_measures(min_psnr=min_psnr, measure=measure)
    if measure == "lie":
        return _run_lie(spec, ("rotate",))

    def build(ctx: _Context) -> list[transforms.Transform]:
        plane = ctx.dims
        chosen: list[Any] = items
        if explicit is None:
            if mode == "exact":
                chosen = [90, 180, 270]
            elif trials:
                rng = random.Random(ctx.seed)
                chosen = [round(rng.uniform(1.0, 359.0), 1) for _ in range(trials)]
            else:
                chosen = list(INTERP_ANGLES)
        out = []
        for value in chosen:
            if isinstance(value, str):
                out.append(transforms.flip(plane[transforms.FLIP_NAMES[value]], plane))
            elif mode == "exact":
                out.append(transforms.rot90(int(value) // 90, plane))
            else:
                out.append(transforms.rotation(value, plane))
        return out

    return _run(spec, build, plane=True)


# -- groups and fields --------------------------------------------------------------------------------


def _library_model(model: Any) -> Any:
    """Return escnn / e2cnn modules as plain modules between tensors; any other model as it is."""
    from pytest_equivariance.check import groups

    return groups.wrap_library_module(model) if groups.is_equivariant_module(model) else model


def _check_group(
    *, model: Any, library: Any, group: Any, input_fields: Any, output_fields: Any, inputs: Any, input_shape: Any,
    angles: Any, angle: Any, trials: Any, mode: Any, dims: Any, atol: Any, rtol: Any, min_consistency: Any,
    seed: Any, device: Any, batch_size: Any, localize: Any, grid: Any, margin: Any, min_psnr: Any, measure: Any,
    equivariant: bool,
) -> CheckResult:
    """A rotation check over the elements of a group, acting on fields (check.groups)."""
    from pytest_equivariance.check import groups

    kind = "rotation_equivariant" if equivariant else "rotation_invariant"
    if (angles is not None or angle is not None) and group is not None:
        raise _usage(
            "Both group and angles were given; group= chooses the elements, so drop angles= (or drop "
            "group= and keep the angles)."
        )
    if angles is not None or angle is not None:
        raise _usage(
            "An escnn or e2cnn module is checked over the elements of its group; drop angles=, or pass "
            "group= for a subgroup (e.g. group='C4')."
        )
    if library is not None and (input_fields is not None or output_fields is not None):
        raise _usage(
            "The module's field types are read from its in_type and out_type; drop input_fields and "
            "output_fields."
        )
    if group is None and library is None:
        raise _usage(
            "input_fields and output_fields say how a group acts on channels, so they need group=; pass "
            "e.g. group='C4' (quarter turns) or group='D4' (with flips)."
        )
    if not equivariant and output_fields is not None:
        raise _usage(
            "An invariant check's output must not change at all, so output_fields do not apply; drop "
            "output_fields, or use check_rotation_equivariant."
        )
    if measure != "error":
        raise _usage(f"measure={measure!r} is not available with group=; use the default measure='error'.")
    model_group = groups.library_group(library[0]) if library is not None else None
    chosen = groups.parse_group(group) if group is not None else model_group
    assert chosen is not None
    if mode is None:
        mode = "exact" if chosen.exact else "interp"
    if mode not in transforms.ROTATION_MODES:
        raise _usage(
            f"mode={mode!r} is not a rotation mode; pass 'exact' (quarter turns and flips) or 'interp' (any angle)."
        )
    if mode == "exact" and not chosen.exact:
        raise _usage(
            f"{chosen.name} has rotations that are not multiples of 90 degrees, which mode='exact' cannot "
            f"apply; drop mode= (they are resampled band-limitedly) or pass mode='interp'."
        )
    _check_trials(trials)
    if trials and chosen.finite:  # every element is checked; trials only draw elements of SO2 and O2
        trials = None
    spec = _Spec(
        kind=kind, equivariant=equivariant, model=model, inputs=inputs, input_shape=input_shape, dims=dims,
        atol=atol, rtol=rtol, min_consistency=min_consistency, seed=seed, device=device, batch_size=batch_size,
        localize=localize, grid=grid, mode=mode, margin=margin, min_psnr=min_psnr, group=chosen,
        max_rel_l2=GROUP_REL_L2 if mode == "interp" and atol is None and rtol is None and min_psnr is None else None,
    )
    if library is not None and inputs is None and input_shape is None:
        spec.input_shape = (DEFAULT_BATCH, library[0].size, *GROUP_SPATIAL)

    def build(ctx: _Context) -> list[transforms.Transform]:
        plane = ctx.dims
        if len(plane) != 2:
            raise _usage(f"Rotations act on a plane of 2 spatial dims; pass dims= naming two, got {plane}.")
        fin, outs = groups.layouts(chosen, library, input_fields, output_fields, ctx.input_shape, ctx.outputs or [])
        ctx.fields = {"input": fin.description, **{f"output{p}": f.description for p, f in outs.items()}}
        return groups.element_transforms(
            chosen, chosen.elements(trials=trials, seed=ctx.seed), (plane[0], plane[1]), mode, fin, outs,
            library=library,
        )

    return _run(spec, build, plane=True)


# -- the run ------------------------------------------------------------------------------------------


def _setting_up(spec: _Spec) -> tuple[Any, "torch.device", "torch.dtype", int, tuple[int, ...]]:
    """Validate a check's common arguments; return its model, device, dtype, seed and input shape."""
    import torch

    _validate_common(spec)
    model = spec.model
    dev = runner.resolve_device(spec.device, model)
    dtype = runner.model_dtype(model) or (
        spec.inputs.dtype if spec.inputs is not None and spec.inputs.is_floating_point() else torch.get_default_dtype()
    )
    seed = 0 if spec.seed is None else spec.seed
    return model, dev, dtype, seed, _input_shape(spec)


def _run(spec: _Spec, build: Callable[[_Context], list[transforms.Transform]], *, plane: bool = False) -> CheckResult:
    model, dev, dtype, seed, shape = _setting_up(spec)
    dims = _resolve_dims(spec.dims, len(shape), plane=plane) if spec.kind != "custom" else ()
    notes: list[str] = []

    x, model_shape = _source(spec, shape, dims, dtype, dev, seed, notes)
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

        ctx = _Context(model_shape, dims, lattice, seed, ref_leaves)
        transform_list = build(ctx)
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
            dtype=_dtype_name(dtype),
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


def _run_lie(spec: _Spec, generators: tuple[str, ...]) -> CheckResult:
    """Run a check by Lie derivatives (``measure="lie"``): one trial per generator of the family.

    A trial passes when ``max |L f(x)| <= atol + rtol * max |J_f(x)·G x|``: the derivative of the
    output along the generator is the natural scale, so the dtype's tolerances apply as they do to
    finite transforms. Invariance checks take the invariant form (outputs are not moved back).
    """
    from pytest_equivariance.check import lie

    model, dev, dtype, seed, shape = _setting_up(spec)
    if len(shape) != 4:
        raise _usage(
            f"measure='lie' acts on images of shape (N, C, H, W), got inputs of shape {tuple(shape)}; pass "
            f"images, or measure='error' for other inputs."
        )
    dims = _resolve_dims(spec.dims, len(shape), plane=True)
    if dims != (-2, -1):
        raise _usage(
            f"measure='lie' differentiates along the image plane (dims (-2, -1)), not dims {dims}; drop dims= "
            f"or use measure='error'."
        )
    notes: list[str] = [f"measured by Lie derivatives ({', '.join(generators)}; spectral, per pixel and per radian)"]
    spec.mode = "circular" if spec.mode in transforms.SHIFT_MODES else spec.mode
    x, _ = _source(spec, shape, dims, dtype, dev, seed, notes)
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
        device=str(dev), dtype=_dtype_name(dtype), mode=spec.mode, dims=dims, input_shape=tuple(shape),
        notes=notes, measure="lie", weights_fingerprint=fingerprint.fingerprint_model(model),
        inputs_fingerprint=fingerprint.fingerprint_tensors([("inputs", x)]),
    )
    for listener in list(RESULT_LISTENERS):
        listener(result)
    return result


def _source(
    spec: _Spec,
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
            notes.append(f"inputs cast from {_dtype_name(x.dtype)} to the model's {_dtype_name(dtype)}")
        x = x.to(device=dev, dtype=dtype if x.is_floating_point() else x.dtype)
    else:
        from pytest_equivariance.inputs import natural_images

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


def _accept_reference(spec: _Spec, ref_leaves: runner.Leaves) -> None:
    """Reject reference outputs a check cannot use: NaN/inf, or no class scores for min_consistency."""
    _check_finite(ref_leaves, "the reference input")
    if spec.min_consistency is not None and not any(metrics.is_classifier_output(t) for _, t in ref_leaves):
        raise _usage(
            "min_consistency needs classifier outputs of shape (batch, classes), which this model does "
            "not return; drop min_consistency to compare outputs with atol/rtol."
        )


def _identity(spec: _Spec, dims: tuple[int, ...]) -> transforms.Transform | None:
    if spec.mode in transforms.SHIFT_MODES:
        canvas = (spec.max_shift,) * len(dims) if spec.mode == "crop" else None
        return transforms.shift((0,) * len(dims), dims, spec.mode, canvas)
    return None


def _check_finite(leaves: runner.Leaves, what: str) -> None:
    import torch

    for path, t in leaves:
        if t.is_floating_point() or t.is_complex():
            if not bool(torch.isfinite(t).all()):
                raise _usage(
                    f"The model's output{path} contains NaN or inf for {what}; fix the model or its "
                    f"initialisation, or pass inputs= in the range it expects."
                )


def _strides(
    spec: _Spec, leaves: runner.Leaves, model_shape: tuple[int, ...], dims: tuple[int, ...]
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
                raise _usage(
                    f"The output{path} is larger than the input along dim {d} ({n_out} > {n_in}); "
                    f"check upsampling models with check_equivariant and a custom output transform."
                )
            if n_in % n_out == 0:
                stride.append(n_in // n_out)
            elif spec.mode in ("crop", "zero") and n_out > 0:
                stride.append(max(1, round(n_in / n_out)))
            else:
                raise _usage(
                    f"The output{path} has {n_out} pixels along dim {d} for {n_in} input pixels, not an "
                    f"integer fraction, so a circular shift has no exact counterpart on it; pad the model "
                    f"to keep sizes, or pass mode='crop' or mode='zero'."
                )
        strides[path] = tuple(stride)
    if not strides:
        raise _usage(
            f"The model's output has no spatial dims to shift or rotate (shapes "
            f"{', '.join(str(tuple(t.shape)) for _, t in leaves)}); use the invariance check instead."
        )
    if spec.kind.startswith("rotation"):
        return strides, None
    lattice = tuple(math.lcm(*(s[i] for s in strides.values())) for i in range(len(dims)))
    return strides, lattice if any(k > 1 for k in lattice) else None


def _margin(
    spec: _Spec,
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
    spec: _Spec,
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
        raise _usage(
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
                raise _usage(
                    f"Nothing is left to compare in output{path} under {t.label} after the border margin of "
                    f"{margin} pixels; pass a larger input_shape, a smaller max_shift, margin=, or mode='circular'."
                )
        if a.shape != b.shape:
            raise _usage(
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
    spec: _Spec,
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
