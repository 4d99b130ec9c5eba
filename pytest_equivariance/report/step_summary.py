"""Markdown for GitHub Actions' job summary (``$GITHUB_STEP_SUMMARY``): checks, regressions, findings.

GitHub renders the Markdown a step appends to the file named by ``GITHUB_STEP_SUMMARY`` on the
run's summary page, so the results are seen without opening the log. These functions only build
text; :func:`append_summary` is the one place that writes it. Tables are GitHub-flavoured Markdown:
cells have their pipes escaped and their line breaks folded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_equivariance.report.colormap import format_error
from pytest_equivariance.report.figures import classifier_figures

if TYPE_CHECKING:
    from pytest_equivariance.gates.baseline import Comparison
    from pytest_equivariance.check.result import CheckResult
    from pytest_equivariance.lint.findings import ModelReport

#: The environment variable GitHub Actions sets to the job summary's file.
SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def cell(text: object) -> str:
    """Return ``text`` as one Markdown table cell: pipes escaped, line breaks as spaces."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def checks_markdown(
    results: Sequence["CheckResult"],
    *,
    comparison: "Comparison | None" = None,
    baseline: str | None = None,
    html_report: str | None = None,
) -> str:
    """Return the job summary of a test run: one row per check, then the baseline's regressions."""
    failed = sum(not r.passed for r in results)
    lines = ["## Equivariance checks", "",
             f"{len(results)} check{'s' if len(results) != 1 else ''}, {failed} failed.", ""]
    rows = []
    # A column for classifiers measured on the user's images (accuracies, protocol, image count).
    classifiers = any(r.images and classifier_figures(r) for r in results)
    for r in results:
        worst = r.worst
        row = [
            f"`{r.test_id or '-'}`", r.kind, format_error(r.worst_error),
            f"atol {format_error(r.atol)}, rtol {format_error(r.rtol)}",
            worst.transform if worst is not None else "-",
        ]
        if classifiers:
            row.append("; ".join(f"{f.name} {f.value}" for f in classifier_figures(r)) or "-")
        rows.append(row + ["yes" if r.passed else "**no**"])
    if rows:
        head = ["test", "check", "worst", "tolerance", "worst transform"] + (["classifier"] if classifiers else [])
        lines += _table(head + ["passed"], rows)
    if comparison is not None:
        from pytest_equivariance.report.regressions import format_change, summary_line

        lines += ["", f"### Baseline `{baseline or ''}`", "", summary_line(comparison) + "."]
        if comparison.regressions:
            lines += ["", "**Robustness regressions**", ""]
            lines += _table(
                ["test", "check", "figure", "baseline", "now", "change"],
                [[f"`{c.key.test_id}`", f"#{c.key.index} {c.key.kind}", c.figure, format_error(c.baseline),
                  format_error(c.now), format_change(c.change)] for c in comparison.regressions],
            )
        if comparison.fingerprint_changes:
            lines += ["", "**Weights or inputs changed**", ""]
            lines += _table(["test", "check", "what differs"],
                            [[f"`{c.key.test_id}`", f"#{c.key.index} {c.key.kind}", c.reason]
                             for c in comparison.fingerprint_changes])
    if html_report:
        lines += ["", f"The full report with heatmaps and per-layer profiles is `{html_report}`: "
                      f"upload it as an artifact to read it here."]
    return "\n".join(lines) + "\n"


def findings_markdown(reports: Sequence["ModelReport"]) -> str:
    """Return the job summary of an ``equiv-lint`` run: one row per finding, then the failed targets."""
    from pytest_equivariance.lint.loader import NOT_LOADED, display_path

    findings = [(r, f) for r in reports for f in r.findings]
    linted = sum(r.trace != NOT_LOADED for r in reports)
    lines = ["## equiv-lint", "",
             f"{len(findings)} finding{'s' if len(findings) != 1 else ''} in {linted} "
             f"model{'s' if linted != 1 else ''}.", ""]
    if findings:
        rows = []
        for report, f in findings:
            where = "-" if f.file is None else display_path(f.file) + (f":{f.line}" if f.line else "")
            rows.append([f"`{f.code}`", f.severity.value, f"`{where}`", f"`{report.target}`", f"`{f.qualname}`",
                         f.message, f"`{f.fix}`" if f.fix else ""])
        lines += _table(["code", "severity", "location", "model", "layer", "finding", "fix"], rows)
    errors = [(r.target, e) for r in reports for e in r.errors]
    if errors:
        lines += ["", "**Errors**", ""] + [f"- `{cell(t)}`: {cell(e)}" for t, e in errors]
    return "\n".join(lines) + "\n"


def summary_path() -> Path | None:
    """Return the job summary file GitHub Actions named, or None outside Actions."""
    value = os.environ.get(SUMMARY_ENV, "").strip()
    return Path(value) if value else None


def append_summary(markdown: str, path: Path | None = None) -> Path | None:
    """Append ``markdown`` to the job summary (default: ``$GITHUB_STEP_SUMMARY``); return where.

    Returns None when there is no summary file to write. Raises OSError when it cannot be written.
    """
    path = path or summary_path()
    if path is None:
        return None
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return path
