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

from pytest_equivariance.report.colormap import (
    format_error,
)
from pytest_equivariance.report.figures import (
    angle_series,
    classifier_figures,
    count_above,
    reproduce_hint,
    shift_series,
    title_of,
    worst_shift,
)
from pytest_equivariance.report.profile import describe_layer, layer_location
from pytest_equivariance.report.svg import (
    INK,
    angle_svg,
    heatmap_svg,
    profile_svg,
    share_svg,
)

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult, Profile, Trial
    from pytest_equivariance.gates.baseline import Comparison
    from pytest_equivariance.gates.runs import MergedCheck, RunFile

#: Profiles with more layers than this start folded (a <details> element, no script needed).
PROFILE_OPEN_LAYERS = 40
#: How many of a check's trials its table lists, worst first.
TRIAL_ROWS = 8

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
    base = f"{scope} {{ color: {INK}; font: 15px/1.5 ui-sans-serif, system-ui, sans-serif; }}"
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
    from pytest_equivariance._version import __version__

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
    facts.extend((f.name, f.value + (f" ({f.limit})" if f.limit else "")) for f in classifier_figures(r))
    if r.psnr is not None:
        facts.append(("PSNR (worst)", _db(r.psnr) + (f" (min {_db(r.min_psnr)})" if r.min_psnr is not None else "")))
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
    with_sets = any(t.matched is not None for t in shown)
    head = ("<th>Transform</th><th class=\"num\">max abs</th><th class=\"num\">mean abs</th>"
            "<th class=\"num\">rel L2</th><th class=\"num\">cosine dist.</th>"
            + ('<th class="num">PSNR</th>' if with_psnr else "")
            + ('<th class="num">consistency</th>' if with_consistency else "")
            + ('<th class="num">matched</th><th class="num">appeared</th><th class="num">vanished</th>'
               '<th class="num">min IoU</th>' if with_sets else "")
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
            + ("".join(f'<td class="num">{escape(v)}</td>' for v in _set_cells(t)) if with_sets else "")
            + f"<td>{_badge(t.passed)}</td></tr>"
        )
    more = len(r.trials) - len(shown)
    title = "Worst trials" + (f" ({len(shown)} of {len(r.trials)})" if more > 0 else "")
    return f"<h3>{title}</h3><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _set_cells(t: "Trial") -> list[str]:
    """A detection-set trial's matched / appeared / vanished counts and its smallest IoU ("–": none)."""
    cells = [f"{v:,}" if v is not None else "–" for v in (t.matched, t.appeared, t.vanished)]
    return cells + [format_error(t.min_iou) if t.min_iou is not None else "–"]


def _grid_caption(r: "CheckResult") -> str:
    grid = r.grid
    assert grid is not None
    n = sum(len(row) for row in grid.errors)
    above = count_above(grid, r.atol)
    worst = worst_shift(grid)
    what = "displacement of the coordinates (px)" if grid.figure == "displacement" else f"{grid.figure} error"
    text = f"{what} for each of {n} shifts; {above} above atol {format_error(r.atol)}."
    if worst is not None:
        text += f" Worst: dy={worst[0]}, dx={worst[1]} ({format_error(worst[2])})."
    return text


# --- small SVG and HTML helpers ----------------------------------------------------------------


def _figure(svg: str, caption: str, *, escaped: bool = False) -> str:
    return f"<figure>{svg}<figcaption>{caption if escaped else escape(caption)}</figcaption></figure>"


def _badge(passed: bool) -> str:
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _db(value: float) -> str:
    return "∞ dB" if value == math.inf else f"{value:.1f} dB"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _list(items: Iterable[str], cls: str) -> str:
    return f'<ul class="{cls}">' + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"
