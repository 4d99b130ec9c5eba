"""Render a baseline comparison: regressions, improvements, new checks and stale entries as rich tables.

Reads a :class:`~pytest_equivariance.gates.baseline.Comparison`; computes nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from pytest_equivariance.gates.baseline import BaselineEntry, BaselineKey, Comparison, FigureChange, FingerprintChange


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


def _check_cell(key: "BaselineKey") -> Text:
    # The test id, and below it which of its checks: keeps the table narrow enough for 80 columns.
    cell = Text(key.test_id)
    cell.append(f"\n#{key.index} {key.kind} {key.device}/{key.dtype}", style="dim")
    return cell


def _table(title: str, style: str) -> Table:
    table = Table(title=title, title_style=style, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False)
    table.add_column("test / check", overflow="fold", ratio=1)
    return table


def _changes_table(title: str, changes: list["FigureChange"], style: str) -> Table:
    table = _table(title, style)
    table.add_column("figure", no_wrap=True)
    table.add_column("baseline", justify="right", no_wrap=True)
    table.add_column("now", justify="right", no_wrap=True)
    table.add_column("change", justify="right", style=style, no_wrap=True)
    table.add_column("allowed", justify="right", no_wrap=True)
    for c in changes:
        table.add_row(_check_cell(c.key), c.figure, format_figure(c.baseline), format_figure(c.now),
                      format_change(c.change), f"{c.tol * 100:.0f}%")
    return table


def _entries_table(title: str, entries: list["BaselineEntry"], style: str) -> Table:
    table = _table(title, style)
    table.add_column("figures", overflow="fold", ratio=1)
    for e in entries:
        figures = ", ".join(f"{name}={format_figure(v)}" for name, v in sorted(e.figures.items()))
        table.add_row(_check_cell(e.key), figures)
    return table


def _fingerprints_table(title: str, changes: list["FingerprintChange"], style: str) -> Table:
    table = _table(title, style)
    table.add_column("what differs", overflow="fold", ratio=1)
    table.add_column("figures (baseline -> now)", overflow="fold", ratio=1)
    for c in changes:
        moved = {f.figure: f for f in c.changes}
        figures = ", ".join(
            f"{name}={format_figure(c.baseline.figures[name])}->{format_figure(c.now.figures[name])}"
            + (f" ({format_change(moved[name].change)})" if name in moved else "")
            for name in sorted(set(c.baseline.figures) & set(c.now.figures))
        )
        table.add_row(_check_cell(c.key), c.reason, figures)
    return table


def summary_line(comparison: "Comparison") -> str:
    """Return the one-line count of a comparison: regressed, improved, weights changed, new, ..."""
    summary = (f"{len(comparison.regressions)} regressed, {len(comparison.improvements)} improved, "
               f"{comparison.weights_changed} weights changed, ")
    if comparison.inputs_changed:
        summary += f"{comparison.inputs_changed} inputs changed, "
    return summary + (f"{len(comparison.new)} new, {len(comparison.stale)} stale, "
                      f"{comparison.unchanged} unchanged, {comparison.not_run} not run")


def comparison_renderable(comparison: "Comparison", *, path: str, updated: bool = False) -> RenderableType:
    """Return the tables of a comparison with the baseline at ``path``.

    ``updated`` says the run rewrote the baseline, so the tables list what changed in the file rather
    than what failed.
    """
    parts: list[RenderableType] = []
    regressed, stale = len(comparison.regressions), len(comparison.stale)
    if comparison.regressions:
        if updated:
            title = f"Figures now worse than the old baseline ({regressed}), written to {path}"
            style = "yellow"
        else:
            title, style = f"Robustness regressions against {path} ({regressed})", "bold red"
        parts.append(_changes_table(title, comparison.regressions, style))
    if comparison.improvements:
        title = f"Improvements ({len(comparison.improvements)})"
        parts.append(_changes_table(title, comparison.improvements, "green"))
    if comparison.fingerprint_changes:
        count = len(comparison.fingerprint_changes)
        if updated:
            title, style = f"Checks on other weights or inputs than the old baseline ({count})", "yellow"
        elif comparison.strict_weights:
            title, style = f"Weights or inputs changed, gated by --equiv-baseline-strict-weights ({count})", "bold red"
        else:
            title, style = f"Weights or inputs changed: figures not compared ({count})", "yellow"
        parts.append(_fingerprints_table(title, comparison.fingerprint_changes, style))
    if comparison.new:
        title = f"New checks, not in the baseline ({len(comparison.new)})"
        parts.append(_entries_table(title, comparison.new, "cyan"))
    if comparison.stale:
        what = "Removed from the baseline" if updated else "Stale baseline entries"
        title = f"{what}: no longer run by their tests ({stale})"
        parts.append(_entries_table(title, comparison.stale, "yellow"))
    summary = summary_line(comparison)
    if updated:
        parts.append(Text(f"baseline {path} updated: {summary}"))
    else:
        parts.append(Text(f"baseline {path}: {summary}"))
        if comparison.regressions:
            parts.append(Text(
                "A regression is a figure worse than its baseline by more than "
                "max(allowed × |baseline|, floor), the floor being the dtype's noise level for error "
                "figures; raise the tolerance with --equiv-regression-tol or "
                "@pytest.mark.equiv_regression_tol(...), or accept the new figures with "
                f"--equiv-baseline {path} --equiv-baseline-update."
            ))
        if comparison.fingerprint_changes and not comparison.strict_weights:
            parts.append(Text(
                "A check whose model weights or inputs differ from its baseline entry's is not gated: its "
                "figures describe another model. Seed the model's construction (marked tests are seeded "
                "unless --equiv-no-seed-models), accept the new weights with --equiv-baseline-update, or "
                "gate on them with --equiv-baseline-strict-weights."
            ))
        elif comparison.fingerprint_changes:
            parts.append(Text(
                "--equiv-baseline-strict-weights fails the run when a check's weights or inputs differ "
                f"from its baseline entry's; accept them with --equiv-baseline {path} --equiv-baseline-update."
            ))
        if not comparison.failed and (comparison.improvements or comparison.new or comparison.stale):
            parts.append(Text(f"Record the changes with --equiv-baseline {path} --equiv-baseline-update."))
    return Group(*parts)
