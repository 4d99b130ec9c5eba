"""A lint report as an HTML fragment: the findings table and the pages of the rules it names.

``ModelReport._repr_html_`` shows this in notebooks. Styles are the HTML report's, scoped to the
fragment (:func:`~pytest_equivariance.report.html.fragment`); each rule code links to the rule's
page further down the same fragment (what it flags, why, the fix), so the output reads offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING

from pytest_equivariance.lint.loader import NOT_LOADED, display_path
from pytest_equivariance.lint.rules import RULES
from pytest_equivariance.report.html import fragment

if TYPE_CHECKING:
    from pytest_equivariance.lint.findings import Finding, ModelReport
    from pytest_equivariance.lint.rules import Rule

_SEVERITY_CLASS = {"error": "fail", "warning": "warn", "info": "info"}
_EXTRA_CSS = (
    ".equiv-report .badge.warn { background: #c27c0e; } .equiv-report .badge.info { background: #2563eb; }"
    " .equiv-report dl.rule { margin: 4px 0 12px; } .equiv-report dl.rule dt { font-weight: 600; }"
    " .equiv-report dl.rule dd { margin: 0 0 6px; } .equiv-report .muted { color: #6b7280; }"
)


def rule_anchor(code: str) -> str:
    """Return the id of a rule's page inside a lint fragment."""
    return f"equiv-rule-{code}"


def lint_report_html(report: "ModelReport", rules: Mapping[str, "Rule"] = RULES) -> str:
    """Return one model's lint report as an HTML fragment: header, findings table, rule pages."""
    status = "failed" if report.findings or report.errors else "passed"
    parts = [f'<style>{_EXTRA_CSS}</style><section class="card {status}">', f"<h2>{escape(report.target)}</h2>"]
    if report.trace != NOT_LOADED:
        shape = "×".join(str(s) for s in report.input_shape) if report.input_shape else "none"
        parts.append(f'<dl class="facts"><dt>trace</dt><dd>{escape(report.trace)}</dd>'
                     f"<dt>coverage</dt><dd>{report.coverage:.0%}</dd>"
                     f"<dt>input</dt><dd>{escape(shape)}</dd>"
                     f"<dt>findings</dt><dd>{len(report.findings)}</dd></dl>")
    for error in report.errors:
        parts.append(f'<p class="culprit">{escape(error)}</p>')
    if report.findings:
        parts.append(_findings_table(report.findings))
    elif not report.errors:
        parts.append("<p>No findings.</p>")
    if report.notes:
        parts.append("<h3>Notes</h3><ul class=\"notes\">"
                     + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul>")
    codes = sorted({f.code for f in report.findings if f.code in rules})
    if codes:
        parts.append("<h3>Rules</h3>")
        parts.extend(_rule_page(rules[code]) for code in codes)
    parts.append("</section>")
    return fragment("".join(parts))


def _findings_table(findings: "list[Finding]") -> str:
    rows = []
    for f in findings:
        where = "–" if f.file is None else display_path(f.file) + (f":{f.line}" if f.line is not None else "")
        calls = f" <span class=\"muted\">(called {f.calls} times)</span>" if f.calls > 1 else ""
        rows.append(
            "<tr>"
            f'<td><a href="#{rule_anchor(f.code)}"><code>{escape(f.code)}</code></a></td>'
            f'<td><span class="badge {_SEVERITY_CLASS.get(f.severity.value, "info")}">'
            f"{escape(f.severity.value)}</span></td>"
            f'<td class="id"><code>{escape(where)}</code></td>'
            f"<td><code>{escape(f.qualname)}</code></td>"
            f"<td>{escape(f.message)}{calls}</td>"
            f"<td><code>{escape(f.fix)}</code></td>"
            "</tr>"
        )
    return ("<table><thead><tr><th>Code</th><th>Severity</th><th>Location</th><th>Layer</th>"
            "<th>Finding</th><th>Fix</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _rule_page(rule: "Rule") -> str:
    fix_text, _, fix_code = rule.fix.partition("\n\n")
    code = f"<pre><code>{escape(fix_code.strip())}</code></pre>" if fix_code.strip() else ""
    return (
        f'<dl class="rule" id="{rule_anchor(rule.code)}">'
        f"<dt><code>{escape(rule.code)}</code> {escape(rule.name)}</dt>"
        f"<dd>{escape(rule.summary)}</dd><dd>{escape(rule.why)}</dd>"
        f"<dd><b>Fix:</b> {escape(fix_text)}</dd>{code}</dl>"
    )
