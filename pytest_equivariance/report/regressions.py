"""Render a baseline comparison: regressions, improvements, new checks and stale entries as rich tables.

Reads a :class:`~pytest_equivariance.baseline.Comparison`; computes nothing.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from pytest_equivariance.baseline import BaselineEntry, BaselineKey, Comparison, FigureChange


def format_figure(value: float) -> str:
    """Return a figure as a short string: 4 significant digits, ``nan``/``inf`` spelled out."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.4g}"


def format_change(change: float) -> str:
    """Return a relative change as a signed percentage (``+25.0%``), or as a factor (``×1.2e+06``) when
    the figure grew more than tenfold; ``nan`` and ``±inf`` spelled out."""
    if math.isnan(change):
        return "nan"
    if math.isinf(change):
        return "+inf" if change > 0 else "-inf"
    if change >= 9:
        return f"×{1 + change:.3g}"
    return f"{change * 100:+.1f}%"


def _check_label(key: "BaselineKey") -> str:
    return f"#{key.index} {key.kind} {key.device}/{key.dtype}"


def _test_width(keys: Iterable["BaselineKey"], cap: int = 60) -> int:
    # Test ids stay on one line up to ``cap`` characters; longer ones fold.
    return min(max((len(k.test_id) for k in keys), default=4), cap)


def _changes_table(title: str, changes: list["FigureChange"], style: str) -> Table:
    table = Table(title=title, title_style=style, title_justify="left", expand=False)
    table.add_column("test", overflow="fold", min_width=_test_width(c.key for c in changes))
    table.add_column("check", no_wrap=True)
    table.add_column("figure", no_wrap=True)
    table.add_column("baseline", justify="right", no_wrap=True)
    table.add_column("now", justify="right", no_wrap=True)
    table.add_column("change", justify="right", style=style, no_wrap=True)
    table.add_column("allowed", justify="right", no_wrap=True)
    for c in changes:
        allowed = f"{c.tol * 100:.0f}%"
        table.add_row(c.key.test_id, _check_label(c.key), c.figure, format_figure(c.baseline),
                      format_figure(c.now), format_change(c.change), allowed)
    return table


def _entries_table(title: str, entries: list["BaselineEntry"], style: str) -> Table:
    table = Table(title=title, title_style=style, title_justify="left", expand=False)
    table.add_column("test", overflow="fold", min_width=_test_width(e.key for e in entries))
    table.add_column("check", no_wrap=True)
    table.add_column("figures", overflow="fold")
    for e in entries:
        figures = ", ".join(f"{name}={format_figure(v)}" for name, v in sorted(e.figures.items()))
        table.add_row(e.key.test_id, _check_label(e.key), figures)
    return table


def comparison_renderable(comparison: "Comparison", *, path: str, updated: bool = False) -> RenderableType:
    """Return the tables of a comparison with the baseline at ``path``.

    ``updated`` says the run rewrote the baseline, so the tables list what changed in the file rather
    than what failed.
    """
    parts: list[RenderableType] = []
    if comparison.regressions:
        title = (f"Figures now worse than the old baseline ({len(comparison.regressions)}), written to {path}"
                 if updated else f"Robustness regressions against {path} ({len(comparison.regressions)})")
        parts.append(_changes_table(title, comparison.regressions, "bold red" if not updated else "yellow"))
    if comparison.improvements:
        parts.append(_changes_table(f"Improvements ({len(comparison.improvements)})", comparison.improvements, "green"))
    if comparison.new:
        title = f"New checks, not in the baseline ({len(comparison.new)})"
        parts.append(_entries_table(title, comparison.new, "cyan"))
    if comparison.stale:
        title = (f"Removed from the baseline: no longer run by their tests ({len(comparison.stale)})"
                 if updated else f"Stale baseline entries: no longer run by their tests ({len(comparison.stale)})")
        parts.append(_entries_table(title, comparison.stale, "yellow"))
    summary = (f"{len(comparison.regressions)} regressed, {len(comparison.improvements)} improved, "
               f"{len(comparison.new)} new, {len(comparison.stale)} stale, {comparison.unchanged} unchanged, "
               f"{comparison.not_run} not run")
    if updated:
        parts.append(Text(f"baseline {path} updated: {summary}"))
    else:
        parts.append(Text(f"baseline {path}: {summary}"))
        if comparison.regressions:
            parts.append(Text(
                "A regression is a figure worse than its baseline by more than max(allowed × |baseline|, floor), "
                "the floor being the dtype's noise level for error figures; "
                "raise the tolerance with --equiv-regression-tol or @pytest.mark.equiv_regression_tol(...), "
                f"or accept the new figures with --equiv-baseline {path} --equiv-baseline-update."
            ))
        elif comparison.improvements or comparison.new or comparison.stale:
            parts.append(Text(f"Record the changes with --equiv-baseline {path} --equiv-baseline-update."))
    return Group(*parts)


def render_text(renderable: RenderableType, *, width: int = 100, color: bool = False) -> str:
    """Return a rich renderable as text of the given width, with ANSI colours when ``color``."""
    console = Console(file=io.StringIO(), width=width, force_terminal=color, color_system="standard" if color else None,
                      highlight=False, soft_wrap=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]
