"""How each output leaf of a check moves with the input: grid maps by their stride, coordinates as
geometry (:mod:`.geometry`), detection sets matched (:mod:`.detections`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance.check import detections, geometry, metrics
from pytest_equivariance.check.spec import usage_error

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class LeafMoves:
    """How each output leaf moves with the input: grid maps by their stride, coordinates as geometry."""

    strides: dict[str, tuple[int, ...]]
    located: dict[str, "geometry.Geometry"]
    frame: tuple[int, int]  # the model input's (W, H): where coordinates live
    margin: int
    matched: frozenset[str] = field(init=False)  # the leaves that hold detection sets: matched, then measured

    def __post_init__(self) -> None:
        self.matched = frozenset(p for p, geo in self.located.items() if isinstance(geo, detections.Detections))

    def match(self, t: Any, path: str, a: "Tensor", b: "Tensor", atol: float, rtol: float) -> metrics.Sums:
        """Return the statistics of matching the sets ``a`` to the moved reference sets ``b``."""
        return self.located[path].measure(a, b, t, self.frame, atol=atol, rtol=rtol, margin=self.margin)

    def move(self, t: Any, path: str, a: "Tensor", b: "Tensor") -> tuple["Tensor", "Tensor", "Tensor | None"]:
        """Return ``a`` as it is compared (:meth:`~.transforms.Transform.comparable`), ``g·b`` for leaf
        ``path``, and the mask of what to compare (None: everything)."""
        if path in self.matched:
            return a, self.located[path].move(t, b, self.frame), None
        if path in self.located:
            geo = self.located[path]
            moved = geometry.move(geo, t, b, self.frame)
            return a, geometry.align(geo, t, a, moved, self.frame), geometry.mask(geo, t, moved, self.frame)
        if path not in self.strides:
            return a, b, None  # no grid and no coordinates: compared as invariant
        b = t.on_output(b, self.strides[path], path)
        mask = t.mask(tuple(b.shape), self.strides[path], self.margin, device=b.device, leaf=path)
        if mask is not None and not bool(mask.any()):
            raise usage_error(
                f"Nothing is left to compare in output{path} under {t.label} after the border margin of "
                f"{self.margin} pixels; pass a larger input_shape, a smaller max_shift, margin=, or mode='circular'."
            )
        return t.comparable(a), b, mask
