"""Rotation checks: ``check_rotation_equivariant`` / ``check_rotation_invariant``, by angles or over a group.

With ``group=`` (or an escnn / e2cnn module) the elements of a group act on fields of channels
(:mod:`pytest_equivariance.check.groups`, :mod:`.volume_groups`, :mod:`.fields`); otherwise quarter
turns, flips or resampled angles act on scalar maps.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from pytest_equivariance.check import geometry, transforms
from pytest_equivariance.check.result import CheckResult
from pytest_equivariance.check.run import run_check, run_lie_check
from pytest_equivariance.check.spec import (
    DEFAULT_BATCH,
    GROUP_REL_L2,
    GROUP_SPATIAL,
    INTERP_ANGLES,
    VOLUME_SPATIAL,
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


def check_rotation_equivariant(
    model: "nn.Module",
    inputs: "Tensor | Iterable[Any] | None" = None,
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
    limit: int | None = None,
    progress: bool = True,
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
    field types come from the module. On volumes ``(N, C, D, H, W)``, ``group="O"`` (the cube's 24
    rotations, exact), ``"Oh"`` (with inversions), ``"SO3"`` and ``"O3"`` (the cube's elements, exact,
    and random ones, resampled, judged apart) act the same way, with ``"irrep(l)"`` the Wigner
    D-matrices of order l. See ``docs/groups.md``.
    """
    return _rotation_check(**locals(), equivariant=True)


def check_rotation_invariant(
    model: "nn.Module",
    inputs: "Tensor | Iterable[Any] | None" = None,
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
    limit: int | None = None,
    progress: bool = True,
    min_accuracy: float | None = None,
    max_accuracy_drop: float | None = None,
) -> CheckResult:
    """Return how far ``model(rotate(x))`` is from ``model(x)``; arguments as :func:`check_rotation_equivariant`.

    With labelled inputs, ``min_accuracy`` / ``max_accuracy_drop`` judge the top-1 accuracy under the
    rotations, as for :func:`~pytest_equivariance.check_shift_invariant`."""
    return _rotation_check(**locals(), equivariant=False)


def _rotation_check(
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
    limit: Any = None,
    progress: Any = True,
    min_accuracy: Any = None,
    max_accuracy_drop: Any = None,
    equivariant: bool,
) -> CheckResult:
    from pytest_equivariance.check.libraries import FIELD_TYPES
    # Options both paths (angles, or a group's elements) hand to the spec as they are.
    shared_options = {"limit": limit, "progress": progress, "min_accuracy": min_accuracy,
                      "max_accuracy_drop": max_accuracy_drop}

    model = library_model(model)
    library = getattr(model, FIELD_TYPES, None)  # (in_type, out_type) of an escnn / e2cnn module
    output_fields, located = geometry.split(output_fields)  # coordinates move on their own (check.geometry)
    if located is not None and not equivariant:
        raise usage_error(
            "An invariant check's output must not change at all, so output_fields do not apply; drop "
            "output_fields, or use check_rotation_equivariant."
        )
    if located is not None and measure == "lie":
        raise usage_error("measure='lie' differentiates image-shaped outputs; use measure='error' for points and boxes.")
    shared_options["output_geometry"] = located
    if library is not None or group is not None or input_fields is not None or output_fields is not None:
        return group_check(
            model=model, library=library, group=group, input_fields=input_fields, output_fields=output_fields,
            inputs=inputs, input_shape=input_shape, angles=angles, angle=angle, trials=trials, mode=mode,
            dims=dims, atol=atol, rtol=rtol, min_consistency=min_consistency, seed=seed, device=device,
            batch_size=batch_size, localize=localize, grid=grid, margin=margin, min_psnr=min_psnr,
            measure=measure, equivariant=equivariant, shared_options=shared_options,
        )
    mode = "exact" if mode is None else mode
    if not isinstance(mode, str) or mode not in transforms.ROTATION_MODES:
        raise usage_error(
            f"mode={shown(mode)} is not a rotation mode; pass 'exact' (quarter turns and flips) or 'interp' (any angle)."
        )
    if angle is not None and angles is not None:
        raise usage_error("Both angle and angles were given; pass angle= for one angle or angles= for a list.")
    if angles is not None and not (isinstance(angles, (tuple, list)) and angles):
        raise usage_error(f"angles={shown(angles)} is not a list of angles; pass e.g. angles=[90, 180] or ['hflip'].")
    check_trials(trials)
    explicit = None if angle is None and angles is None else ([angle] if angle is not None else list(angles))
    name = "angle" if angle is not None else "angles"
    items: list[Any] = []
    for value in explicit or []:
        if isinstance(value, str):
            if value not in transforms.FLIP_NAMES:
                raise usage_error(f"{name} entry {shown(value)} is not a rotation; pass degrees or 'hflip' / 'vflip'.")
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise usage_error(f"{name} entry {shown(value)} is not an angle; pass degrees as a number.")
        elif mode == "exact" and value % 90:
            raise usage_error(
                f"{name} entry {shown(value)} is not a multiple of 90 degrees, which mode='exact' needs; "
                f"pass mode='interp' for arbitrary angles."
            )
        items.append(value)
    spec = CheckSpec(
        kind="rotation_equivariant" if equivariant else "rotation_invariant", equivariant=equivariant,
        model=model, inputs=inputs, input_shape=input_shape, dims=dims, atol=atol, rtol=rtol,
        min_consistency=min_consistency, seed=seed, device=device, batch_size=batch_size,
        localize=localize, grid=grid, mode=mode, margin=margin, min_psnr=min_psnr, **shared_options,
    )
    check_measures(min_psnr=min_psnr, measure=measure)
    if measure == "lie":
        return run_lie_check(spec, ("rotate",))

    def build(ctx: DrawContext) -> list[transforms.Transform]:
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

    return run_check(spec, build, plane=True)


def group_check(
    *, model: Any, library: Any, group: Any, input_fields: Any, output_fields: Any, inputs: Any, input_shape: Any,
    angles: Any, angle: Any, trials: Any, mode: Any, dims: Any, atol: Any, rtol: Any, min_consistency: Any,
    seed: Any, device: Any, batch_size: Any, localize: Any, grid: Any, margin: Any, min_psnr: Any, measure: Any,
    equivariant: bool, shared_options: dict[str, Any],
) -> CheckResult:
    """A rotation check over the elements of a group, acting on fields (check.groups, check.fields)."""
    from pytest_equivariance.check import fields, groups, libraries

    kind = "rotation_equivariant" if equivariant else "rotation_invariant"
    if (angles is not None or angle is not None) and group is not None:
        raise usage_error(
            "Both group and angles were given; group= chooses the elements, so drop angles= (or drop "
            "group= and keep the angles)."
        )
    if angles is not None or angle is not None:
        raise usage_error(
            "An escnn or e2cnn module is checked over the elements of its group; drop angles=, or pass "
            "group= for a subgroup (e.g. group='C4')."
        )
    if library is not None and (input_fields is not None or output_fields is not None):
        raise usage_error(
            "The module's field types are read from its in_type and out_type; drop input_fields and "
            "output_fields."
        )
    if group is None and library is None:
        raise usage_error(
            "input_fields and output_fields say how a group acts on channels, so they need group=; pass "
            "e.g. group='C4' (quarter turns) or group='D4' (with flips)."
        )
    if not equivariant and output_fields is not None:
        raise usage_error(
            "An invariant check's output must not change at all, so output_fields do not apply; drop "
            "output_fields, or use check_rotation_equivariant."
        )
    if measure != "error":
        raise usage_error(f"measure={shown(measure)} is not available with group=; use the default measure='error'.")
    model_group = libraries.library_group(library[0]) if library is not None else None
    chosen = groups.parse_group(group) if group is not None else model_group
    assert chosen is not None
    if mode is None:
        mode = "exact" if chosen.exact else "interp"
    if not isinstance(mode, str) or mode not in transforms.ROTATION_MODES:
        raise usage_error(
            f"mode={shown(mode)} is not a rotation mode; pass 'exact' (quarter turns and flips) or 'interp' (any angle)."
        )
    if mode == "exact" and not chosen.exact:
        raise usage_error(
            f"{chosen.name} has rotations that are not multiples of 90 degrees, which mode='exact' cannot "
            f"apply; drop mode= (they are resampled band-limitedly) or pass mode='interp'."
        )
    check_trials(trials)
    if trials and chosen.finite:  # every element is checked; trials only draw elements of the continuous groups
        trials = None
    spec = CheckSpec(
        kind=kind, equivariant=equivariant, model=model, inputs=inputs, input_shape=input_shape, dims=dims,
        atol=atol, rtol=rtol, min_consistency=min_consistency, seed=seed, device=device, batch_size=batch_size,
        localize=localize, grid=grid, mode=mode, margin=margin, min_psnr=min_psnr, group=chosen,
        max_rel_l2=GROUP_REL_L2 if mode == "interp" and atol is None and rtol is None and min_psnr is None else None,
        **shared_options,
    )
    space = chosen.spatial_dims
    given = input_shape if input_shape is not None else getattr(inputs, "shape", None)  # torch.Size is a tuple
    if space == 3 and isinstance(given, (tuple, list)) and len(given) < 5:
        _refuse_volume_group(chosen.name, tuple(given))
    if library is not None and inputs is None and input_shape is None:
        spec.input_shape = (DEFAULT_BATCH, library[0].size, *(GROUP_SPATIAL if space == 2 else VOLUME_SPATIAL))

    def build(ctx: DrawContext) -> list[transforms.Transform]:
        grid = ctx.dims
        if len(grid) != space and space == 3:
            _refuse_volume_group(chosen.name, tuple(ctx.input_shape))
        if len(grid) != space:
            raise usage_error(f"Rotations act on a plane of 2 spatial dims; pass dims= naming two, got {grid}.")
        fin, outs = fields.layouts(chosen, library, input_fields, output_fields, ctx.input_shape, ctx.outputs or [])
        ctx.fields = {"input": fin.description, **{f"output{p}": f.description for p, f in outs.items()}}
        return fields.element_transforms(
            chosen, chosen.elements(trials=trials, seed=ctx.seed), grid, mode, fin, outs, library=library,
        )

    # A volume's three dims are found as shifts find theirs (the trailing dims); a plane's as rotations do.
    return run_check(spec, build, plane=space == 2)


def _refuse_volume_group(name: str, shape: tuple[int, ...]) -> None:
    raise usage_error(
        f"group={name!r} rotates volumes, but the inputs {shape} have {len(shape) - 2} spatial dims; pass "
        f"(N, C, D, H, W) inputs, or a group of the plane such as 'C4' or 'D4' for images."
    )

