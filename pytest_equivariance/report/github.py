"""Lint reports as GitHub Actions workflow commands: one annotation per finding.

``::error file=models/net.py,line=12,title=EQ001::MaxPool2d(...) aliases ...`` shows the finding on
the pull request's diff. Severities map to ``error`` / ``warning`` / ``notice``; a target that could
not be loaded becomes an ``error`` annotation without a location. Reference:
https://docs.github.com/actions/reference/workflow-commands-for-github-actions
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pytest_equivariance.lint.findings import Finding, ModelReport, Severity
from pytest_equivariance.lint.loader import NOT_LOADED, display_path

_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def render_github(
    reports: Sequence[ModelReport],
    *,
    locations: Mapping[str, tuple[str | None, int | None]] | None = None,
) -> str:
    """Return one workflow command per finding (and per failed target), newline-terminated.

    A report's ``errors`` (a load error when its ``trace`` is
    :data:`~pytest_equivariance.lint.loader.NOT_LOADED`, else an input the model rejected) become
    error annotations without a location. ``locations`` maps a target to its model's definition,
    used for findings without a location.
    """
    lines: list[str] = []
    for report in reports:
        for finding in report.findings:
            lines.append(_annotation(finding, report.target, (locations or {}).get(report.target)))
        for error in report.errors:
            # A load error already names its target; a lint error (rejected input) gets it added.
            text = error if report.trace == NOT_LOADED else f"{report.target}: {error}"
            lines.append(f"::error title={_property('equiv-lint')}::{_data(text)}")
    return "".join(line + "\n" for line in lines)


def _annotation(
    finding: Finding, target: str, fallback: tuple[str | None, int | None] | None
) -> str:
    file, line = finding.location(fallback)
    props = []
    if file is not None:
        props.append(f"file={_property(display_path(file))}")
        if line is not None:
            props.append(f"line={line}")
    props.append(f"title={_property(finding.code)}")
    where = f" [{finding.qualname}]" if finding.qualname else ""
    body = f"{finding.message}{where} ({target})"
    if finding.fix:
        body += f"\nFix: {finding.fix}"
    return f"::{_COMMAND[finding.severity]} {','.join(props)}::{_data(body)}"


def _data(text: str) -> str:
    """Escape a command's message (GitHub's escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """Escape a command's property value (GitHub's escapeProperty)."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")
