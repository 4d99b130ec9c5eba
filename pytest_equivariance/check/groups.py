"""Groups of rotations and reflections, of the plane and of space, and their elements.

A :class:`Group` of the plane is ``C<N>`` (N rotations by 360°/N), ``D<N>`` (those and N
reflections), ``SO2`` (every rotation) or ``O2`` (every rotation and reflection); a group of space,
acting on volumes ``(N, C, D, H, W)``, is ``O`` (the cube's 24 rotations), ``Oh`` (those and their
inversions, 48), ``SO3`` or ``O3`` (:mod:`.volume_groups`). A plane :class:`Element` is
``R_θ ∘ F^f``: first a mirror ``F`` of the W axis when ``flip``, then a rotation by ``θ`` degrees,
counterclockwise as displayed (rows grow downwards), about the centre of the plane. Quarter turns
and flips are exact pixel permutations (``θ = 90°`` is ``torch.rot90(k=1, dims=(-2, -1))``); other
angles are resampled band-limitedly (:func:`rotate_bandlimited`). These are escnn's conventions
(``rot2dOnR2``, ``flipRot2dOnR2``), so that its field types can be read directly.

Every element, of the plane or of space, answers the same questions — its ``label``, ``params``,
whether it is ``on_grid`` (a permutation of the samples), whether it reflects (``flip``), how it
moves a grid (``spatial``, and back: ``undo``) and how it turns a vector (``vector_matrix``) — so
the fields (:mod:`.fields`) and the run loop never ask which kind of element they hold.
See ``docs/groups.md``.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    from torch import Tensor

#: Angles (degrees) an SO2 or O2 check sweeps when no trials are given.
CONTINUOUS_SWEEP = tuple(float(a) for a in range(15, 360, 15))
#: Upsampling factor of the band-limited rotation of non-grid angles.
OVERSAMPLE = 2

_GROUP = re.compile(r"^(C|D)(\d+)$")


def _usage(message: str) -> EquivarianceUsageError:
    return EquivarianceUsageError(message)


# --------------------------------------------------------------------------------------------
# Groups and their elements


#: Groups of space (acting on volumes): the cube's rotations, with inversions, and the continuous ones.
SPACE_KINDS = ("O", "Oh", "SO3", "O3")


@dataclass(frozen=True)
class Group:
    """A group of rotations (and reflections): ``kind`` is "C", "D", "SO2", "O2" (the plane) or
    "O", "Oh", "SO3", "O3" (space)."""

    kind: str
    n: int | None = None  # rotations of a finite group

    @property
    def name(self) -> str:
        return f"{self.kind}{self.n}" if self.n is not None and self.kind in ("C", "D") else self.kind

    @property
    def finite(self) -> bool:
        return self.n is not None

    @property
    def has_flips(self) -> bool:
        return self.kind in ("D", "O2", "Oh", "O3")

    @property
    def spatial_dims(self) -> int:
        """The grid it acts on: 2 (a plane of an image) or 3 (a volume)."""
        return 3 if self.kind in SPACE_KINDS else 2

    @property
    def order(self) -> int | None:
        """The number of elements, None for the continuous groups."""
        if self.n is None:
            return None
        return self.n * (2 if self.has_flips else 1)

    @property
    def exact(self) -> bool:
        """Whether every element permutes the samples (plane: multiples of 90° only; space: the cube's)."""
        if self.kind in ("O", "Oh"):
            return True
        return self.finite and self.spatial_dims == 2 and 4 % self.n == 0  # type: ignore[operator]

    def elements(self, *, trials: int | None = None, seed: int = 0) -> list[Any]:
        """Return the elements a check applies: every element but the identity of a finite group;
        for SO2 and O2 the sweep (every 15°) or ``trials`` random angles drawn from ``seed``; for
        SO3 and O3 those of the cube (exact) and random ones (:func:`.volume_groups.space_elements`)."""
        if self.spatial_dims == 3:
            from pytest_equivariance.check.volume_groups import space_elements

            return space_elements(self, trials=trials, seed=seed)
        flips = (False, True) if self.has_flips else (False,)
        if self.finite:
            assert self.n is not None
            out = [Element(360.0 * k / self.n, f, k, self.n) for f in flips for k in range(self.n)]
            return out[1:]
        if trials:
            rng = random.Random(seed)
            angles = [round(rng.uniform(1.0, 359.0), 1) for _ in range(trials)]
            return [Element(a, rng.random() < 0.5 if self.has_flips else False) for a in angles]
        out = [Element(a, False) for a in CONTINUOUS_SWEEP]
        if self.has_flips:
            out += [Element(0.0, True)] + [Element(a, True) for a in CONTINUOUS_SWEEP]
        return out

    def regular_matrix(self, element: Any) -> "Tensor":
        """The regular representation of ``element``: ``e_h -> e_{g h}`` over the group's elements in
        their order (plane: ``f·N + k`` for ``R_k F^f``; space: :func:`.volume_groups.cube_elements`)."""
        import torch

        if self.spatial_dims == 3:
            from pytest_equivariance.check.volume_groups import cube_regular_matrix

            return cube_regular_matrix(element, self.has_flips)
        n = self.n
        assert n is not None and element.k is not None
        order = self.order or n
        out = torch.zeros(order, order, dtype=torch.float64)
        f1, k1 = int(element.flip), element.k
        for f2 in range(2 if self.has_flips else 1):
            for k2 in range(n):
                # R_{k1} F^{f1} R_{k2} F^{f2} = R_{k1 + (-1)^{f1} k2} F^{f1 + f2}
                k = (k1 + (-k2 if f1 else k2)) % n
                f = (f1 + f2) % 2
                out[f * n + k, f2 * n + k2] = 1.0
        return out


#: The largest N of C<N> and D<N>: each element is one trial (check.arguments.MAX_TRIALS).
MAX_ORDER = 10_000
#: The smallest N of each finite kind: C1 is the trivial group (no element but the identity to
#: check); D1 is one flip.
MIN_ORDER = {"C": 2, "D": 1}
#: What to do instead of group='C1', for the API's error and the markers' (check.arguments).
TRIVIAL_REMEDY = ("drop group= (pass angles= to choose the rotations) or name a group with rotations, "
                  "e.g. 'C4'")


def is_trivial(value: Any) -> bool:
    """Whether ``value`` names the trivial group, C1, which has nothing to check."""
    match = _GROUP.match(value.strip().upper().replace("(", "").replace(")", "")) if isinstance(value, str) else None
    return bool(match) and match.group(1) == "C" and int(match.group(2)) == 1


_SPACE_GROUPS = {"O": Group("O", 24), "OH": Group("Oh", 24), "SO3": Group("SO3"), "O3": Group("O3")}


def parse_group(value: Any) -> Group:
    """Return the :class:`Group` named ``value`` ("C4", "D8", "SO2", "O2", "O", "Oh", "SO3", "O3");
    a usage error otherwise."""
    if isinstance(value, Group):
        return value
    text = value.strip().upper().replace("(", "").replace(")", "") if isinstance(value, str) else None
    if text in ("SO2", "O2"):
        return Group(text)
    if text in _SPACE_GROUPS:
        return _SPACE_GROUPS[text]
    if is_trivial(value):
        raise _usage(f"group={shown(value)} is the trivial group: its one element is the identity, so there is "
                     f"nothing to check; {TRIVIAL_REMEDY}.")
    match = _GROUP.match(text or "")
    if match and MIN_ORDER[match.group(1)] <= int(match.group(2)) <= MAX_ORDER:
        return Group(match.group(1), int(match.group(2)))
    if match:
        raise _usage(
            f"group={shown(value)} has {match.group(2)} rotations; pass N between {MIN_ORDER[match.group(1)]} and "
            f"{MAX_ORDER} (every element is one trial), or 'SO2' / 'O2' for a sweep of the continuous group."
        )
    raise _usage(
        f"Unknown group {shown(value)}; use 'C<N>' (N rotations, e.g. 'C4'), 'D<N>' (rotations and "
        f"reflections, e.g. 'D4'), 'SO2' (all rotations) or 'O2' (all rotations and reflections) for "
        f"images, or 'O', 'Oh', 'SO3', 'O3' for volumes."
    )


@dataclass(frozen=True)
class Element:
    """``R_θ ∘ F^flip``: mirror the W axis when ``flip``, then rotate by ``angle`` degrees (CCW as displayed).

    ``k`` is the rotation's index in a finite group of ``n`` rotations (``angle = 360·k/n``).
    """

    angle: float
    flip: bool = False
    k: int | None = None
    n: int | None = None

    @property
    def on_grid(self) -> bool:
        """Whether the element permutes pixels exactly (a multiple of 90°, possibly with a flip)."""
        return math.isclose(self.angle % 90.0, 0.0, abs_tol=1e-9) or math.isclose(self.angle % 90.0, 90.0, abs_tol=1e-9)

    @property
    def label(self) -> str:
        """``rotation 45° (2π·1/8)``, ``rotation 90° ∘ flip``, ``flip``: what reports print."""
        if self.k is not None and self.n is not None and self.k:
            rotation = f"rotation {_degrees(self.angle)} (2π·{self.k}/{self.n})"
        elif self.angle % 360:
            rotation = f"rotation {_degrees(self.angle)}"
        else:
            rotation = ""
        if self.flip:
            return f"{rotation} ∘ flip" if rotation else "flip"
        return rotation or "identity"

    @property
    def params(self) -> dict[str, Any]:
        return {"angle": self.angle, "flip": self.flip, "exact": self.on_grid}

    def spatial(self, x: "Tensor", dims: tuple[int, ...]) -> "Tensor":
        """Return ``x`` moved on its plane ``dims`` (rows, columns) by this element."""
        import torch

        if self.flip:
            x = torch.flip(x, (dims[1],))
        return self._turn(x, self.angle, dims)

    def undo(self, x: "Tensor", dims: tuple[int, ...]) -> "Tensor":
        """Return ``x`` moved back by this element: ``F^flip ∘ R_{-θ}``."""
        import torch

        back = self._turn(x, -self.angle, dims)
        return torch.flip(back, (dims[1],)) if self.flip else back

    @staticmethod
    def _turn(x: "Tensor", angle: float, dims: tuple[int, ...]) -> "Tensor":
        import torch

        quarter = angle / 90.0
        if Element(angle).on_grid:
            return torch.rot90(x, int(round(quarter)) % 4, (dims[0], dims[1])) if round(quarter) % 4 else x
        return rotate_bandlimited(x, angle, (dims[0], dims[1]))

    def vector_matrix(self, frequency: int = 1) -> "Tensor":
        """How the element turns a vector ``(u along W, v along H pointing down)`` at a pixel:
        rotated by ``frequency·θ`` and mirrored with the grid (``frequency`` k: ``irrep(k)``)."""
        import torch

        theta = math.radians(self.angle * frequency)
        c, s = math.cos(theta), math.sin(theta)
        rotation = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
        mirror = torch.tensor([[-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64) if self.flip else torch.eye(2, dtype=torch.float64)
        return rotation @ mirror


def exactness_notes(trials: list[Any], tolerances: tuple[float, float], max_rel_l2: float | None) -> list[str]:
    """One line each for the exact and the resampled trials (``params["exact"]``) of a group check that
    has both, with their own figures and rule, so that a model is never failed for the resampling's error."""
    exact = [t for t in trials if t.params.get("exact")]
    resampled = [t for t in trials if t.params.get("exact") is False]
    if not exact or not resampled:
        return []
    rule = f"relative L2 <= {max_rel_l2:g}" if max_rel_l2 is not None else "atol/rtol"
    return [
        f"exact elements ({len(exact)}, voxel or pixel permutations): max abs error "
        f"{max(t.max_abs for t in exact):.3g}, judged at atol={tolerances[0]:g}, rtol={tolerances[1]:g}",
        f"resampled elements ({len(resampled)}): largest relative L2 error {max(t.rel_l2 for t in resampled):.3g}, "
        f"judged by {rule}",
    ]


def _degrees(angle: float) -> str:
    return f"{angle:g}°"


def rotate_bandlimited(x: "Tensor", angle: float, dims: tuple[int, int] = (-2, -1)) -> "Tensor":
    """Rotate ``x`` by ``angle`` degrees: upsample ``OVERSAMPLE``× by zero-padding its spectrum,
    rotate bilinearly there, and low-pass back to the original grid.

    Bilinear interpolation on the original grid attenuates the high frequencies of what it rotates;
    done on a finer grid of the same band-limited signal, and low-passed back, its error falls by
    about ``OVERSAMPLE²`` (as escnn's equivariance checks rotate at a higher resolution).
    """
    from pytest_equivariance.check.resample import resample_trailing
    from pytest_equivariance.check.transforms import rotate

    moved = x.movedim((dims[0], dims[1]), (-2, -1))
    h, w = moved.shape[-2:]
    fine = resample_trailing(moved, (h * OVERSAMPLE, w * OVERSAMPLE))
    # Fine sample j sits at coarse position j / OVERSAMPLE: the coarse centre is (OVERSAMPLE - 1) / 2
    # fine samples before the fine grid's centre, and the rotation turns about it.
    out = resample_trailing(rotate(fine, angle, before_centre=(OVERSAMPLE - 1) / 2), (h, w))
    return out.movedim((-2, -1), (dims[0], dims[1]))
