"""One self-contained HTML report of equivariance checks: summary table, heatmaps, plots, profiles.

The file needs nothing but a browser: styles are inline, figures are inline SVG computed here (no
plotting library, no scripts, no fonts or images fetched from anywhere), and it reads the same
without JavaScript. Every piece of text that comes from a result (test ids, layer names, notes) is
escaped. The output is deterministic: the same results give the same bytes, so reports can be
diffed and committed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_equivariance.report.colormap import Scale, flat, format_error, hex_colour, ramp
from pytest_equivariance.report.profile import describe_layer, layer_location
from pytest_equivariance.report.figures import (
    AnglePoint,
    angle_series,
    count_above,
    reduce_grid,
    reproduce_hint,
    shift_series,
    title_of,
    worst_shift,
)

if TYPE_CHECKING:
    from pytest_equivariance.baseline import Comparison
    from pytest_equivariance.check.result import CheckResult, Profile, ShiftGrid
    from pytest_equivariance.runs import MergedCheck, RunFile

#: Grids larger than this (per side) are shown as block maxima.
MAX_CELLS = 64
#: Profiles with more layers than this start folded (a <details> element, no script needed).
PROFILE_OPEN_LAYERS = 40
#: How many decades the per-layer profile's log axis spans at most.
PROFILE_DECADES = 10
#: How many of a check's trials its table lists, worst first.
TRIAL_ROWS = 8

_PASS = "#2f9e6e"
_FAIL = "#d1495b"
_INK = "#1f2430"
_MUTED = "#6b7280"
_GRID = "#e5e7eb"
_FONT = "font-family:ui-sans-serif,system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1f2430;
  font: 15px/1.5 ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { background: #1f2430; color: #fff; padding: 20px 32px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 4px 0 0; color: #cbd5e1; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 48px; }
h2 { font-size: 18px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
pre { background: #1f2430; color: #e5e7eb; padding: 10px 14px; border-radius: 6px;
  overflow-x: auto; white-space: pre-wrap; word-break: break-all; margin: 0; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { font-weight: 600; font-size: 13px; color: #4b5563; background: #f9fafb; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id { overflow-wrap: anywhere; min-width: 14em; }
a { color: #2563eb; text-decoration: none; }
a:hover { text-decoration: underline; }
.card { background: #fff; border: 1px solid #e5e7eb; border-left: 6px solid #9ca3af;
  border-radius: 8px; padding: 18px 22px; margin: 0 0 20px; }
.card.passed { border-left-color: #2f9e6e; }
.card.failed { border-left-color: #d1495b; }
.card h2 { overflow-wrap: anywhere; }
.badge { display: inline-block; min-width: 44px; text-align: center; border-radius: 4px;
  padding: 1px 6px; font-size: 12px; font-weight: 700; color: #fff; letter-spacing: .03em; }
.badge.pass { background: #2f9e6e; }
.badge.fail { background: #d1495b; }
.totals { display: flex; gap: 12px; margin: 0 0 20px; }
.total { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 18px; }
.total b { display: block; font-size: 22px; }
.total.failed b { color: #d1495b; }
.total.passed b { color: #2f9e6e; }
dl.facts { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 4px 16px;
  margin: 0 0 8px; }
dl.facts dt { color: #6b7280; }
dl.facts dd { margin: 0; font-variant-numeric: tabular-nums; }
.figures { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
figure { margin: 8px 0 0; }
figcaption { color: #6b7280; font-size: 13px; max-width: 560px; }
.culprit { background: #fdf2f4; border: 1px solid #f5c2cb; border-radius: 6px; padding: 8px 12px; }
ul.notes { margin: 4px 0; padding-left: 20px; color: #4b5563; }
section.summary { margin-bottom: 28px; }
.muted { color: #6b7280; }
tr.disagree td { background: #fdf2f4; }
footer { color: #6b7280; font-size: 13px; text-align: center; padding: 0 0 24px; }
"""


#: Class of the element that wraps a fragment (notebook output): its styles apply inside it only.
FRAGMENT_CLASS = "equiv-report"
#: Rules of the page stylesheet that style the page itself, not its cards: left out of fragments.
_PAGE_ONLY = (":root", "*", "body", "header", "main", "footer")


def scoped_css(css: str = _CSS, scope: str = f".{FRAGMENT_CLASS}") -> str:
    """Return ``css`` with every rule limited to elements inside ``scope`` (page-level rules dropped).

    A notebook shows many outputs on one page: a fragment's styles must not restyle the notebook.
    """
    rules = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        names = [name.strip() for name in selectors.split(",")]
        if any(name.split(" ")[0] in _PAGE_ONLY for name in names):
            continue
        rules.append(", ".join(f"{scope} {name}" for name in names) + " {" + body + "}")
    base = f"{scope} {{ color: {_INK}; font: 15px/1.5 ui-sans-serif, system-ui, sans-serif; }}"
    return "\n".join([base, *rules])


def fragment(body: str) -> str:
    """Return ``body`` wrapped as a self-contained HTML fragment with its own scoped styles."""
    return f'<div class="{FRAGMENT_CLASS}"><style>{scoped_css()}</style>{body}</div>'


def check_card(result: "CheckResult", *, index: int = 1) -> str:
    """Return one check's card — the same as in the report — as a fragment (``CheckResult._repr_html_``)."""
    return fragment(_check_section(result, index))


def profile_card(profile: "Profile") -> str:
    """Return a per-layer profile (chart and culprit) as a fragment (``Profile._repr_html_``)."""
    parts = [f'<section class="card {"failed" if profile.culprit is not None else "passed"}">']
    if profile.transform:
        parts.append(f"<h2>Per-layer profile under {escape(profile.transform)}</h2>")
    if profile.culprit is not None:
        parts.append(_culprit(profile))
    if profile.layers:
        parts.append(_profile_block(profile))
    else:
        parts.append("<p>No layers were measured.</p>")
    parts.append("</section>")
    return fragment("".join(parts))


def render_html(results: Sequence["CheckResult"], *, title: str = "Equivariance report") -> str:
    """Return the report for ``results`` as one self-contained HTML5 document."""
    failed = sum(1 for r in results if not r.passed)
    subtitle = (f"{len(results)} check{'s' if len(results) != 1 else ''} · "
                f"{len(results) - failed} passed · {failed} failed")
    body = [_totals(results), _summary_table(results)]
    body.extend(_check_section(r, i) for i, r in enumerate(results, start=1))
    return _page(title, subtitle, body)


def render_runs_html(runs: Sequence["RunFile"], merged: Sequence["MergedCheck"], *,
                     title: str = "Equivariance report") -> str:
    """Return one page for several runs' results (``equiv-report``): where they agree and where not.

    A table lines every check up across the runs (verdict and worst error per run) and marks the
    checks whose verdicts or figures differ, or that a run did not run; below it, each test's cards
    from every run that ran it, so the page holds all of them.
    """
    checks = sum(len(run.results) for run in runs)
    differ = sum(not m.agree for m in merged)
    subtitle = (f"{len(runs)} run{'s' if len(runs) != 1 else ''} · {checks} checks · "
                f"{len(merged)} distinct · {differ} where the runs disagree")
    run_rows = "".join(
        f'<tr><td><code>{escape(run.name)}</code></td><td class="num">{len(run.results)}</td>'
        f'<td class="num">{len(run.results) - run.failed}</td><td class="num">{run.failed}</td></tr>'
        for run in runs
    )
    body = [
        '<section class="summary" id="runs"><h2>Runs</h2><table><thead><tr><th>Run</th>'
        '<th class="num">Checks</th><th class="num">Passed</th><th class="num">Failed</th></tr></thead>'
        f"<tbody>{run_rows}</tbody></table></section>",
        _merged_table(runs, merged),
    ]
    index = 0
    for m in merged:
        for run, result in zip(runs, m.results):
            if result is not None:
                index += 1
                body.append(_check_section(result, index, label=f"{run.name} · {title_of(result, index)}"))
    return _page(title, subtitle, body)


def _merged_table(runs: Sequence["RunFile"], merged: Sequence["MergedCheck"]) -> str:
    head = "".join(f"<th>{escape(run.name)}</th>" for run in runs)
    rows = []
    index = 0
    for m in merged:
        cells = []
        for result in m.results:
            if result is None:
                cells.append('<td class="muted">not run</td>')
                continue
            index += 1
            cells.append(f'<td><a href="#check-{index}">{_badge(result.passed)}</a> '
                         f"{escape(format_error(result.worst_error))}</td>")
        marks = [text for flag, text in ((m.verdicts_differ, "verdicts differ"), (m.figures_differ, "figures differ"),
                                         (m.weights_differ, "weights differ"), (m.missing, "not in every run"))
                 if flag]
        agreement = ('<span class="badge fail">' + escape(", ".join(marks)) + "</span>") if marks else "agree"
        rows.append(f'<tr class="{"disagree" if marks else "agree"}"><td class="id">{escape(m.test_id)}</td>'
                    f"<td>#{m.index} {escape(m.kind.replace('_', ' '))}</td>{''.join(cells)}<td>{agreement}</td></tr>")
    body = "\n".join(rows) if rows else f'<tr><td colspan="{len(runs) + 3}">No checks.</td></tr>'
    return ('<section class="summary" id="summary"><h2>Checks across the runs</h2>'
            f"<p>Each run's verdict and worst error.</p><table><thead><tr><th>Test</th><th>Check</th>{head}"
            f"<th>Agreement</th></tr></thead><tbody>\n{body}\n</tbody></table></section>")


def render_comparison_html(comparison: "Comparison", *, old: str, new: str,
                           title: str = "Equivariance comparison") -> str:
    """Return one page comparing run ``new`` with run ``old`` (``equiv-report --compare``)."""
    from pytest_equivariance.report.regressions import format_change, summary_line

    def changes(heading: str, items: Sequence[Any], css: str) -> str:
        if not items:
            return ""
        rows = "".join(
            f'<tr><td class="id">{escape(c.key.test_id)}</td><td>#{c.key.index} {escape(c.key.kind)}</td>'
            f"<td>{escape(c.figure)}</td><td class=\"num\">{escape(format_error(c.baseline))}</td>"
            f'<td class="num">{escape(format_error(c.now))}</td>'
            f'<td class="num">{escape(format_change(c.change))}</td></tr>' for c in items
        )
        return (f'<section class="card {css}"><h2>{escape(heading)} ({len(items)})</h2><table><thead><tr>'
                '<th>Test</th><th>Check</th><th>Figure</th><th class="num">Before</th><th class="num">Now</th>'
                f'<th class="num">Change</th></tr></thead><tbody>{rows}</tbody></table></section>')

    def entries(heading: str, items: Sequence[Any]) -> str:
        if not items:
            return ""
        rows = "".join(
            f'<tr><td class="id">{escape(e.key.test_id)}</td><td>#{e.key.index} {escape(e.key.kind)}</td>'
            f"<td>{escape(', '.join(f'{k}={format_error(v)}' for k, v in sorted(e.figures.items())))}</td></tr>"
            for e in items
        )
        return (f'<section class="card"><h2>{escape(heading)} ({len(items)})</h2><table><thead><tr><th>Test</th>'
                f"<th>Check</th><th>Figures</th></tr></thead><tbody>{rows}</tbody></table></section>")

    fingerprints = ""
    if comparison.fingerprint_changes:
        rows = "".join(f'<tr><td class="id">{escape(c.key.test_id)}</td><td>#{c.key.index} {escape(c.key.kind)}</td>'
                       f"<td>{escape(c.reason)}</td></tr>" for c in comparison.fingerprint_changes)
        fingerprints = ('<section class="card"><h2>Weights or inputs changed: figures not compared '
                        f"({len(comparison.fingerprint_changes)})</h2><table><thead><tr><th>Test</th><th>Check</th>"
                        f"<th>What differs</th></tr></thead><tbody>{rows}</tbody></table></section>")
    status = "failed" if comparison.failed else "passed"
    body = [
        f'<section class="card {status}"><h2>{_badge(not comparison.failed)} {escape(new)} against '
        f"{escape(old)}</h2><p>{escape(summary_line(comparison))}.</p></section>",
        changes("Robustness regressions", comparison.regressions, "failed"),
        changes("Improvements", comparison.improvements, "passed"),
        fingerprints,
        entries("New checks", comparison.new),
        entries("No longer run", comparison.stale),
    ]
    return _page(title, f"{new} against {old}", [part for part in body if part])


def _page(title: str, subtitle: str, body: Sequence[str]) -> str:
    from pytest_equivariance import __version__

    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="pytest-equivariance">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(subtitle)}</p>",
        "</header>",
        "<main>",
        *body,
        "</main>",
        f"<footer>pytest-equivariance {escape(__version__)}</footer>",
        "</body>",
        "</html>",
        "",
    ])


def write_html(
    path: str | Path, results: Sequence["CheckResult"], *, title: str = "Equivariance report"
) -> Path:
    """Write the report for ``results`` to ``path`` (parents created) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(results, title=title), encoding="utf-8")
    return out


# --- figures -----------------------------------------------------------------------------------


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
        f'fill="none" stroke="{_INK}" stroke-width="1"/>'
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
            f'<line x1="{left}" y1="{_n(y)}" x2="{left + n * slot}" y2="{_n(y)}" stroke="{_INK}" '
            f'stroke-dasharray="5 3"/>'
        )
        out.append(_text(left + n * slot + 2, y + 4, "atol", size=11, fill=_INK))
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + n * slot}" y2="{top + plot_h}" stroke="{_INK}"/>')
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
                  fill=_FAIL if is_culprit else _INK, weight="700" if is_culprit else None,
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
                  fill=_FAIL if is_culprit else _INK, weight="700" if is_culprit else None,
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
            f'<line x1="{_n(xn)}" y1="{y + 1}" x2="{_n(xn)}" y2="{y + row - 1}" stroke="{_INK}" '
            f'stroke-width="2"/>'
        )
        value = format_error(layer.error) + ("  ← first break" if is_culprit else "")
        out.append(_text(max(x_end, xn) + 6, y + 13, value, size=11, fill=_FAIL if is_culprit else _MUTED,
                         weight="700" if is_culprit else None))
    out.append("</svg>")
    return "".join(out)


# --- page parts --------------------------------------------------------------------------------


def _totals(results: Sequence["CheckResult"]) -> str:
    failed = sum(1 for r in results if not r.passed)
    return (
        '<div class="totals">'
        f'<div class="total"><b>{len(results)}</b>checks</div>'
        f'<div class="total passed"><b>{len(results) - failed}</b>passed</div>'
        f'<div class="total failed"><b>{failed}</b>failed</div>'
        "</div>"
    )


def _summary_table(results: Sequence["CheckResult"]) -> str:
    rows = []
    for i, r in enumerate(results, start=1):
        worst = r.worst
        consistency = r.consistency
        rows.append(
            "<tr>"
            f'<td class="num">{i}</td>'
            f'<td class="id"><a href="#check-{i}">{escape(title_of(r, i))}</a></td>'
            f"<td>{escape(r.kind.replace('_', ' '))}</td>"
            f"<td>{_badge(r.passed)}</td>"
            f'<td class="num">{escape(format_error(r.worst_error))}</td>'
            f'<td class="num">{escape(format_error(r.atol))}</td>'
            f"<td>{escape(worst.transform) if worst else '–'}</td>"
            f'<td class="num">{escape(_percent(consistency)) if consistency is not None else "–"}</td>'
            f'<td class="num">{r.seed}</td>'
            "</tr>"
        )
    body = "\n".join(rows) if rows else '<tr><td colspan="9">No equivariance checks ran.</td></tr>'
    return (
        '<section class="summary" id="summary"><h2>Summary</h2>'
        "<table><thead><tr>"
        '<th class="num">#</th><th>Test</th><th>Check</th><th>Result</th>'
        '<th class="num">Worst error</th><th class="num">atol</th><th>Worst transform</th>'
        '<th class="num">Consistency</th><th class="num">Seed</th>'
        f"</tr></thead><tbody>\n{body}\n</tbody></table></section>"
    )


def _check_section(r: "CheckResult", index: int, *, label: str | None = None) -> str:
    status = "passed" if r.passed else "failed"
    parts = [
        f'<section class="card {status}" id="check-{index}">',
        f"<h2>{_badge(r.passed)} {escape(label or title_of(r, index))}</h2>",
        _facts(r),
    ]
    if r.profile is not None and r.profile.culprit is not None:
        parts.append(_culprit(r.profile))
    figures = []
    if r.grid is not None and r.grid.errors:
        figures.append(_figure(heatmap_svg(r.grid, atol=r.atol), _grid_caption(r)))
    points = angle_series(r)
    if points:
        figures.append(_figure(angle_svg(points, atol=r.atol), "Largest error at each rotation angle; "
                               "the dashed line is the tolerance."))
    fractional = shift_series(r)
    if fractional:
        figures.append(_figure(angle_svg(fractional, atol=r.atol, axis="sub-pixel shift length"),
                               "Largest error at each sub-pixel (band-limited) shift, by its length in "
                               "pixels; the dashed line is the tolerance."))
    if figures:
        parts.append('<div class="figures">' + "".join(figures) + "</div>")
    if r.profile is not None and r.profile.layers:
        parts.append(_profile_block(r.profile))
    if r.trials:
        parts.append(_trials_table(r))
    if r.notes:
        parts.append("<h3>Notes</h3>" + _list(r.notes, "notes"))
    parts.append("<h3>Reproduce</h3>")
    parts.append(f"<pre><code>{escape(reproduce_hint(r))}</code></pre>")
    parts.append("</section>")
    return "\n".join(parts)


def _facts(r: "CheckResult") -> str:
    facts = [
        ("check", r.kind.replace("_", " ")),
        ("mode", r.mode if not r.group else f"group {r.group}, {r.mode}"),
        ("worst error", format_error(r.worst_error)),
        ("tolerance", f"atol {format_error(r.atol)}, rtol {format_error(r.rtol)}" if r.max_rel_l2 is None
         else f"relative L2 ≤ {format_error(r.max_rel_l2)} inside the disk"),
        ("worst transform", r.worst.transform if r.worst else "–"),
        ("trials", str(len(r.trials))),
        ("input shape", "×".join(str(s) for s in r.input_shape)),
        ("dims", ", ".join(str(d) for d in r.dims)),
        ("device", f"{r.device}, {r.dtype}"),
        ("seed", str(r.seed)),
    ]
    if r.fields:
        facts.append(("fields", "; ".join(f"{where}: {what}" for where, what in r.fields.items())))
    if r.weights_fingerprint is not None:
        facts.append(("weights fingerprint", r.weights_fingerprint))
    if r.inputs_fingerprint is not None:
        facts.append(("inputs fingerprint", r.inputs_fingerprint))
    if r.lattice is not None:
        facts.append(("lattice", "×".join(str(s) for s in r.lattice)))
    if r.consistency is not None:
        facts.append(("consistency", _percent(r.consistency)
                      + (f" (min {_percent(r.min_consistency)})" if r.min_consistency is not None else "")))
    if r.prob_change is not None:
        facts.append(("mean Δp(top class)", format_error(r.prob_change)))
    if r.psnr is not None:
        facts.append(("PSNR (worst)", _db(r.psnr) + (f" (min {_db(r.min_psnr)})" if r.min_psnr is not None else "")))
    if r.all_shift_consistency is not None:
        facts.append(("consistent under every transform", _percent(r.all_shift_consistency)))
    if r.measure != "error":
        facts.append(("measure", r.measure))
    body = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{body}</dl>'


def _culprit(profile: "Profile") -> str:
    c = profile.culprit
    assert c is not None
    if profile.is_attribution:
        text = f"Largest share of the equivariance error: <code>{escape(c.qualname)}</code>: " \
               f"{escape(describe_layer(c))}"
    else:
        text = f"Equivariance first breaks at <code>{escape(c.qualname)}</code>: {escape(describe_layer(c))}"
    where = layer_location(c)
    if where:
        text += f" at <code>{escape(where)}</code>"
    if profile.is_attribution and c.share is not None:
        text += f" ({c.share:.0%} of the Lie derivative)"
    if profile.finding_code:
        text += f" — {escape(profile.finding_code)}"
    if profile.finding_fix:
        text += f": {escape(profile.finding_fix)}"
    return f'<p class="culprit">{text}</p>'


def _profile_block(profile: "Profile") -> str:
    if profile.is_attribution:
        shown = sum(1 for layer in profile.layers if (layer.share or 0) > 0)
        caption = "Each layer's share of the squared norm of the output's Lie derivative, in execution order"
        if shown < len(profile.layers):
            caption += f"; {len(profile.layers) - shown} layers with no share are left out"
        caption += f". Measured by {escape(profile.method)}."
        if profile.end_to_end is not None:
            caption += f" The output's Lie derivative is {escape(format_error(profile.end_to_end))} per image."
        caption += "".join(f" {escape(note)}." for note in profile.notes)
        opened = " open" if shown <= PROFILE_OPEN_LAYERS else ""
        return (
            f"<details class=\"profile\"{opened}><summary><h3 style=\"display:inline\">Per-layer shares "
            f"({shown} of {len(profile.layers)} layers)</h3></summary>"
            + _figure(share_svg(profile), caption, escaped=True)
            + "</details>"
        )
    caption = "Equivariance error at each layer's output, in execution order (log scale); the black " \
              "tick is the noise floor."
    if profile.method:
        caption += f" Measured by {escape(profile.method)}."
    caption += "".join(f" {escape(note)}." for note in profile.notes)
    opened = " open" if len(profile.layers) <= PROFILE_OPEN_LAYERS else ""
    return (
        f"<details class=\"profile\"{opened}><summary><h3 style=\"display:inline\">Per-layer profile "
        f"({len(profile.layers)} layers)</h3></summary>"
        + _figure(profile_svg(profile), caption, escaped=True)
        + "</details>"
    )


def _trials_table(r: "CheckResult") -> str:
    ranked = sorted(r.trials, key=lambda t: -t.max_abs if t.max_abs == t.max_abs else -math.inf)
    shown = ranked[:TRIAL_ROWS]
    with_consistency = any(t.consistency is not None for t in shown)
    with_psnr = any(t.psnr is not None for t in shown)
    head = ("<th>Transform</th><th class=\"num\">max abs</th><th class=\"num\">mean abs</th>"
            "<th class=\"num\">rel L2</th><th class=\"num\">cosine dist.</th>"
            + ('<th class="num">PSNR</th>' if with_psnr else "")
            + ('<th class="num">consistency</th>' if with_consistency else "")
            + "<th>Result</th>")
    rows = []
    for t in shown:
        rows.append(
            "<tr>"
            f"<td>{escape(t.transform)}{(' <code>' + escape(t.leaf) + '</code>') if t.leaf else ''}</td>"
            f'<td class="num">{escape(format_error(t.max_abs))}</td>'
            f'<td class="num">{escape(format_error(t.mean_abs))}</td>'
            f'<td class="num">{escape(format_error(t.rel_l2))}</td>'
            f'<td class="num">{escape(format_error(t.cosine))}</td>'
            + (f'<td class="num">{escape(_db(t.psnr)) if t.psnr is not None else "–"}</td>' if with_psnr else "")
            + (f'<td class="num">{escape(_percent(t.consistency)) if t.consistency is not None else "–"}</td>'
               if with_consistency else "")
            + f"<td>{_badge(t.passed)}</td></tr>"
        )
    more = len(r.trials) - len(shown)
    title = "Worst trials" + (f" ({len(shown)} of {len(r.trials)})" if more > 0 else "")
    return f"<h3>{title}</h3><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _grid_caption(r: "CheckResult") -> str:
    grid = r.grid
    assert grid is not None
    n = sum(len(row) for row in grid.errors)
    above = count_above(grid, r.atol)
    worst = worst_shift(grid)
    text = f"{grid.figure} error for each of {n} shifts; {above} above atol {format_error(r.atol)}."
    if worst is not None:
        text += f" Worst: dy={worst[0]}, dx={worst[1]} ({format_error(worst[2])})."
    return text


# --- small SVG and HTML helpers ----------------------------------------------------------------


def _figure(svg: str, caption: str, *, escaped: bool = False) -> str:
    return f"<figure>{svg}<figcaption>{caption if escaped else escape(caption)}</figcaption></figure>"


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
    fill: str = _INK,
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
    out.append(f'<rect x="{_n(x)}" y="{_n(top)}" width="14" height="{_n(height)}" fill="none" stroke="{_INK}"/>')
    out.append(_text(x + 20, top + 9, format_error(scale.vmax), size=11, fill=_INK))
    out.append(_text(x + 20, top + height, format_error(scale.vmin), size=11, fill=_INK))
    if atol is not None and scale.vmin < atol < scale.vmax:
        y = top + height * (1 - scale.position(atol))
        if top + 18 < y < top + height - 14:
            out.append(
                f'<line x1="{_n(x - 3)}" y1="{_n(y)}" x2="{_n(x + 17)}" y2="{_n(y)}" stroke="{_INK}" '
                f'stroke-width="2"/>'
            )
            out.append(_text(x + 20, y + 4, f"atol {format_error(atol)}", size=11, fill=_INK))
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


def _badge(passed: bool) -> str:
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _db(value: float) -> str:
    return "∞ dB" if value == math.inf else f"{value:.1f} dB"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _list(items: Iterable[str], cls: str) -> str:
    return f'<ul class="{cls}">' + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def _n(value: float) -> str:
    """A coordinate: integers without a fraction, others to 0.1 px (keeps output short and stable)."""
    rounded = round(value, 1)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:.1f}"
