"""The report's figures as inline SVG: shift heatmaps, error-by-angle plots and per-layer profiles.

Computed here, with no plotting library, so a report needs nothing but a browser; coordinates are
rounded to 0.1 px so the same results give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from pytest_equivariance.report.colormap import (
    Scale,
    flat,
    format_error,
    hex_colour,
    ramp,
)
from pytest_equivariance.report.figures import AnglePoint, reduce_grid, worst_shift
from pytest_equivariance.report.profile import layer_location

if TYPE_CHECKING:
    from pytest_equivariance.check.result import Profile, ShiftGrid

#: Grids larger than this (per side) are shown as block maxima.
MAX_CELLS = 64
#: How many decades the per-layer profile's log axis spans at most.
PROFILE_DECADES = 10

_PASS = "#2f9e6e"
_FAIL = "#d1495b"
INK = "#1f2430"
_MUTED = "#6b7280"
_GRID = "#e5e7eb"
_FONT = "font-family:ui-sans-serif,system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"


def heatmap_svg(grid: "ShiftGrid", *, atol: float | None = None) -> str:
    """Return an inline SVG heatmap of ``grid``'s error over (dy, dx) with a colour bar.

    Rows are dy (downwards), columns dx (rightwards), as in Zhang (2019), Fig. 1. Each cell carries a
    ``<title>`` tooltip with its shift and error; the worst shift is outlined; the colour bar marks
    the tolerance.
    """
    view = reduce_grid(grid, MAX_CELLS, MAX_CELLS)
    rows, cols = len(view.errors), len(view.errors[0]) if view.errors else 0
    scale = Scale(flat(grid.errors), floor=atol or 0.0)
    cell = max(5, min(14, 448 // max(rows, cols, 1)))
    left, top = 52, 40
    width_map, height_map = cols * cell, rows * cell
    bar_x = left + width_map + 18
    width = bar_x + 14 + 78
    height = top + height_map + 16
    out = [_svg_open(width, height, f"Error over shifts (dy, dx), {grid.figure}")]
    # Axis titles and ticks.
    out.append(_text(left + width_map / 2, 12, "dx →", anchor="middle", weight="600"))
    out.append(_text(12, top + height_map / 2 - 4, "dy", anchor="middle", weight="600"))
    out.append(_text(12, top + height_map / 2 + 12, "↓", anchor="middle", weight="600"))
    for j in _ticks(cols):
        x = left + (j + 0.5) * cell
        out.append(_text(x, top - 8, str(view.offsets_x[j]), anchor="middle", size=11, fill=_MUTED))
    for i in _ticks(rows):
        y = top + (i + 0.5) * cell + 4
        out.append(_text(left - 6, y, str(view.offsets_y[i]), anchor="end", size=11, fill=_MUTED))
    # Cells.
    for i, row in enumerate(view.errors):
        for j, value in enumerate(row):
            label = (
                f"dy={_span(view.offsets_y, i, view.factor_y, grid.offsets_y)}, "
                f"dx={_span(view.offsets_x, j, view.factor_x, grid.offsets_x)}: {format_error(value)}"
            )
            out.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" '
                f'fill="{hex_colour(scale.colour(value))}"><title>{escape(label)}</title></rect>'
            )
    worst = worst_shift(grid)
    if worst is not None:
        i = grid.offsets_y.index(worst[0]) // view.factor_y
        j = grid.offsets_x.index(worst[1]) // view.factor_x
        out.append(
            f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" '
            f'fill="none" stroke="#ffffff" stroke-width="2"/>'
        )
    out.append(
        f'<rect x="{left - 0.5}" y="{top - 0.5}" width="{width_map + 1}" height="{height_map + 1}" '
        f'fill="none" stroke="{INK}" stroke-width="1"/>'
    )
    out.append(_colour_bar(scale, bar_x, top, height_map, atol))
    out.append("</svg>")
    return "".join(out)


def angle_svg(points: Sequence[AnglePoint], *, atol: float | None = None, axis: str = "rotation angle") -> str:
    """Return an inline SVG bar plot of error by rotation angle (or by ``axis``), with the tolerance dashed."""
    n = len(points)
    left, top, plot_h = 64, 16, 180
    slot = max(14, min(48, 440 // max(n, 1)))
    width = left + n * slot + 24
    height = top + plot_h + 44
    finite = [p.error for p in points if math.isfinite(p.error)]
    vmax = _nice_ceiling(max([atol or 0.0, *finite]) if finite or atol else 1.0)
    out = [_svg_open(width, height, "Error by rotation angle")]
    for k in range(5):
        value = vmax * k / 4
        y = top + plot_h - plot_h * k / 4
        out.append(f'<line x1="{left}" y1="{_n(y)}" x2="{left + n * slot}" y2="{_n(y)}" stroke="{_GRID}"/>')
        out.append(_text(left - 6, y + 4, format_error(value), anchor="end", size=11, fill=_MUTED))
    label_every = max(1, math.ceil(n * 34 / (n * slot or 1)))
    for k, p in enumerate(points):
        failed = p.fails(atol)
        frac = 1.0 if not math.isfinite(p.error) else min(1.0, max(0.0, p.error / vmax))
        h = plot_h * frac
        x = left + k * slot + slot * 0.15
        out.append(
            f'<rect x="{_n(x)}" y="{_n(top + plot_h - h)}" width="{_n(slot * 0.7)}" height="{_n(h)}" '
            f'fill="{_FAIL if failed else _PASS}"><title>{escape(p.label)}: '
            f"{escape(format_error(p.error))}{' (fails)' if failed else ''}</title></rect>"
        )
        if k % label_every == 0:
            out.append(
                _text(left + (k + 0.5) * slot, top + plot_h + 16, p.label, anchor="middle", size=11)
            )
    if atol is not None and atol <= vmax:
        y = top + plot_h - plot_h * atol / vmax
        out.append(
            f'<line x1="{left}" y1="{_n(y)}" x2="{left + n * slot}" y2="{_n(y)}" stroke="{INK}" '
            f'stroke-dasharray="5 3"/>'
        )
        out.append(_text(left + n * slot + 2, y + 4, "atol", size=11, fill=INK))
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + n * slot}" y2="{top + plot_h}" stroke="{INK}"/>')
    out.append(_text(left + n * slot / 2, height - 6, axis, anchor="middle", weight="600"))
    out.append("</svg>")
    return "".join(out)


def share_svg(profile: "Profile") -> str:
    """Return an inline SVG bar chart of an attribution's shares (linear), in execution order, culprit in red.

    Layers with no share are left out; the first layer above its local floor is tagged.
    """
    layers = [layer for layer in profile.layers if (layer.share or 0) > 0]
    culprit = profile.culprit
    first = profile.first_break
    row, label_w, bar_w = 18, 280, 360
    top = 26
    width = label_w + bar_w + 190
    height = top + row * max(1, len(layers)) + 10
    out = [_svg_open(width, height, "Share of the equivariance error by layer")]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + bar_w * tick
        out.append(f'<line x1="{_n(x)}" y1="{top - 4}" x2="{_n(x)}" y2="{height - 8}" stroke="{_GRID}"/>')
        out.append(_text(x, top - 10, f"{tick:.0%}", anchor="middle", size=11, fill=_MUTED))
    for k, layer in enumerate(layers):
        y = top + k * row
        is_culprit = culprit is not None and (layer is culprit or layer == culprit)
        name = f"{layer.qualname or '<input>'} ({layer.op})" if layer.op else layer.qualname
        short = name if len(name) <= 40 else name[:19] + "…" + name[-20:]
        share = layer.share or 0.0
        detail = f"{name}: share {share:.1%}, contribution {format_error(layer.contribution or 0.0)} per image"
        out.append(
            _text(label_w - 8, y + 13, short, anchor="end", size=12,
                  fill=_FAIL if is_culprit else INK, weight="700" if is_culprit else None,
                  title=detail + (f" · {where}" if (where := layer_location(layer)) else ""))
        )
        end = label_w + bar_w * min(1.0, share)
        out.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{_n(max(1.0, end - label_w))}" height="{row - 6}" '
            f'fill="{_FAIL if is_culprit else "#e8a33d"}"><title>{escape(detail)}</title></rect>'
        )
        value = f"{share:.1%}" + ("  ← largest share" if is_culprit else "") + \
            ("  · first above its floor" if layer is first else "")
        out.append(_text(end + 6, y + 13, value, size=11, fill=_FAIL if is_culprit else _MUTED,
                         weight="700" if is_culprit else None))
    out.append("</svg>")
    return "".join(out)


def profile_svg(profile: "Profile") -> str:
    """Return an inline SVG bar chart of the per-layer error (log scale), culprit in red.

    Each bar is one layer's error in execution order; the black tick is the numerical-noise floor it
    was judged against, so a bar past its tick is a layer where equivariance broke. Hovering a name
    shows its figures and source location.
    """
    layers = profile.layers
    culprit = profile.culprit.qualname if profile.culprit is not None else None
    row, label_w, bar_w = 18, 280, 360
    top = 26
    width = label_w + bar_w + 130
    height = top + row * len(layers) + 10
    positive = [v for layer in layers for v in (layer.error, layer.noise) if v > 0 and math.isfinite(v)]
    lo = 10 ** math.floor(math.log10(min(positive))) if positive else 1e-8
    hi = 10 ** math.ceil(math.log10(max(positive))) if positive else 1.0
    if hi <= lo:
        hi = lo * 10
    # Ten decades show float noise (1e-7) beside aliasing (1e-1); smaller values sit at the left edge.
    lo = max(lo, hi / 10**PROFILE_DECADES)

    def x_of(value: float) -> float:
        if not math.isfinite(value):
            return label_w + bar_w
        if value <= lo:
            return label_w
        return label_w + bar_w * (math.log10(value) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    out = [_svg_open(width, height, "Equivariance error by layer")]
    first, last = round(math.log10(lo)), round(math.log10(hi))
    label_every = max(1, math.ceil((last - first) * 44 / bar_w))
    for e in range(first, last + 1):
        if (last - e) % label_every:
            continue
        x = x_of(10.0**e)
        out.append(f'<line x1="{_n(x)}" y1="{top - 4}" x2="{_n(x)}" y2="{height - 8}" stroke="{_GRID}"/>')
        out.append(_text(x, top - 10, f"1e{e}", anchor="middle", size=11, fill=_MUTED))
    for k, layer in enumerate(layers):
        y = top + k * row
        is_culprit = layer.qualname == culprit
        broke = layer.error > layer.noise
        name = f"{layer.qualname or '<input>'} ({layer.op})" if layer.op else layer.qualname
        short = name if len(name) <= 40 else name[:19] + "…" + name[-20:]
        out.append(
            _text(label_w - 8, y + 13, short, anchor="end", size=12,
                  fill=_FAIL if is_culprit else INK, weight="700" if is_culprit else None,
                  title=f"{name}: error {format_error(layer.error)}, noise {format_error(layer.noise)}"
                  + (f" · {where}" if (where := layer_location(layer)) else ""))
        )
        colour = _FAIL if is_culprit else ("#e8a33d" if broke else "#8fb8de")
        x_end = x_of(layer.error)
        out.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{_n(max(1.0, x_end - label_w))}" height="{row - 6}" '
            f'fill="{colour}"><title>{escape(name)}: {escape(format_error(layer.error))}</title></rect>'
        )
        xn = x_of(layer.noise)
        out.append(
            f'<line x1="{_n(xn)}" y1="{y + 1}" x2="{_n(xn)}" y2="{y + row - 1}" stroke="{INK}" '
            f'stroke-width="2"/>'
        )
        value = format_error(layer.error) + ("  ← first break" if is_culprit else "")
        out.append(_text(max(x_end, xn) + 6, y + 13, value, size=11, fill=_FAIL if is_culprit else _MUTED,
                         weight="700" if is_culprit else None))
    out.append("</svg>")
    return "".join(out)


def _svg_open(width: float, height: float, label: str) -> str:
    return (
        f'<svg width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" role="img" aria-label="{escape(label)}" '
        f'style="{_FONT}">'
    )


def _text(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str | None = None,
    size: int = 12,
    fill: str = INK,
    weight: str | None = None,
    title: str | None = None,
) -> str:
    attrs = f'x="{_n(x)}" y="{_n(y)}" font-size="{size}" fill="{fill}"'
    if anchor:
        attrs += f' text-anchor="{anchor}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    inner = escape(text) + (f"<title>{escape(title)}</title>" if title else "")
    return f"<text {attrs}>{inner}</text>"


def _colour_bar(scale: Scale, x: float, top: float, height: float, atol: float | None) -> str:
    steps = 48
    out = []
    for k in range(steps):
        # Top of the bar is the largest error.
        t = 1 - (k + 0.5) / steps
        out.append(
            f'<rect x="{_n(x)}" y="{_n(top + height * k / steps)}" width="14" '
            f'height="{_n(height / steps + 0.6)}" fill="{hex_colour(ramp(t))}"/>'
        )
    out.append(f'<rect x="{_n(x)}" y="{_n(top)}" width="14" height="{_n(height)}" fill="none" stroke="{INK}"/>')
    out.append(_text(x + 20, top + 9, format_error(scale.vmax), size=11, fill=INK))
    out.append(_text(x + 20, top + height, format_error(scale.vmin), size=11, fill=INK))
    if atol is not None and scale.vmin < atol < scale.vmax:
        y = top + height * (1 - scale.position(atol))
        if top + 18 < y < top + height - 14:
            out.append(
                f'<line x1="{_n(x - 3)}" y1="{_n(y)}" x2="{_n(x + 17)}" y2="{_n(y)}" stroke="{INK}" '
                f'stroke-width="2"/>'
            )
            out.append(_text(x + 20, y + 4, f"atol {format_error(atol)}", size=11, fill=INK))
    return "".join(out)


def _ticks(n: int) -> list[int]:
    """Tick positions for an axis of ``n`` cells: about eight, at a step of 1, 2, 4, 5, 8, ..."""
    if n <= 0:
        return []
    for step in (1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100):
        if n / step <= 9:
            break
    else:
        step = math.ceil(n / 8)
    return list(range(0, n, step))


def _span(offsets: list[int], index: int, factor: int, full: list[int]) -> str:
    if factor == 1:
        return str(offsets[index])
    last = full[min(len(full) - 1, index * factor + factor - 1)]
    return f"{offsets[index]}..{last}"


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (axis tops)."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        top = m * 10**exp
        if top >= value * (1 - 1e-12):
            return top
    return 10 ** (exp + 1)


def _n(value: float) -> str:
    """A coordinate: integers without a fraction, others to 0.1 px (keeps output short and stable)."""
    rounded = round(value, 1)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:.1f}"
