"""Outputs that say where things are: coordinates of points and boxes, moved with the input.

A keypoint model returns ``(..., K, 2)`` coordinates, a detector ``(..., 4)`` boxes. A shift or a
rotation of the image does not move these tensors' *grid* (they have none): it moves the numbers.
:class:`Points` and :class:`Boxes` are output fields (``output_fields=points()`` or a dict per output
leaf) that say how each group element acts on such a leaf; the run loop asks them as it asks a grid
leaf's transform (:mod:`.run`), so a new kind of geometric output is a new class here.

The convention, stated once. Coordinates are continuous input pixels, ``x`` along W (columns),
``y`` along H (rows, growing downwards), with pixel ``(row i, column j)`` covering
``[j, j+1) × [i, i+1)``: its centre is ``(j + 0.5, i + 0.5)``, the image spans ``[0, W] × [0, H]``
and its centre is ``(W/2, H/2)`` (torchvision's and COCO's boxes, detectron2's keypoints). So:

- a shift by ``(dy, dx)`` adds ``(dx, dy)``; in circular mode coordinates are compared modulo the
  image size (a point that leaves on the right comes back on the left);
- a quarter turn (``torch.rot90``, counter-clockwise as displayed) maps ``(x, y)`` to ``(y, W - x)``;
- ``hflip`` maps ``x`` to ``W - x`` and ``vflip`` ``y`` to ``H - y``;
- a rotation by ``θ`` degrees (counter-clockwise as displayed) turns ``(x - W/2, y - H/2)`` by ``θ``
  about the centre.

A reflection also swaps the indices of left/right keypoints (``points(flip_pairs=[(1, 2), ...])``,
COCO's pairs). A box is moved by its corners and re-sorted; a rotation that is not a quarter turn has
no box for an answer and is refused. In crop and zero modes, and inside the disk of an arbitrary
rotation, only the points and boxes that stay inside the compared region are compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    from torch import Tensor

    from pytest_equivariance.check.transforms import Transform

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


@dataclass(frozen=True)
class Points:
    """Coordinates ``(..., K, 2)`` (x, y) in input pixels; ``flip_pairs`` swap under reflections."""

    flip_pairs: tuple[tuple[int, int], ...] = ()

    name = "points"
    width = 2  # numbers per item along the last dim

    def describe(self) -> str:
        return f"points(flip_pairs={list(self.flip_pairs)})" if self.flip_pairs else "points"

    def validate(self, leaf: "Tensor", where: str, coordinates: int = 2) -> None:
        if leaf.dim() < 1 or leaf.shape[-1] != coordinates:
            names = "(x, y)" if coordinates == 2 else "(x, y, z)"
            raise EquivarianceUsageError(
                f"The {where} is declared as points but has shape {tuple(leaf.shape)}; points on a grid of "
                f"{coordinates} spatial dims need a last dim of {coordinates} {names}, so declare it as another "
                f"field or return (..., {coordinates}) coordinates."
            )
        count = leaf.shape[-2] if leaf.dim() >= 2 else 1
        for pair in self.flip_pairs:
            if any(not 0 <= i < count for i in pair):
                raise EquivarianceUsageError(
                    f"flip_pairs entry {pair} names a keypoint outside the {where}'s {count}; pass indices "
                    f"from 0 to {count - 1}."
                )

    def corners(self, y: "Tensor") -> "Tensor":
        return y.unsqueeze(-2)  # (..., 1, 2): one corner per point

    def assemble(self, corners: "Tensor", reflected: bool) -> "Tensor":
        out = corners.squeeze(-2)
        if reflected and self.flip_pairs:
            index = list(range(out.shape[-2]))
            for i, j in self.flip_pairs:
                index[i], index[j] = j, i
            out = out[..., index, :]
        return out

    def period(self, frame: tuple[float, float]) -> tuple[float, ...]:
        return frame


@dataclass(frozen=True)
class Boxes:
    """Boxes ``(..., 4)`` in input pixels, as ``format``: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``."""

    format: str = "xyxy"

    name = "boxes"
    width = 4

    def describe(self) -> str:
        return f"boxes({self.format})"

    def validate(self, leaf: "Tensor", where: str, coordinates: int = 2) -> None:
        if coordinates != 2:
            raise EquivarianceUsageError(
                f"The {where} is declared as boxes, which live on the image plane, but the check moves a grid "
                f"of {coordinates} spatial dims; declare 3-D coordinates as points()."
            )
        if leaf.dim() < 1 or leaf.shape[-1] != 4:
            raise EquivarianceUsageError(
                f"The {where} is declared as boxes but has shape {tuple(leaf.shape)}; boxes need a last dim of "
                f"4 ({self.format}), so declare it as another field or return (..., 4) boxes."
            )

    def corners(self, y: "Tensor") -> "Tensor":
        import torch

        a, b, c, d = y.unbind(-1)
        if self.format == "xywh":
            a, b, c, d = a, b, a + c, b + d
        elif self.format == "cxcywh":
            a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
        return torch.stack((torch.stack((a, b), -1), torch.stack((c, d), -1)), -2)  # (..., 2 corners, 2)

    def assemble(self, corners: "Tensor", reflected: bool) -> "Tensor":
        import torch

        low, high = corners.amin(-2), corners.amax(-2)  # a moved box's corners, re-sorted
        x1, y1, x2, y2 = low[..., 0], low[..., 1], high[..., 0], high[..., 1]
        if self.format == "xywh":
            return torch.stack((x1, y1, x2 - x1, y2 - y1), -1)
        if self.format == "cxcywh":
            return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), -1)
        return torch.stack((x1, y1, x2, y2), -1)

    def period(self, frame: tuple[float, float]) -> tuple[float, ...]:
        w, h = frame
        return (w, h, w, h) if self.format == "xyxy" else (w, h, math.inf, math.inf)


Geometry = Points | Boxes


def points(flip_pairs: Sequence[Sequence[int]] = ()) -> Points:
    """Declare an output leaf as ``(..., K, 2)`` point coordinates (x, y) in input pixels.

    ``flip_pairs`` lists the keypoints that trade places under a reflection, e.g. COCO's left and
    right eyes ``[(1, 2), (3, 4), ...]``. See :mod:`pytest_equivariance.check.geometry` for the convention.
    """
    pairs = []
    for pair in flip_pairs:
        if not (isinstance(pair, Sequence) and len(pair) == 2 and all(isinstance(i, int) and not isinstance(i, bool)
                                                                       for i in pair)):
            raise EquivarianceUsageError(f"flip_pairs entry {shown(pair)} is not a pair of keypoint indices; pass e.g. [(1, 2), (3, 4)].")
        pairs.append((int(pair[0]), int(pair[1])))
    return Points(tuple(pairs))


def boxes(format: str = "xyxy") -> Boxes:
    """Declare an output leaf as ``(..., 4)`` boxes in input pixels, in ``format`` (``"xyxy"``, ``"xywh"``, ``"cxcywh"``)."""
    if format not in BOX_FORMATS:
        raise EquivarianceUsageError(f"boxes(format={shown(format)}) is not a box format; pass one of {', '.join(BOX_FORMATS)}.")
    return Boxes(format)


def is_geometry(value: Any) -> bool:
    """Whether ``value`` is an output field that moves coordinates: points, boxes or detection sets."""
    return isinstance(value, (Points, Boxes)) or getattr(type(value), "geometric", False)


def split(output_fields: Any) -> tuple[Any, Any]:
    """Return ``(channel fields, geometry)`` of an ``output_fields`` value: either part may be None.

    ``points()`` alone is all geometry; a dict keeps its geometric entries in the second part.
    """
    if is_geometry(output_fields):
        return None, output_fields
    if isinstance(output_fields, Mapping):
        geo = {k: v for k, v in output_fields.items() if is_geometry(v)}
        rest = {k: v for k, v in output_fields.items() if not is_geometry(v)}
        return (rest or None), (geo or None)
    return output_fields, None


def leaves(
    geometry: Any, outputs: Sequence[tuple[str, "Tensor"]], grid_ndim: int, coordinates: int
) -> dict[str, Geometry]:
    """Return the geometry of each output leaf (by path) that ``geometry`` declares, validated.

    One :class:`Points` / :class:`Boxes` applies to every leaf that is not an image-shaped map (of
    ``grid_ndim`` dims); a dict names leaves as ``output_fields`` dicts do. ``coordinates`` is how many
    dims the check moves: 2 on an image plane, 3 in a volume.
    """
    from pytest_equivariance.check.fields import check_leaf_keys, names_leaf

    if geometry is None:
        return {}
    out: dict[str, Geometry] = {}
    if coordinates not in (2, 3):
        raise EquivarianceUsageError(
            f"Coordinates live on an image plane or in a volume, but the check moves {coordinates} dim(s); check "
            f"{geometry.name if not isinstance(geometry, Mapping) else 'them'} on dims=(-2, -1) or (-3, -2, -1)."
        )
    if isinstance(geometry, Mapping):
        check_leaf_keys(geometry, [path for path, _ in outputs])
        for path, leaf in outputs:
            for key, value in geometry.items():
                if names_leaf(key, path):
                    out[path] = value
    else:
        out = {path: geometry for path, leaf in outputs if leaf.dim() != grid_ndim}
        if not out:
            raise EquivarianceUsageError(
                f"output_fields={geometry.describe()} names no output: every output is an image-shaped map; "
                f"return the coordinates, or key output_fields by the leaf that holds them."
            )
    for path, geo in out.items():
        leaf = dict(outputs)[path]
        geo.validate(leaf, f"output{path}", coordinates)
    return out


# --------------------------------------------------------------------------------------------
# How a transform moves coordinates


def refuse_transform(geometry: Geometry, transform: "Transform") -> None:
    """Raise when ``transform`` has no exact action on ``geometry`` (a box under 30°, a custom pair)."""
    if transform.family == "custom":
        raise EquivarianceUsageError(
            f"A custom transform does not say how it moves {geometry.name}; check them with the built-in "
            f"shifts and rotations, or return image-shaped outputs."
        )
    if isinstance(geometry, Boxes) and _angle(transform) % 90:
        raise EquivarianceUsageError(
            f"A box rotated by {_angle(transform):g} degrees is not a box; check boxes under shifts, flips and "
            f"quarter turns (angles that are multiples of 90), or declare the corners as points."
        )


def _angle(transform: "Transform") -> float:
    if transform.family == "angle":
        return float(transform.params["angle"])
    if transform.family == "group":
        return float(transform.element.angle)
    return 0.0


def move(geometry: Geometry, transform: "Transform", y: "Tensor", frame: tuple[int, int]) -> "Tensor":
    """Return ``g·y``: the coordinates ``y`` moved as ``transform`` moves an image of ``frame`` (W, H)."""
    refuse_transform(geometry, transform)
    corners = geometry.corners(y)
    if corners.shape[-1] == 3:
        return geometry.assemble(*_move_xyz(transform, corners, frame))
    if any(d not in (-2, -1) for d in transform.dims):
        raise EquivarianceUsageError(
            f"{geometry.name} are (x, y) coordinates on the image plane, but the check moves dims "
            f"{transform.dims}; check them on dims=(-2, -1)."
        )
    moved, reflected = _move_xy(transform, corners, frame)
    return geometry.assemble(moved, reflected)


def _move_xyz(transform: "Transform", p: "Tensor", frame: tuple[int, ...]) -> tuple["Tensor", bool]:
    """Move ``(..., 3)`` voxel coordinates (x along W, y along H, z along D) in a volume of ``frame``
    (W, H, D); return them and whether the move reflects."""
    import torch

    family, params = transform.family, transform.params
    axis_of = {-1: 0, -2: 1, -3: 2}  # a grid dim -> its coordinate
    if tuple(sorted(transform.dims)) != (-3, -2, -1):
        raise EquivarianceUsageError(
            f"(x, y, z) points move with a volume, but the check moves dims {transform.dims}; check them on "
            f"dims=(-3, -2, -1)."
        )
    if family == "shift":
        step = torch.zeros(3, dtype=p.dtype, device=p.device)
        for dim, d in zip(transform.dims, params["shift"]):
            step[axis_of[dim]] = float(d)
        return p + step, False
    if family == "flip" and params["axis"] in axis_of:
        i = axis_of[params["axis"]]
        out = p.clone()
        out[..., i] = frame[i] - p[..., i]
        return out, True
    if family == "group" and hasattr(transform.element, "rotation"):  # an element of space
        v = transform.element.vector_matrix().to(p)  # acts on (W, H, D) components, as on displacements
        centre = torch.tensor(frame, dtype=p.dtype, device=p.device) / 2
        moved_centre = torch.tensor(moved_frame(transform, frame), dtype=p.dtype, device=p.device) / 2
        return (p - centre) @ v.T + moved_centre, bool(torch.linalg.det(v) < 0)
    raise EquivarianceUsageError(
        f"(x, y, z) points have no move under {transform.label}; check them under shifts, flips and the groups of "
        f"space (group='O', 'Oh', 'SO3', 'O3')."
    )


def _move_xy(transform: "Transform", xy: "Tensor", frame: tuple[int, int]) -> tuple["Tensor", bool]:
    """Move ``(..., 2)`` coordinates (x, y); return them and whether the move reflects."""
    import torch

    w, h = frame
    family, p = transform.family, transform.params
    x, yy = xy[..., 0], xy[..., 1]
    if family == "shift":
        step = {dim: float(d) for dim, d in zip(transform.dims, p["shift"])}
        return torch.stack((x + step.get(-1, 0.0), yy + step.get(-2, 0.0)), -1), False
    if family == "flip":
        if p["axis"] == transform.dims[-1]:
            return torch.stack((w - x, yy), -1), True
        return torch.stack((x, h - yy), -1), True
    reflected = False
    if family == "rot90":
        angle = 90.0 * p["k"]
    elif family == "angle":
        angle = float(p["angle"])
    elif family == "group":
        angle, reflected = float(transform.element.angle), bool(transform.element.flip)
        if reflected:  # R_θ ∘ F: mirror x first
            x = w - x
    else:
        raise ValueError(f"no point map for transform family {family!r}")
    quarter = angle / 90.0
    if quarter == int(quarter):  # quarter turns exactly: cos(π/2) is 6e-17 in floating point
        c, s = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[int(quarter) % 4]
    else:
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    u, v = x - w / 2, yy - h / 2
    w2, h2 = _turned_frame(angle, frame)
    # Counter-clockwise as displayed, rows growing downwards (check.transforms.rotate's convention).
    return torch.stack((c * u + s * v + w2 / 2, -s * u + c * v + h2 / 2), -1), reflected


def moved_frame(transform: "Transform", frame: tuple[int, ...]) -> tuple[int, ...]:
    """The (W, H[, D]) of the grid after ``transform``: quarter turns swap the sides."""
    if len(frame) == 3:
        element = getattr(transform, "element", None)
        if element is None or not getattr(element, "on_grid", False):
            return frame
        v = element.vector_matrix().abs()  # a signed permutation: the sides trade places
        return tuple(int(round(sum(v[i, j].item() * frame[j] for j in range(3)))) for i in range(3))
    angle = _angle(transform) if transform.family != "rot90" else 90.0 * transform.params["k"]
    return _turned_frame(angle, frame)


def _turned_frame(angle: float, frame: tuple[int, int]) -> tuple[int, int]:
    """The (W, H) after a rotation by ``angle`` degrees: an odd number of quarter turns swaps them."""
    return (frame[1], frame[0]) if math.isclose(angle % 180.0, 90.0, abs_tol=1e-9) else frame


def mask(geometry: Geometry, transform: "Transform", moved: "Tensor", frame: tuple[int, int]) -> "Tensor | None":
    """Which numbers of ``moved`` to compare: the items that stay inside the compared region.

    The whole image in circular mode and for exact moves; what both the moved image and the moved
    reference show after a crop or a shift with zeros; inside the inscribed disk after an arbitrary
    rotation. None: everything.
    """
    inside = within(transform, geometry.corners(moved), frame)
    if inside is None:
        return None
    keep = inside.all(-1, keepdim=True)  # every corner of the item inside: (..., 1)
    return keep.expand(moved.shape)


def within(transform: "Transform", xy: "Tensor", frame: tuple[int, ...], margin: float = 0) -> "Tensor | None":
    """Whether each ``(..., 2)`` (or, in a volume, ``(..., 3)``) coordinate of the moved grid lies in the
    compared region (None: all do).

    After a crop or a zero shift by ``(dy, dx)`` that is the strip both views show — the moved image
    ``[0, W]`` and the moved reference ``[dx, W + dx]``, and so on along each axis — less ``margin``
    pixels; after an arbitrary rotation, the inscribed disk (ball) less ``margin``.
    """
    if transform.mode in ("circular", "exact"):
        return None
    sizes = moved_frame(transform, frame)
    if transform.mode == "interp":
        radius = min(sizes) / 2 - margin
        centre = [n / 2 for n in sizes]
        return sum((xy[..., i] - centre[i]) ** 2 for i in range(len(sizes))) <= radius**2
    step = {dim: float(d) for dim, d in zip(transform.dims, transform.params.get("shift", ()))}
    inside = None
    for i, n in enumerate(sizes):
        d = step.get(-1 - i, 0.0)  # coordinate i moves along grid dim -1 - i
        here = (xy[..., i] >= max(0.0, d) + margin) & (xy[..., i] <= min(n, n + d) - margin)
        inside = here if inside is None else inside & here
    return inside


def align(geometry: Geometry, transform: "Transform", a: "Tensor", b: "Tensor", frame: tuple[int, int]) -> "Tensor":
    """Return ``b`` moved by whole periods to lie nearest ``a``, for circular shifts (a torus); else ``b``."""
    import torch

    if not (transform.family == "shift" and transform.mode == "circular"):
        return b
    period = torch.tensor(geometry.period(frame), dtype=b.dtype, device=b.device)
    finite = torch.isfinite(period)
    safe = torch.where(finite, period, torch.ones_like(period))
    return torch.where(finite, b - whole_periods(b - a, safe), b)


def whole_periods(delta: "Tensor", period: "Tensor") -> "Tensor":
    """The whole periods in ``delta``: what to take from it to leave the nearest remainder, in
    ``[-period/2, period/2)`` (distances on a torus)."""
    import torch

    return delta - (torch.remainder(delta + period / 2, period) - period / 2)
