"""Terminal figures (rich): the error over a grid of 2-D shifts, and the error by rotation angle.

The heatmap draws two grid rows per text line with the upper half block ``▀`` (foreground = upper
row, background = lower row), so a 32 x 32 grid fits in 16 lines with square cells; larger grids are
reduced by block maxima. Colours come from :mod:`pytest_equivariance.report.colormap`, the same scale
the HTML report uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.style import Style
from rich.text import Text

from pytest_equivariance.report.colormap import Scale, flat, format_error, ramp
from pytest_equivariance.report.figures import (
    AnglePoint,
    angle_series,
    count_above,
    reduce_grid,
    worst_shift,
)

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult, ShiftGrid

HALF_BLOCK = "▀"
_LEGEND_CELLS = 24
_GUTTER = 6  # width of the dy tick labels left of the heatmap
_BAR = "█"
_PARTIAL = " ▏▎▍▌▋▊▉"  # eighths of a bar cell
_SHADES = " ░▒▓█"  # cells on a console without colour, small to large


def shift_heatmap(
    grid: "ShiftGrid",
    *,
    atol: float | None = None,
    max_rows: int = 16,
    max_cols: int = 48,
    title: str | None = None,
) -> RenderableType:
    """Return a rich renderable heatmap of ``grid``'s error over (dy, dx), with a colour legend.

    ``max_rows`` counts text lines (each shows two grid rows; one on a console without colour).
    ``atol`` lifts the top of the colour scale to the tolerance, so shifts within it stay dark, and adds a count of shifts above it.
    On a console without colour the cells are drawn with shade characters instead.
    """
    return ShiftHeatmap(grid, atol=atol, max_rows=max_rows, max_cols=max_cols, title=title)


class ShiftHeatmap:
    """A rich renderable: the heatmap of a :class:`ShiftGrid` (see :func:`shift_heatmap`)."""

    def __init__(
        self,
        grid: "ShiftGrid",
        *,
        atol: float | None = None,
        max_rows: int = 16,
        max_cols: int = 48,
        title: str | None = None,
    ) -> None:
        self.grid = grid
        self.atol = atol
        self.max_rows = max_rows
        self.max_cols = max_cols
        self.title = title
        self.scale = Scale(flat(grid.errors), floor=atol or 0.0)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        coloured = console.color_system is not None and not console.no_color
        # Without colour a text line shows one grid row, so the plot is twice as tall: reducing it
        # further would merge even and odd shifts and hide the lattice pattern it is there to show.
        view = reduce_grid(self.grid, 2 * self.max_rows, self.max_cols)
        heading = self.title or f"error ({self.grid.figure}) over shifts (dy, dx)"
        if view.factor_y > 1 or view.factor_x > 1:
            heading += f" · block max of {view.factor_y}x{view.factor_x} shifts"
        yield Text(heading, style="bold")
        yield _x_axis(view.offsets_x)
        step = 2 if coloured else 1
        for line_no, r in enumerate(range(0, len(view.errors), step)):
            line = Text()
            line.append(_y_tick(view.offsets_y[r], line_no), style="dim")
            if coloured:
                self._append_half_blocks(line, view.errors, r)
            else:
                line.append("".join(_shade(self.scale.position(v)) for v in view.errors[r]))
            yield line
        yield _legend_bar(self.scale, coloured)
        yield _summary(self.grid, self.atol)

    def _append_half_blocks(self, line: Text, errors: list[list[float]], r: int) -> None:
        top = errors[r]
        bottom = errors[r + 1] if r + 1 < len(errors) else None
        for j, value in enumerate(top):
            fg = _rgb(self.scale.colour(value))
            bg = _rgb(self.scale.colour(bottom[j])) if bottom is not None else None
            line.append(HALF_BLOCK, style=Style(color=fg, bgcolor=bg))


def angle_plot(
    points: Sequence[AnglePoint], *, atol: float | None = None, width: int = 32
) -> RenderableType:
    """Return a rich renderable bar plot of error by rotation angle, one line per angle.

    Bars of failing angles (``passed`` False, or error above ``atol`` when pass/fail is unknown)
    are red, the others green; a ``│`` marks the tolerance when it falls inside the plot.
    """
    lines = [Text("error (max_abs) by rotation angle", style="bold")]
    if not points:
        lines.append(Text("no angles", style="dim"))
        return Group(*lines)
    top = max([atol or 0.0] + [p.error for p in points if p.error == p.error])
    top = top if top > 0 else 1.0
    label_width = max(len(p.label) for p in points)
    tol_cell = None if not atol else min(width - 1, int(atol / top * width))
    marked = False
    for p in points:
        failed = p.fails(atol)
        colour = "red" if failed else "green"
        bar = _bar(p.error / top if p.error == p.error else 1.0, width)
        if tol_cell is not None and bar[tol_cell] == " ":
            bar = bar[:tol_cell] + "│" + bar[tol_cell + 1 :]
            marked = True
        line = Text(f"{p.label:>{label_width}} ")
        line.append(bar, style=colour)
        line.append(f" {format_error(p.error)}", style="bold red" if failed else "")
        lines.append(line)
    if atol is not None:
        lines.append(Text(f"tolerance atol={format_error(atol)}" + (" (│)" if marked else ""), style="dim"))
    return Group(*lines)


def result_figure(result: "CheckResult") -> RenderableType | None:
    """Return the figure that fits ``result`` (its shift heatmap or angle plot), or None.

    The terminal report (``report/terminal.py``) calls this for failing checks.
    """
    if result.grid is not None and result.grid.errors:
        return shift_heatmap(result.grid, atol=result.atol)
    points = angle_series(result)
    if points:
        return angle_plot(points, atol=result.atol)
    return None


def _rgb(rgb: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*rgb)


def _x_axis(offsets_x: list[int]) -> Text:
    """``dx →`` with the first, middle and last offsets placed over their columns."""
    n = len(offsets_x)
    cells = [" "] * max(n, 1)
    ticks = sorted({0, n // 2, n - 1}) if n > 2 else list(range(n))
    end = -1
    for j in ticks:
        label = str(offsets_x[j])
        start = min(j, n - len(label)) if j == n - 1 else j
        if start <= end or start < 0:
            continue
        for k, ch in enumerate(label):
            if start + k < len(cells):
                cells[start + k] = ch
        end = start + len(label)
    axis = Text("dx →".rjust(_GUTTER - 1) + " ", style="dim")
    axis.append("".join(cells), style="dim")
    return axis


def _y_tick(dy: int, line_no: int) -> str:
    """The gutter of a text line: ``dy`` on the first line, ``↓`` on the second, a tick every 4."""
    label = str(dy) if line_no % 4 == 0 else ""
    prefix = "dy" if line_no == 0 else ("↓" if line_no == 1 else "")
    return f"{prefix:<2}{label:>{_GUTTER - 3}} "


def _shade(position: float) -> str:
    return _SHADES[min(len(_SHADES) - 1, int(position * len(_SHADES)))]


def _legend_bar(scale: Scale, coloured: bool) -> Text:
    line = Text(" " * _GUTTER)
    line.append(f"{format_error(scale.vmin)} ", style="dim")
    for k in range(_LEGEND_CELLS):
        t = k / (_LEGEND_CELLS - 1)
        if coloured:
            line.append(" ", style=Style(bgcolor=_rgb(ramp(t))))
        else:
            line.append(_shade(t))
    line.append(f" {format_error(scale.vmax)}", style="dim")
    return line


def _summary(grid: "ShiftGrid", atol: float | None) -> Text:
    """``min … · max … at (dy, dx) · n/N shifts above atol``, under the legend."""
    values = flat(grid.errors)
    finite = [v for v in values if v == v]
    line = Text(" " * _GUTTER)
    if finite:
        line.append(f"min {format_error(min(finite))} · max {format_error(max(finite))}")
    worst = worst_shift(grid)
    if worst is not None:
        line.append(f" at (dy={worst[0]}, dx={worst[1]})")
    if atol is not None:
        above = count_above(grid, atol)
        line.append(
            f" · {above}/{len(values)} shifts above atol={format_error(atol)}",
            style="bold red" if above else "green",
        )
    return line


def _bar(fraction: float, width: int) -> str:
    eighths = round(min(max(fraction, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    bar = _BAR * full + (_PARTIAL[part] if part else "")
    return bar.ljust(width)
