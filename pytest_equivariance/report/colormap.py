"""The colour scale shared by the terminal and HTML heatmaps: a viridis-like ramp, computed in Python.

Viridis (van der Walt & Smith, matplotlib 1.5) is perceptually uniform and readable by people with
the common forms of colour blindness, so a brighter cell always means a larger error. The ramp is
nine anchors of matplotlib's viridis, linearly interpolated; no plotting library is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

RGB = tuple[int, int, int]

#: Nine evenly spaced anchors of viridis, dark (small error) to bright (large error).
VIRIDIS: tuple[RGB, ...] = (
    (68, 1, 84),
    (72, 40, 120),
    (62, 73, 137),
    (49, 104, 142),
    (38, 130, 142),
    (31, 158, 137),
    (53, 183, 121),
    (110, 206, 88),
    (253, 231, 37),
)


def ramp(t: float) -> RGB:
    """Return the colour at position ``t`` of the ramp (clamped to [0, 1]; NaN gives the top)."""
    if math.isnan(t):
        t = 1.0
    t = min(max(t, 0.0), 1.0)
    pos = t * (len(VIRIDIS) - 1)
    i = min(int(pos), len(VIRIDIS) - 2)
    frac = pos - i
    lo, hi = VIRIDIS[i], VIRIDIS[i + 1]
    return (
        round(lo[0] + (hi[0] - lo[0]) * frac),
        round(lo[1] + (hi[1] - lo[1]) * frac),
        round(lo[2] + (hi[2] - lo[2]) * frac),
    )


def hex_colour(rgb: RGB) -> str:
    """Return ``#rrggbb`` for an RGB triple."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


class Scale:
    """A linear map from error values to colours, from 0 (or ``vmin``) to ``vmax``.

    The scale starts at zero rather than the smallest error, so an all-noise grid of an equivariant
    model stays dark instead of stretching 1e-7 of float noise over the whole ramp; ``floor`` (the
    check's tolerance) lifts ``vmax`` for the same reason.
    """

    def __init__(self, values: Sequence[float], *, floor: float = 0.0) -> None:
        finite = [v for v in values if math.isfinite(v)]
        self.vmin = 0.0
        self.vmax = max([floor, *finite]) if finite or floor else 0.0
        if self.vmax <= self.vmin:
            self.vmax = self.vmin + 1.0

    def position(self, value: float) -> float:
        """Return ``value``'s position on the ramp, in [0, 1] (non-finite values map to the top)."""
        if not math.isfinite(value):
            return 1.0
        return (value - self.vmin) / (self.vmax - self.vmin)

    def colour(self, value: float) -> RGB:
        """Return the ramp colour for ``value``."""
        return ramp(self.position(value))


def format_error(value: float) -> str:
    """Return an error figure in a short, fixed form: ``0``, ``3.1e-07``, ``0.042``, ``1.25``."""
    if value != value:  # NaN
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e4:
        return f"{value:.1e}"
    return f"{value:.3g}"


def flat(errors: Sequence[Sequence[float]]) -> list[float]:
    """Return the cells of a 2-D grid, row by row."""
    return [v for row in errors for v in row]
