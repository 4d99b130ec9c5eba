"""What every check shares before it runs: its validated arguments, defaults, input shape and dims."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance import forms, guards
from pytest_equivariance.check import arguments, batches, runner
from pytest_equivariance.errors import EquivarianceUsageError, InputShapeError, shown

if TYPE_CHECKING:
    import torch


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


#: Volume size a group check of an escnn module of 3-D rotations uses when no shape is given.
VOLUME_SPATIAL = (15, 15, 15)


#: Output pixels left out inside the disk's edge in ``mode="interp"``.
INTERP_MARGIN = 2


@dataclass
class CheckSpec:
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
    limit: int | None = None  # at most this many images of a stream
    progress: bool = True  # a progress bar on a terminal's stderr for long streams
    protocol: Any = None  # check.protocols.Protocol of an evaluation protocol
    output_geometry: Any = None  # check.geometry: Points / Boxes, or a dict of them by output leaf
    min_accuracy: float | None = None  # verdict: mean top-1 accuracy under the transforms at least this
    max_accuracy_drop: float | None = None  # verdict: clean accuracy minus that at most this
    channel_figures: bool = False  # measure the per-channel relative error of spatial outputs (scale checks)
    max_channel_error: float | None = None  # verdict: that error of every trial at most this


@dataclass
class DrawContext:
    """What a check's transforms are drawn from once the reference outputs are in."""

    input_shape: tuple[int, ...]  # what the model sees (the crop, in crop mode)
    dims: tuple[int, ...]
    lattice: tuple[int, ...] | None  # output stride per dim that shifts must be multiples of
    seed: int
    outputs: Any = None  # the reference output leaves, when known before the transforms are drawn
    fields: dict[str, str] | None = None  # what build() chose: "input" / "output<path>" -> description


def usage_error(message: str) -> EquivarianceUsageError:
    return EquivarianceUsageError(message)


def entry_name(kind: str) -> str:
    """The public function that runs checks of ``kind``: ``check_shift_equivariant``, ``check_equivariant``."""
    return "check_equivariant" if kind == "custom" else f"check_{kind}"


def dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def validate_common(spec: CheckSpec) -> None:

    entry = entry_name(spec.kind)
    spec.model = guards.shipped_module(spec.model, entry)
    if spec.inputs is not None and spec.input_shape is not None and spec.protocol is None:
        raise usage_error("Both inputs and input_shape were given; pass only one of them.")
    guards.require_materialised(spec.model, entry)
    if spec.inputs is not None and not batches.is_stream(spec.inputs):
        guards.require_tensor(spec.inputs, "inputs", entry)
    for name in ("atol", "rtol", "min_consistency", "seed", "batch_size", "localize", "margin", "grid", "limit",
                 "progress", "min_accuracy", "max_accuracy_drop"):
        value = getattr(spec, name)
        if value is None:  # None means "the default" for every one of these
            continue
        expected = arguments.expected_value(name, value, "shift")
        if expected is not None:
            raise usage_error(f"{name}={shown(value)} is not accepted; pass {expected}.")
    for name in ("min_consistency", "min_accuracy", "max_accuracy_drop"):
        if getattr(spec, name) is not None and spec.equivariant:
            raise usage_error(
                f"{name} judges classifiers' top-1 predictions, which only invariance checks measure; "
                f"use check_shift_invariant / check_rotation_invariant, or drop {name}."
            )


def input_shape_of(spec: CheckSpec, source: "batches.Batches | None" = None) -> tuple[int, ...]:
    from pytest_equivariance.inputs import CHECK_SPATIAL, infer_input_shape

    if source is not None:
        return tuple(source.first().images.shape)
    if spec.input_shape is not None:
        return guards.require_shape(spec.input_shape, "input_shape", entry_name(spec.kind))
    from pytest_equivariance.check.libraries import FIELD_TYPES

    exported = forms.exported_shape(spec.model)
    if exported is not None:  # an exported module accepts the shape it was exported with
        return exported
    field_types = getattr(spec.model, FIELD_TYPES, None)
    if field_types is not None:  # an escnn / e2cnn module: its in_type says the channels
        return (DEFAULT_BATCH, field_types[0].size, *CHECK_SPATIAL[getattr(field_types[0].gspace, "dimensionality", 2)])
    return infer_input_shape(spec.model, spatial=CHECK_SPATIAL, batch=DEFAULT_BATCH)


def resolve_dims(dims: Any, ndim: int, *, plane: bool) -> tuple[int, ...]:
    spatial = ndim - 2
    if spatial < 1:
        raise InputShapeError(
            f"Inputs of {ndim} dims have no spatial dims to transform; pass (batch, channels, *spatial) "
            f"inputs, e.g. input_shape=(2, 3, 64, 64)."
        )
    if dims is None:
        if plane:
            if spatial < 2:
                raise usage_error(
                    "Rotations need two spatial dims but the inputs have one; pass 2-D or 3-D inputs, "
                    "or use check_equivariant with a custom transform."
                )
            return (-2, -1)
        return tuple(range(-min(spatial, 3), 0))
    if isinstance(dims, int):
        dims = (dims,)
    if not isinstance(dims, (tuple, list)) or not dims or not all(isinstance(d, int) for d in dims):
        raise usage_error(f"dims={shown(dims)} is not a tuple of spatial dims; pass e.g. dims=(-2, -1).")
    out = []
    for d in dims:
        neg = d - ndim if d >= 0 else d
        if not -spatial <= neg <= -1:
            raise usage_error(
                f"dims={shown(tuple(dims))} names dim {d}, which is not a spatial dim of {ndim}-d inputs; "
                f"pass dims among {tuple(range(-spatial, 0))}."
            )
        out.append(neg)
    if len(set(out)) != len(out):
        raise usage_error(f"dims={shown(tuple(dims))} repeats a dim; pass each spatial dim once.")
    if len(out) > 3:
        raise usage_error(f"dims={shown(tuple(dims))} has more than three dims; pass at most three spatial dims.")
    if plane and len(out) != 2:
        raise usage_error(f"dims={shown(tuple(dims))} is not a plane; rotations need exactly two dims, e.g. dims=(-2, -1).")
    return tuple(out)


def check_trials(trials: Any) -> None:
    if trials is not None and (expected := arguments.expected_value("trials", trials, "shift")):
        raise usage_error(f"trials={shown(trials)} is not accepted; pass {expected}.")


def check_measures(**values: Any) -> None:
    for name, value in values.items():
        if value is not None and (expected := arguments.expected_value(name, value, "shift")):
            raise usage_error(f"{name}={shown(value)} is not accepted; pass {expected}.")


@dataclass
class Setting:
    """A check's validated model, device, dtype, seed, input shape, and its inputs as batches (None:
    generated images)."""

    model: Any
    device: "torch.device"
    dtype: "torch.dtype"
    seed: int
    shape: tuple[int, ...]
    source: "batches.Batches | None"
    eager: Any = None  # the module hooks and profiles run on (a compiled model's original); None: none
    notes: list[str] = field(default_factory=list)  # what the model's form changes (forms.note)


def setting_up(spec: CheckSpec) -> Setting:
    """Validate a check's common arguments; return what it runs with (the first batch is read here)."""
    import torch

    validate_common(spec)
    model = spec.model
    dev = runner.resolve_device(spec.device, model)
    source = None
    if spec.inputs is not None:
        source = batches.as_batches(spec.inputs, entry_name(spec.kind), limit=spec.limit)
    elif spec.limit is not None:
        raise usage_error("limit= caps the images of inputs, but no inputs were given; pass inputs= or drop limit.")
    first = source.first().images if source is not None else None
    dtype = runner.model_dtype(model) or (
        first.dtype if first is not None and first.is_floating_point() else torch.get_default_dtype()
    )
    seed = 0 if spec.seed is None else spec.seed
    note = forms.note(model)
    return Setting(model, dev, dtype, seed, input_shape_of(spec, source), source, eager=forms.original(model),
                   notes=[note] if note else [])


def library_model(model: Any) -> Any:
    """Return escnn / e2cnn modules as plain modules between tensors; any other model as it is."""
    from pytest_equivariance.check import libraries

    return libraries.wrap_library_module(model) if libraries.is_equivariant_module(model) else model
