"""The per-layer error profile as a compact bar chart: plain text for assertion messages, rich for terminals.

One row per layer in execution order: name, op, a bar on a log scale, the error. Bar cells below the
layer's noise floor are drawn ``░``, cells above it ``█``, and ``┊`` marks the floor when the bar stops
short of it, so a clean layer reads as a short shaded bar and a broken one as a solid bar. The culprit
(the first layer above its floor) is marked ``▶``. Long runs of clean layers collapse to one line, and
only a few layers after the culprit are shown, since they inherit its error.

An attribution profile (``Profile.is_attribution``) is drawn as shares instead: the layers with the
largest shares of the output's Lie derivative, largest first, each bar linear in its share, the culprit
(the largest) marked ``▶`` and the first layer above its local floor tagged.

Nothing here measures anything: the figures come from :class:`~pytest_equivariance.check.result.Profile`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_equivariance.report.colormap import format_error

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pytest_equivariance.check.result import LayerError, Profile

#: Width of the bar, in cells.
BAR_WIDTH = 24
#: Runs of more clean layers than this collapse to first, "⋯ N clean layers ⋯", last.
MAX_CLEAN_RUN = 4
#: How many layers after the culprit are listed before the rest is summarised.
AFTER_CULPRIT = 4
_NAME_WIDTH = 28
_CULPRIT_MARK = "  ← first break"
_FIRST_MARK = "  · first above its floor"
#: An attribution chart lists the largest shares until they cover this much, at most MAX_SHARE_ROWS rows.
SHARE_COVERED = 0.95
MAX_SHARE_ROWS = 8
_OP_WIDTH = 20
_PARAM_KEYS = ("kernel_size", "stride", "padding", "dilation", "scale_factor", "mode", "ceil_mode", "groups")
_DEFAULTS = {"padding": "0", "dilation": "1", "ceil_mode": "False", "groups": "1"}  # not worth a column


@dataclass(frozen=True)
class Row:
    """One line of the chart: a layer, or a note standing for several layers (``layer`` is None)."""

    layer: "LayerError | None"
    note: str = ""
    culprit: bool = False


def chart_rows(profile: "Profile") -> list[Row]:
    """Return the chart's lines: layers in order, clean runs collapsed, the tail after the culprit cut."""
    layers = profile.layers
    culprit = _culprit_index(profile)
    end = len(layers) if culprit is None else min(len(layers), culprit + 1 + AFTER_CULPRIT)
    if len(layers) - end < 2:  # a one-line summary would stand for one layer: show it instead
        end = len(layers)
    rows: list[Row] = []
    run: list[LayerError] = []

    def flush() -> None:
        if len(run) > MAX_CLEAN_RUN:
            rows.append(Row(run[0]))
            rows.append(Row(None, f"⋯ {len(run) - 2} clean layers ⋯"))
            rows.append(Row(run[-1]))
        else:
            rows.extend(Row(layer) for layer in run)
        run.clear()

    for index, layer in enumerate(layers[:end]):
        if layer.error <= layer.noise and index != culprit:
            run.append(layer)
            continue
        flush()
        rows.append(Row(layer, culprit=index == culprit))
    flush()
    rest = layers[end:]
    if rest:
        worst = max(rest, key=lambda layer: layer.error)
        rows.append(
            Row(None, f"⋯ {len(rest)} more layers, largest error {format_error(worst.error)} "
                      f"at {worst.qualname} ⋯")
        )
    return rows


def log_range(profile: "Profile") -> tuple[float, float]:
    """Return the decades ``(lo, hi)`` (log10) the bars span: from below the noise floors to the top error."""
    values = [v for layer in profile.layers for v in (layer.error, layer.noise) if v > 0 and math.isfinite(v)]
    floors = [layer.noise for layer in profile.layers if layer.noise > 0]
    lo = math.floor(math.log10(min(floors or values or [1e-8]))) - 2
    hi = max(0, math.ceil(math.log10(max(values or [1.0]))))
    return float(lo), float(max(hi, lo + 1))


def bar_cells(error: float, noise: float, lo: float, hi: float, width: int = BAR_WIDTH) -> list[tuple[str, str]]:
    """Return the bar as ``(char, kind)`` cells; kind is "noise" (below the floor), "error" or "floor"."""

    def position(value: float) -> int:
        if not value > 0:
            return 0
        if not math.isfinite(value):
            return width
        return max(0, min(width, round((math.log10(value) - lo) / (hi - lo) * width)))

    filled, floor = position(error), position(noise)
    # Rounding to cells must not contradict the verdict: above the floor shows solid, below does not.
    filled = min(max(filled, floor + 1), width) if error > noise else min(filled, floor)
    cells = []
    for i in range(width):
        if i < filled:
            cells.append(("█", "error") if i >= floor else ("░", "noise"))
        elif i == floor:
            cells.append(("┊", "floor"))
        else:
            cells.append((" ", "blank"))
    return cells


def describe_layer(layer: "LayerError") -> str:
    """Return ``"Conv2d(kernel_size=3, stride=2)"``: the op with its parameters that matter for sampling."""
    if "index" in layer.params:  # strided slicing reads best as the user wrote it
        return f"x{layer.params['index']}"
    shown = [
        f"{k}={_short(layer.params[k])}"
        for k in _PARAM_KEYS
        if layer.params.get(k) is not None and _short(layer.params[k]) != _DEFAULTS.get(k)
    ]
    return f"{layer.op}({', '.join(shown)})" if shown else layer.op


def layer_location(layer: "LayerError") -> str:
    """Return ``path:line`` where the layer is defined (path relative to the working directory), or ""."""
    if not layer.file:
        return ""
    path = _short_path(layer.file)
    return f"{path}:{layer.line}" if layer.line else path


def culprit_lines(profile: "Profile") -> list[str]:
    """Return the lines that name the culprit, where it is, and the lint finding's fix (empty without one)."""
    c = profile.culprit
    if c is None:
        return []
    where = f" at {location}" if (location := layer_location(c)) else ""
    if profile.is_attribution:
        lines = [f"largest share of the equivariance error: {c.qualname}: {describe_layer(c)}{where} "
                 f"({_percent(c.share)} of the Lie derivative)"]
    else:
        lines = [f"equivariance first breaks at {c.qualname}: {describe_layer(c)}{where}"]
    if profile.finding_code:
        fix = (profile.finding_fix or "").strip()
        first, _, rest = fix.partition("\n")
        lines.append(f"{profile.finding_code}: {first}" if first else profile.finding_code)
        lines.extend(f"    {line}" if line else "" for line in rest.strip("\n").splitlines())
    return lines


def header(profile: "Profile") -> str:
    """Return the chart's title line: what was measured, under which transform."""
    under = f" under {profile.transform}" if profile.transform else ""
    if profile.is_attribution:
        return f"per-layer share of the equivariance error{under}: {profile.method}"
    return f"per-layer error{under}: {profile.method}" if profile.method else f"per-layer error{under}"


def profile_text(profile: "Profile", *, bar_width: int = BAR_WIDTH) -> str:
    """Return the profile as plain text (no colour), for AssertionError messages and logs."""
    if not profile.layers:
        return header(profile) + "\n  (no layer could be measured)"
    if profile.is_attribution:
        return _shares_text(profile, bar_width)
    lo, hi = log_range(profile)
    rows = chart_rows(profile)
    names, ops = _widths(rows)
    lines = [header(profile)]
    for row in rows:
        if row.layer is None:
            lines.append(f"    {row.note}")
            continue
        layer = row.layer
        bar = "".join(char for char, _ in bar_cells(layer.error, layer.noise, lo, hi, bar_width))
        mark = "▶" if row.culprit else " "
        suffix = _CULPRIT_MARK if row.culprit else ""
        lines.append(
            f"  {mark} {_fit(layer.qualname, names)}  {_fit(layer.op, ops)} │{bar}│ "
            f"{format_error(layer.error)}{suffix}"
        )
    lines.append(_legend(lo, hi))
    lines.extend(culprit_lines(profile))
    if profile.culprit is None:
        lines.append("no layer rises above its noise floor")
    return "\n".join(lines)


def profile_renderable(profile: "Profile", *, bar_width: int | None = None) -> "RenderableType":
    """Return the profile as a rich renderable: the same chart, the culprit and above-floor cells in red.

    Without ``bar_width`` the bars shrink (down to 8 cells) to fit the console, so rows never wrap.
    """
    return ProfileChart(profile, bar_width)


class ProfileChart:
    """Rich renderable of a :class:`Profile` (see :func:`profile_renderable`)."""

    def __init__(self, profile: "Profile", bar_width: int | None = None) -> None:
        self.profile = profile
        self.bar_width = bar_width

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        profile = self.profile
        yield Text(header(profile), style="bold")
        if not profile.layers:
            yield Text("  (no layer could be measured)", style="dim")
            return
        if profile.is_attribution:
            yield from self._shares(console, options)
            return
        lo, hi = log_range(profile)
        rows = chart_rows(profile)
        names, ops = _widths(rows)
        width = self.bar_width
        if width is None:  # name, op, value and the culprit's mark around the bar
            fixed = 4 + names + 2 + ops + 2 + 2 + 8 + (len(_CULPRIT_MARK) if profile.culprit else 0)
            width = max(8, min(BAR_WIDTH, options.max_width - fixed))
        styles = {"noise": "dim", "error": "red", "floor": "yellow", "blank": ""}
        for row in rows:
            if row.layer is None:
                yield Text(f"    {row.note}", style="dim")
                continue
            layer = row.layer
            clean = layer.error <= layer.noise
            quiet = "dim" if clean else ""
            text = Text("  ")
            text.append("▶ " if row.culprit else "  ", style="bold red")
            text.append(_fit(layer.qualname, names), style="bold red" if row.culprit else quiet)
            text.append("  ")
            text.append(_fit(layer.op, ops), style=quiet)
            text.append(" │")
            for char, kind in bar_cells(layer.error, layer.noise, lo, hi, width):
                text.append(char, style=styles[kind])
            text.append("│ ")
            text.append(format_error(layer.error), style="bold red" if row.culprit else quiet)
            if row.culprit:
                text.append(_CULPRIT_MARK, style="bold red")
            yield text
        yield Text(_legend(lo, hi), style="dim")
        yield from _culprit_texts(profile, "no layer rises above its noise floor")

    def _shares(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        profile = self.profile
        rows, tail = share_rows(profile)
        names, ops = _widths([Row(layer) for layer, _, _ in rows])
        width = self.bar_width
        if width is None:
            fixed = 4 + names + 2 + ops + 2 + 2 + 8 + len(_FIRST_MARK)
            width = max(8, min(BAR_WIDTH, options.max_width - fixed))
        for layer, is_culprit, is_first in rows:
            text = Text("  ")
            text.append("▶ " if is_culprit else "  ", style="bold red")
            text.append(_fit(layer.qualname, names), style="bold red" if is_culprit else "")
            text.append("  ")
            text.append(_fit(layer.op, ops))
            text.append(" │")
            filled = share_cells(layer.share or 0.0, width)
            text.append("█" * filled, style="red" if is_culprit else "yellow")
            text.append(" " * (width - filled))
            text.append("│ ")
            text.append(_percent(layer.share).rjust(6), style="bold red" if is_culprit else "")
            if is_first:
                text.append(_FIRST_MARK, style="yellow")
            yield text
        if tail:
            yield Text(f"    {tail}", style="dim")
        yield Text(_share_legend(profile), style="dim")
        yield from _culprit_texts(profile, _no_culprit(profile))
        for note in profile.notes:
            yield Text(f"note: {note}", style="dim")


def _culprit_texts(profile: "Profile", otherwise: str) -> Any:
    """Yield the culprit's lines (the first bold, the fix in cyan), or ``otherwise`` in green."""
    from rich.text import Text

    lines = culprit_lines(profile)
    if not lines:
        yield Text(otherwise, style="green")
        return
    yield Text(lines[0], style="bold")
    for line in lines[1:]:
        yield Text(line, style="cyan")


def share_rows(profile: "Profile") -> tuple[list[tuple["LayerError", bool, bool]], str]:
    """Return the attribution chart's rows ``(layer, is culprit, is first above its floor)``, largest
    share first, and a line summarising the layers left out ("" when none is)."""
    first = profile.first_break
    ranked = sorted((layer for layer in profile.layers if (layer.share or 0) > 0), key=lambda layer: -(layer.share or 0))
    shown: list["LayerError"] = []
    covered = 0.0
    for layer in ranked:
        if shown and (covered >= SHARE_COVERED or len(shown) >= MAX_SHARE_ROWS):
            break
        shown.append(layer)
        covered += layer.share or 0.0
    rows = [(layer, layer is profile.culprit or layer == profile.culprit, layer is first) for layer in shown]
    rest = [layer for layer in ranked if layer not in shown]
    exact = len(profile.layers) - len(ranked)
    parts = []
    if rest:
        parts.append(f"{len(rest)} more layers share {_percent(sum(layer.share or 0 for layer in rest))}")
    if exact:
        parts.append(f"{exact} layers with no share")
    tail = f"⋯ {', '.join(parts)} ⋯" if parts else ""
    if first is not None and first not in shown:
        tail += f"{'  ' if tail else ''}first above its floor: {first.qualname} ({_percent(first.share)})"
    return rows, tail


def share_cells(share: float, width: int) -> int:
    """Return how many cells of a linear bar ``width`` cells long a share fills (at least one when > 0)."""
    if not share > 0:
        return 0
    return max(1, min(width, round(share * width)))


def _shares_text(profile: "Profile", bar_width: int) -> str:
    rows, tail = share_rows(profile)
    names, ops = _widths([Row(layer) for layer, _, _ in rows]) if rows else (0, 0)
    lines = [header(profile)]
    for layer, is_culprit, is_first in rows:
        filled = share_cells(layer.share or 0.0, bar_width)
        bar = "█" * filled + " " * (bar_width - filled)
        lines.append(
            f"  {'▶' if is_culprit else ' '} {_fit(layer.qualname, names)}  {_fit(layer.op, ops)} │{bar}│ "
            f"{_percent(layer.share).rjust(6)}{_FIRST_MARK if is_first else ''}"
        )
    if tail:
        lines.append(f"    {tail}")
    lines.append(_share_legend(profile))
    lines.extend(culprit_lines(profile) or [_no_culprit(profile)])
    lines.extend(f"note: {note}" for note in profile.notes)
    return "\n".join(lines)


def _share_legend(profile: "Profile") -> str:
    total = f"; the output's Lie derivative is {format_error(profile.end_to_end or 0.0)} per image" \
        if profile.end_to_end is not None else ""
    return f"    bars: each layer's share of ‖L f‖² (linear){total}"


def _no_culprit(profile: "Profile") -> str:
    if any((layer.share or 0) > 0 for layer in profile.layers):
        return "no culprit named: the check passed"
    return "every layer is equivariant up to rounding"


def _percent(share: float | None) -> str:
    if share is None:
        return "–"
    if 0 < share < 0.001:
        return "<0.1%"
    return f"{share:.1%}"


def _legend(lo: float, hi: float) -> str:
    return f"    log scale 1e{int(lo)} … 1e{int(hi)};  ░ below noise floor  █ above  ┊ floor"


def _culprit_index(profile: "Profile") -> int | None:
    if profile.culprit is None:
        return None
    for index, layer in enumerate(profile.layers):
        if layer is profile.culprit or layer == profile.culprit:
            return index
    return None


def _widths(rows: list[Row]) -> tuple[int, int]:
    # chart_rows always keeps at least one layer of a non-empty profile.
    shown = [row.layer for row in rows if row.layer is not None]
    names = min(_NAME_WIDTH, max(len(layer.qualname) for layer in shown))
    ops = min(_OP_WIDTH, max(len(layer.op) for layer in shown))
    return names, ops


def _short_path(path: str) -> str:
    # Relative to the working directory when the file is under it, as pytest prints paths.
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative


def _fit(text: str, width: int) -> str:
    # Keep the end of long qualified names: "layer4.1.conv2" says more than "layer4.1.co".
    return text.ljust(width) if len(text) <= width else "…" + text[-(width - 1) :]


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)) and value and all(v == value[0] for v in value):
        return str(value[0])
    return str(tuple(value)) if isinstance(value, list) else str(value)
