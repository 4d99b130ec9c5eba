"""Rotations and reflections of volumes: the cube's groups O and Oh, SO(3) and O(3), as 3×3 matrices.

An element of space is a rotation matrix ``R`` (and, in Oh and O3, an inversion ``x -> -x``
after it), written in escnn's right-handed basis of the volume ``(N, C, D, H, W)``:

- ``x`` points along W (columns), ``y`` against H (up, as rows grow downwards), ``z`` against D
  (towards the viewer of the slices ``x[..., d, :, :]``, which are stacked away from them);
- a positive rotation is counterclockwise seen from the tip of its axis, so the rotation by 90°
  about ``z`` is the plane's quarter turn, ``torch.rot90(k=1, dims=(-2, -1))``, on every slice;
- an element moves content: ``(g·f)(p) = f(R⁻¹ p)`` about the volume's centre.

The 24 rotations of the cube (and their 24 inversions) are signed permutations of the three axes,
so they act exactly, by a permutation of the dims and flips (no interpolation). Every other
rotation is resampled band-limitedly, as the plane's off-grid rotations are: upsampled
``OVERSAMPLE``× by zero-padding the spectrum, rotated trilinearly there, low-passed back, and
compared inside the inscribed ball. See ``docs/groups.md``.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    from torch import Tensor

    from pytest_equivariance.check.groups import Group

#: Random rotations an SO3 or O3 check draws besides the cube's elements, unless ``trials`` says.
DEFAULT_DRAWS = 8
#: The largest order of an ``irrep(l)`` field of a group of space (order 8 costs about a second
#: to set up in :mod:`.so3`, order 12 nearly a minute).
MAX_IRREP_ORDER = 8
#: Upsampling factor of the band-limited rotation of off-grid elements.
OVERSAMPLE = 2

Matrix = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]

# (d, h, w) index directions in the (x, y, z) basis: d = -z, h = -y, w = x.
_INDEX = ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0), (1.0, 0.0, 0.0))
_AXIS_NAMES = {(1, 0, 0): "x", (0, 1, 0): "y", (0, 0, 1): "z"}


def _matmul(a: Any, b: Any) -> Matrix:
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)) for i in range(3))  # type: ignore[return-value]


def _transpose(a: Any) -> Matrix:
    return tuple(tuple(a[j][i] for j in range(3)) for i in range(3))  # type: ignore[return-value]


@dataclass(frozen=True)
class SpaceElement:
    """``I^flip ∘ R``: the rotation ``rotation`` (escnn's basis, above), then the inversion when ``flip``.

    ``index`` is its position in :func:`cube_elements` for the cube's elements (the order of the
    channels of a regular field), None for the others.
    """

    rotation: Matrix
    flip: bool = False
    index: int | None = None

    @property
    def matrix(self) -> Matrix:
        """The 3×3 matrix of the element on ``(x, y, z)``, the inversion included."""
        sign = -1.0 if self.flip else 1.0
        return tuple(tuple(sign * v for v in row) for row in self.rotation)  # type: ignore[return-value]

    @property
    def on_grid(self) -> bool:
        """Whether the element permutes voxels exactly (one of the cube's 48)."""
        return all(min(abs(v), abs(abs(v) - 1.0)) < 1e-9 for row in self.rotation for v in row)

    @property
    def angle(self) -> float:
        """The rotation's angle in degrees about its axis as :attr:`label` names it, in [0, 360)."""
        return _axis_angle(self.rotation)[1]

    @property
    def label(self) -> str:
        """``rotation 90° about z``, ``rotation 120° about (1, 1, 1) ∘ inversion``: what reports print."""
        axis, angle = _axis_angle(self.rotation)
        if angle < 1e-7:
            rotation = ""
        else:
            rotation = f"rotation {_degrees(angle)} about {_axis_name(axis)}"
        if self.flip:
            return f"{rotation} ∘ inversion" if rotation else "inversion"
        return rotation or "identity"

    @property
    def params(self) -> dict[str, Any]:
        return {"rotation": [list(row) for row in self.rotation], "flip": self.flip, "exact": self.on_grid}

    def spatial(self, x: "Tensor", dims: tuple[int, ...]) -> "Tensor":
        """Return ``x`` moved on its volume ``dims`` (D, H, W) by this element."""
        return _move(x, self.matrix, dims, self.on_grid)

    def undo(self, x: "Tensor", dims: tuple[int, ...]) -> "Tensor":
        """Return ``x`` moved back by this element (its inverse, the transposed matrix)."""
        return _move(x, _transpose(self.matrix), dims, self.on_grid)

    def vector_matrix(self) -> "Tensor":
        """How the element turns a vector ``(u along W, v along H, w along D)`` at a voxel (float64):
        the components follow the grid's own dims, as a 3-D displacement field's do, and an
        inversion reverses them (a polar vector)."""
        import torch

        index = _index_matrix(self.matrix)  # on (d, h, w)
        return torch.tensor(index, dtype=torch.float64).flip(0, 1)  # on (w, h, d)

    def irrep_matrix(self, order: int) -> "Tensor":
        """The real Wigner D-matrix of order ``order`` in e3nn's basis (:mod:`.so3`: order 1 is the
        rotation on ``(x, y, z)``), float64; an inversion acts by ``(-1)^order`` (e3nn's ``1o``, ``2e``...)."""
        import torch

        from pytest_equivariance.check import so3

        return so3.irrep_D(order, (-1) ** order, torch.tensor(self.matrix, dtype=torch.float64))


def _degrees(angle: float) -> str:
    text = f"{angle:.1f}".rstrip("0").rstrip(".")
    return f"{text}°"


def _axis_angle(rotation: Matrix) -> tuple[tuple[float, float, float], float]:
    """Return the unit axis (its first non-zero component positive) and the angle in degrees
    (in [0, 360)) of a rotation matrix."""
    r = rotation
    trace = r[0][0] + r[1][1] + r[2][2]
    angle = math.acos(max(-1.0, min(1.0, (trace - 1.0) / 2.0)))
    if angle < 1e-9:
        return (0.0, 0.0, 1.0), 0.0
    skew = (r[2][1] - r[1][2], r[0][2] - r[2][0], r[1][0] - r[0][1])
    norm = math.sqrt(sum(v * v for v in skew))
    if norm > 1e-6:
        axis = tuple(v / norm for v in skew)
    else:  # a half turn: the axis is the column of (R + I) / 2 of largest norm
        cols = [tuple((r[i][j] + (1.0 if i == j else 0.0)) / 2 for i in range(3)) for j in range(3)]
        best = max(cols, key=lambda c: sum(v * v for v in c))
        n = math.sqrt(sum(v * v for v in best))
        axis = tuple(v / n for v in best)
    first = next(v for v in axis if abs(v) > 1e-9)
    degrees = math.degrees(angle)
    if first < 0:
        axis, degrees = tuple(-v for v in axis), 360.0 - degrees if degrees < 180.0 - 1e-9 else degrees
    return axis, degrees  # type: ignore[return-value]


def _axis_name(axis: tuple[float, float, float]) -> str:
    """``z`` for a coordinate axis, ``(1, -1, 0)`` for the cube's other axes, rounded components otherwise."""
    biggest = max(abs(v) for v in axis)
    whole = tuple(round(v / biggest) for v in axis)
    if all(abs(v / biggest - w) < 1e-6 for v, w in zip(axis, whole)):
        return _AXIS_NAMES.get(whole, f"({', '.join(str(w) for w in whole)})")  # type: ignore[arg-type]
    return f"({', '.join(f'{v:.2f}' for v in axis)})"


def _index_matrix(matrix: Matrix) -> Matrix:
    """The matrix on index directions ``(d, h, w)`` of one on ``(x, y, z)``."""
    return _matmul(_matmul(_INDEX, matrix), _transpose(_INDEX))


def _move(x: "Tensor", matrix: Matrix, dims: tuple[int, ...], exact: bool) -> "Tensor":
    """Return ``x`` moved by ``matrix`` (on ``(x, y, z)``) on its volume ``dims`` (D, H, W)."""
    index = _index_matrix(matrix)
    if not exact:
        return rotate_volume(x, index, dims)
    # out[q] = x[M^T q]: output dim i reads input dim j where M[i][j] = ±1, reversed where it is -1.
    ndim = x.dim()
    spatial = [d % ndim for d in dims]
    order = list(range(ndim))
    flips = []
    for i in range(3):
        j = max(range(3), key=lambda k: abs(index[i][k]))
        order[spatial[i]] = spatial[j]
        if index[i][j] < 0:
            flips.append(spatial[i])
    out = x.permute(order)
    return out.flip(flips) if flips else out


def rotate_volume(x: "Tensor", index: Matrix, dims: tuple[int, ...] = (-3, -2, -1)) -> "Tensor":
    """Rotate the volume ``dims`` of ``x`` by ``index`` (a rotation on the ``(d, h, w)`` index
    directions) about its centre, band-limitedly: upsampled ``OVERSAMPLE``× by zero-padding the
    spectrum, sampled trilinearly there, low-passed back (zeros outside)."""
    from pytest_equivariance.check.resample import resample_trailing

    ndim = x.dim()
    spatial = tuple(d % ndim for d in dims)
    moved = x.movedim(spatial, (-3, -2, -1))
    size = tuple(moved.shape[-3:])
    fine = resample_trailing(moved, tuple(s * OVERSAMPLE for s in size))
    out = resample_trailing(_sample(fine, index, (OVERSAMPLE - 1) / 2), size)  # about the coarse centre
    return out.movedim((-3, -2, -1), spatial)


def _sample(x: "Tensor", index: Matrix, before_centre: float = 0.0) -> "Tensor":
    """``out[q] = x[M^T q]`` about the point ``before_centre`` samples before the centre on every
    axis, trilinear (``grid_sample``), zeros outside."""
    import torch
    import torch.nn.functional as F

    lead = x.shape[:-3]
    d, h, w = x.shape[-3:]
    work = x.reshape(-1, 1, d, h, w)
    axes = [torch.arange(n, dtype=torch.float64, device=x.device) - (n - 1) / 2 + before_centre for n in (d, h, w)]
    q = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (d, h, w, 3) on (d, h, w)
    source = q @ torch.tensor(index, dtype=torch.float64, device=x.device) - before_centre  # M^T q, row-wise
    scale = torch.tensor([d / 2, h / 2, w / 2], dtype=torch.float64, device=x.device)
    grid = (source / scale).flip(-1).to(work.dtype)  # grid_sample reads (x: W, y: H, z: D)
    grid = grid.unsqueeze(0).expand(work.shape[0], d, h, w, 3)
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(*lead, d, h, w)


@functools.lru_cache(maxsize=2)
def cube_elements(inversions: bool = False) -> tuple[SpaceElement, ...]:
    """The cube's 24 rotations (identity first), then with ``inversions`` their 24 inversions: the
    order of a regular field's channels (channel ``24·f + k`` holds ``I^f ∘ R_k``)."""
    rotations = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = tuple(tuple(signs[i] if perm[i] == j else 0.0 for j in range(3)) for i in range(3))
            if _det(m) > 0:
                rotations.append(m)
    out = [SpaceElement(m, False, k) for k, m in enumerate(rotations)]  # type: ignore[arg-type]
    if inversions:
        out += [SpaceElement(m, True, 24 + k) for k, m in enumerate(rotations)]  # type: ignore[arg-type]
    return tuple(out)


def _det(m: Any) -> float:
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def cube_regular_matrix(element: SpaceElement, inversions: bool) -> "Tensor":
    """The regular representation of a cube element: ``e_h -> e_{g h}`` over :func:`cube_elements`."""
    import torch

    if element.index is None:
        raise EquivarianceUsageError(
            f"{element.label} is not one of the cube's rotations, so it does not permute a regular field; "
            f"check regular fields with group='O' or 'Oh'."
        )
    elements = cube_elements(inversions)
    where = {(_key(e.rotation), e.flip): e.index for e in elements}
    out = torch.zeros(len(elements), len(elements), dtype=torch.float64)
    for h in elements:
        product = _matmul(element.rotation, h.rotation)  # inversions commute with every rotation
        out[where[(_key(product), element.flip != h.flip)], h.index] = 1.0
    return out


def _key(m: Any) -> tuple[int, ...]:
    return tuple(int(round(v)) for row in m for v in row)


def space_elements(group: "Group", *, trials: int | None = None, seed: int = 0) -> list[SpaceElement]:
    """The elements a check of a group of space applies: every element of O or Oh but the identity;
    for SO3 and O3 those too (exact) and ``trials`` (default :data:`DEFAULT_DRAWS`) random
    rotations from ``seed`` (with O3, each inverted or not at random), resampled."""
    from pytest_equivariance.check import so3

    cube = list(cube_elements(group.has_flips))[1:]
    if group.finite:
        return cube
    count = trials or DEFAULT_DRAWS
    drawn = so3.random_orthogonal(count, seed) if group.has_flips else so3.random_rotations(count, seed)
    out = []
    for matrix in drawn:
        inverted = bool(matrix.det() < 0)
        rotation = -matrix if inverted else matrix
        out.append(SpaceElement(tuple(tuple(float(v) for v in row) for row in rotation.tolist()), inverted))  # type: ignore[arg-type]
    return cube + out


def irrep_size(order: int, where: str) -> int:
    """The channels of an ``irrep(order)`` field of a group of space (``2·order + 1``); a usage error
    beyond :data:`MAX_IRREP_ORDER`."""
    if order > MAX_IRREP_ORDER:
        raise EquivarianceUsageError(
            f"irrep({order}) in the {where} fields is beyond the Wigner D-matrices computed here (orders 0 to "
            f"{MAX_IRREP_ORDER}); declare irreps of order at most {MAX_IRREP_ORDER}, or pass a callable field."
        )
    return 2 * order + 1
