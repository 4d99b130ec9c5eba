"""The equivariance markers: their names, the keywords each accepts, and how a misuse is worded."""

from __future__ import annotations

import pytest

# Torch-free: the modes and flip names a marker may name live with the transforms they select.
from pytest_equivariance.check.arguments import expected_value, is_int, real_tuple
from pytest_equivariance.errors import shown


#: Marker name -> the family of its check ("shift", "rotation" or "scale") and whether it is invariance.
MARKERS: dict[str, tuple[str, bool]] = {
    "shift_equivariant": ("shift", False),
    "shift_invariant": ("shift", True),
    "rotation_equivariant": ("rotation", False),
    "rotation_invariant": ("rotation", True),
    "scale_equivariant": ("scale", False),
    "scale_invariant": ("scale", True),
    "e3_equivariant": ("cloud", False),
    "e3_invariant": ("cloud", True),
    "permutation_equivariant": ("permutation", False),
    "permutation_invariant": ("permutation", True),
}


_COMMON_KEYWORDS = (
    "input_shape", "trials", "mode", "dims", "atol", "rtol", "seed", "device", "batch_size",
    "localize", "grid", "margin", "min_psnr", "measure", "limit", "progress",
)  # fmt: skip


_FAMILY_KEYWORDS = {
    "shift": ("max_shift", "shifts", "shift", "subpixel"),
    "rotation": ("angles", "angle", "group", "input_fields", "output_fields"),
    "scale": ("scales", "scale", "scale_range"),
}


#: Every keyword a marker accepts, in the order the docs list them.
MARKER_KEYWORDS = (
    "input_shape", "max_shift", "shifts", "shift", "subpixel", "trials", "mode", "angles", "angle", "dims",
    "group", "input_fields", "output_fields", "atol", "rtol", "min_consistency", "min_accuracy",
    "max_accuracy_drop", "protocol", "min_psnr", "measure", "seed", "device", "batch_size", "localize", "grid",
    "margin", "limit", "progress", "scales", "scale", "scale_range", "max_channel_error", "permute", "positions",
    "edge_index", "edge_attrs",
)  # fmt: skip

#: Point-cloud and graph markers take their own keywords (no grid: no input_shape, mode or dims).
_CLOUD_KEYWORDS = ("trials", "atol", "rtol", "seed", "device", "batch_size", "localize", "positions", "edge_index",
                   "edge_attrs", "limit")
_CLOUD_MARKER_KEYWORDS = {
    "e3_equivariant": ("group", "input_fields", "output_fields") + _CLOUD_KEYWORDS,
    "e3_invariant": ("group", "input_fields") + _CLOUD_KEYWORDS,
    "permutation_equivariant": ("permute",) + _CLOUD_KEYWORDS,
    "permutation_invariant": ("permute",) + _CLOUD_KEYWORDS,
}

#: Keywords only invariance markers take (classifier figures), and those only the markers that run protocols take.
_INVARIANT_KEYWORDS = ("min_consistency", "min_accuracy", "max_accuracy_drop")
_PROTOCOL_KEYWORDS = ("protocol",)
_PROTOCOL_MARKERS = ("shift_invariant", "scale_invariant")
#: Keywords of shift_equivariant beyond its family's: geometric outputs (points, boxes) move with a shift.
_SHIFT_EQUIVARIANT_KEYWORDS = ("output_fields",)
#: Keywords of scale_equivariant beyond its family's: scale channels, Rahman & Yeh's verdict, the border.
_SCALE_EQUIVARIANT_KEYWORDS = ("output_fields", "max_channel_error", "margin")


_MARKER_DOCS = {
    "shift_equivariant": "check that the test's model commutes with shifts: model(shift(x)) == shift(model(x))",
    "shift_invariant": "check that the test's model ignores shifts: model(shift(x)) == model(x)",
    "rotation_equivariant": "check that the test's model commutes with rotations: model(rot(x)) == rot(model(x))",
    "rotation_invariant": "check that the test's model ignores rotations: model(rot(x)) == model(x)",
    "scale_equivariant": "check that the test's model commutes with rescaling: model(rescale(x)) == rescale(model(x))",
    "scale_invariant": "check that the test's model ignores rescaling: model(rescale(x)) == model(x)",
    "e3_equivariant": "check that the test's point-cloud model commutes with E(3): model(g·x) == g·model(x)",
    "e3_invariant": "check that the test's point-cloud model ignores E(3): model(g·x) == model(x)",
    "permutation_equivariant": "check that the test's graph model commutes with node permutations",
    "permutation_invariant": "check that the test's graph model ignores node permutations",
}


def allowed_keywords(marker: str) -> tuple[str, ...]:
    """Return the keyword arguments marker ``marker`` accepts."""
    if marker in _CLOUD_MARKER_KEYWORDS:
        return _CLOUD_MARKER_KEYWORDS[marker]
    family, invariant = MARKERS[marker]
    extra = _INVARIANT_KEYWORDS if invariant else ()
    if marker in _PROTOCOL_MARKERS:
        extra += _PROTOCOL_KEYWORDS
    if marker == "shift_equivariant":
        extra += _SHIFT_EQUIVARIANT_KEYWORDS
    if marker == "scale_equivariant":
        extra += _SCALE_EQUIVARIANT_KEYWORDS
    common = _COMMON_KEYWORDS if family != "scale" else tuple(k for k in _COMMON_KEYWORDS if k not in ("grid", "margin"))
    return tuple(k for k in MARKER_KEYWORDS if k in common + _FAMILY_KEYWORDS[family] + extra)


def marker_usage_error(marker: "pytest.Mark", nodeid: str) -> str | None:
    """Return a one-sentence usage error for an equivariance marker, or None when it is valid."""
    where = f"@pytest.mark.{marker.name} on {nodeid}"
    if marker.args:
        return (
            f"{where} got positional arguments {marker.args!r}; "
            f"pass keyword arguments, e.g. @pytest.mark.{marker.name}(input_shape=(1, 3, 32, 32))."
        )
    allowed = allowed_keywords(marker.name)
    for name, value in marker.kwargs.items():
        if name not in allowed:
            hint = ""
            if name in _INVARIANT_KEYWORDS:
                hint = f" ({name} applies to invariance checks only)"
            elif name in _PROTOCOL_KEYWORDS:
                hint = f" ({name} applies to {' and '.join(_PROTOCOL_MARKERS)} only)"
            elif name in _SHIFT_EQUIVARIANT_KEYWORDS and marker.name.startswith("shift"):
                hint = f" ({name} applies to equivariance checks only)"
            elif name == "output_fields" and marker.name in _CLOUD_MARKER_KEYWORDS:
                hint = " (an invariance check compares its outputs unchanged)"
            elif name in MARKER_KEYWORDS:
                hint = " (it belongs to the other family of markers)"
            return (
                f"{where} got an unknown argument {name!r}{hint}; "
                f"use one of: {', '.join(allowed)}."
            )
        expected = expected_value(name, value, MARKERS[marker.name][0])
        if expected is not None:
            return f"{where} got {name}={shown(value)}; pass {expected}."
    kwargs = marker.kwargs
    for single, many in (("shift", "shifts"), ("shift", "max_shift"), ("angle", "angles")):
        if single in kwargs and many in kwargs:
            return f"{where} got both {single}= and {many}=; pass only one of them."
    dims = kwargs.get("dims")
    if dims is not None:
        ndims = 1 if is_int(dims) else len(dims)
        shift = kwargs.get("shift")
        if real_tuple(shift) and len(shift) != ndims:
            return f"{where} got shift={shift!r} for dims={dims!r}; pass one entry per dim."
    return None


def _equivariance_markers(item: pytest.Item) -> list["pytest.Mark"]:
    # Own markers in decorator order (top first), then class and module markers.
    own = [m for m in getattr(item, "own_markers", ()) if m.name in MARKERS]
    own.reverse()
    seen = {id(m) for m in own}
    rest = [m for m in item.iter_markers() if m.name in MARKERS and id(m) not in seen]
    return own + rest
