"""Lint reports for people: the default ``equiv-lint`` output, and rule pages.

Findings print like a compiler's, one line each, grouped by model::

    models/net.py::Net  fx · 100% traced · input 1×3×224×224
      models/net.py:12: EQ001 [error] pool: MaxPool2d(kernel_size=2, stride=2) aliases ...
        fix: self.pool = pytest_equivariance.MaxBlurPool2d(kernel_size=2, stride=2)

    Found 1 finding (1 error) in 1 model.

Colour marks severity; rich drops it when ``NO_COLOR`` is set or the output is not a terminal.
:func:`rule_markdown` is the one rendering of a rule's texts, shared by ``--explain``, SARIF help
and ``docs/rules/EQ0xx.md``. rich is imported only by the functions that draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

# What antialias() rewrites and its recipe live with antialias itself (which imports no torch).
from pytest_equivariance.fix.antialias import CODES as ANTIALIAS_RULES
from pytest_equivariance.fix.antialias import RECIPE as ANTIALIAS_RECIPE
from pytest_equivariance.fix.source import AUTOFIX
from pytest_equivariance.lint.findings import Finding, ModelReport, Severity
from pytest_equivariance.lint.loader import NOT_LOADED, display_path

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from pytest_equivariance.lint.rules import Rule

#: Style of each severity's label.
SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def render_model(
    console: "Console",
    report: ModelReport,
    *,
    location: tuple[str | None, int | None] | None = None,
    verbose: bool = False,
    quiet: bool = False,
) -> None:
    """Print one model's header, findings and fixes; a target that failed to load prints nothing.

    ``location`` (the model's definition) stands in for findings that have no source location.
    Notes on parts analysed with less precision are counted, or listed with ``verbose``. Errors (an
    example input the model rejects) are not drawn here: the command prints them on stderr.
    ``quiet`` prints the findings and their fixes alone (``equiv-lint -q``).
    """
    for line in model_lines(report, location=location, verbose=verbose, quiet=quiet):
        console.print(line)


def model_lines(
    report: ModelReport,
    *,
    location: tuple[str | None, int | None] | None = None,
    verbose: bool = False,
    quiet: bool = False,
) -> list["Text"]:
    """Return the lines :func:`render_model` prints (also ``ModelReport.__rich__``)."""
    from rich.text import Text

    if report.trace == NOT_LOADED:
        return []
    lines: list[Text] = []
    if not quiet:
        header = Text()
        header.append(report.target, style="bold")
        header.append("  ")
        header.append(_trace_summary(report), style="dim" if report.trace == "fx" else "yellow")
        if not report.findings:
            header.append("  no findings", style="green")
        lines.append(header)
    for finding in report.findings:
        lines.append(_finding_line(finding, location))
        for i, line in enumerate(finding.fix.splitlines()):
            lines.append(Text(("    fix: " if i == 0 else "         ") + line, style="dim"))
    if quiet:
        return lines
    notes = report.notes
    if verbose:
        lines.extend(Text(f"    note: {note}", style="yellow") for note in notes)
    elif notes:
        n = len(notes)
        lines.append(
            Text(f"    {n} note{'s' if n != 1 else ''} on what was analysed without fx or shapes "
                 f"(--verbose shows them)", style="yellow")
        )
    return lines


def statistics(reports: Sequence[ModelReport]) -> list[tuple[str, int]]:
    """Return ``(code, count)`` for every rule with findings, most frequent first (ties: by code)."""
    counts: dict[str, int] = {}
    for report in reports:
        for finding in report.findings:
            counts[finding.code] = counts.get(finding.code, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def render_statistics(console: "Console", reports: Sequence[ModelReport], rules: Mapping[str, "Rule"]) -> None:
    """Print one line per rule with findings, as ``ruff --statistics`` does: count, code, name."""
    from rich.text import Text

    rows = statistics(reports)
    width = max((len(str(count)) for _, count in rows), default=1)
    for code, count in rows:
        rule = rules.get(code)
        line = Text(f"{count:>{width}}\t")
        line.append(code, style=SEVERITY_STYLE[rule.severity] if rule else "")
        line.append(f"\t{rule.name if rule else ''}")
        console.print(line)


def render_summary(
    console: "Console", reports: Sequence[ModelReport], *, fail_level: Severity = Severity.WARNING
) -> None:
    """Print the closing line: findings by severity, models linted, targets that failed."""
    from rich.text import Text

    linted = [r for r in reports if r.trace != NOT_LOADED]
    failed = sum(bool(r.errors) for r in reports)
    findings = [f for r in linted for f in r.findings]
    counts = {s: sum(f.severity == s for f in findings) for s in Severity}
    line = Text()
    models = f"{len(linted)} model{'s' if len(linted) != 1 else ''}"
    if findings:
        line.append(f"Found {len(findings)} finding{'s' if len(findings) != 1 else ''} ", style="bold")
        parts = []
        for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO):
            if counts[severity]:
                plural = counts[severity] != 1 and severity != Severity.INFO
                label = severity.value + ("s" if plural else "")
                parts.append((f"{counts[severity]} {label}", SEVERITY_STYLE[severity]))
        line.append("(")
        for i, (text, style) in enumerate(parts):
            if i:
                line.append(", ")
            line.append(text, style=style)
        line.append(f") in {models}")
        if not any(f.severity.rank >= fail_level.rank for f in findings):
            line.append(f"; none at or above the fail level ({fail_level.value})")
    elif linted:
        line.append(f"All clean: {models}, no findings", style="bold green")
    else:
        line.append("No models linted", style="bold")
    if failed:
        line.append("; ")
        line.append(
            f"{failed} target{'s' if failed != 1 else ''} failed (errors above)",
            style="bold red",
        )
    line.append(".")
    console.print()
    console.print(line)


def render_rule_table(console: "Console", rules: Mapping[str, "Rule"]) -> None:
    """Print every rule on one line: code, name, severity, whether it is on by default, summary."""
    from rich.text import Text

    width = max(len(rule.name) for rule in rules.values())
    for rule in rules.values():
        line = Text(f"{rule.code}  {rule.name:<{width}}  ")
        line.append(f"{rule.severity.value:<7}", style=SEVERITY_STYLE[rule.severity])
        line.append(f"  {'on ' if rule.enabled_by_default else 'off'}  {rule.summary}")
        console.print(line)


def render_explanation(console: "Console", rule: "Rule", *, markdown: bool) -> None:
    """Print a rule's page: formatted Markdown on a terminal, the Markdown source otherwise."""
    text = rule_markdown(rule)
    if markdown:
        from rich.markdown import Markdown

        console.print(Markdown(text))
    else:
        console.print(text, markup=False, highlight=False)


def rule_markdown(rule: "Rule") -> str:
    """Return a rule's page in Markdown: what it flags, why it breaks equivariance, example, fix."""
    fix_text, _, fix_code = rule.fix.partition("\n\n")
    default = "on" if rule.enabled_by_default else f"off (enable it with `--select {rule.code}`)"
    parts = [
        f"# {rule.code}: {rule.name}",
        f"**Severity:** {rule.severity.value} · **Default:** {default}",
        "## What it does",
        rule.summary,
        "## Why is this bad?",
        rule.why,
        "## Example",
        _code_block(rule.example),
        "## Fix",
        fix_text,
    ]
    if fix_code.strip():
        parts.append(_code_block(fix_code))
    safety, why = AUTOFIX.get(rule.code, ("unavailable", "no rewrite for this rule"))
    how = {
        "safe": "`equiv-lint --fix` applies it: a **safe** fix (checkpoints load with `strict=True`, output "
                "shapes are kept)",
        "unsafe": "`equiv-lint --fix --unsafe-fixes` applies it: an **unsafe** fix",
        "unavailable": "**unavailable**: `equiv-lint --fix` leaves this finding for a person",
    }[safety]
    parts += ["## Fix automatically", f"{how}; {why}."]
    if rule.code in ANTIALIAS_RULES:
        parts += [
            "## Fix a whole model",
            ANTIALIAS_RECIPE,
        ]
    parts += [
        "## Suppress",
        f"Add `# equiv: ignore[{rule.code}]` to the source line, ignore the rule for some modules "
        f"with `per-module-ignores` in `[tool.equiv-lint]`, or everywhere with `--ignore {rule.code}`.",
    ]
    return "\n\n".join(parts) + "\n"


def _finding_line(finding: Finding, fallback: tuple[str | None, int | None] | None) -> "Text":
    from rich.text import Text

    line = Text("  ")
    line.append(_location(finding, fallback), style="bold")
    line.append(": ")
    line.append(finding.code, style=SEVERITY_STYLE[finding.severity])
    line.append(" ")
    line.append(f"[{finding.severity.value}]", style=SEVERITY_STYLE[finding.severity])
    line.append(" ")
    if finding.qualname:  # always: it is what per-module-ignores match; functional calls have none
        line.append(f"{finding.qualname}: ", style="cyan")
    line.append(finding.message)
    if finding.calls > 1:
        line.append(f" (called {finding.calls} times)", style="dim")
    return line


def _location(finding: Finding, fallback: tuple[str | None, int | None] | None) -> str:
    file, line = finding.location(fallback)
    if file is None:
        return "<unknown>"
    return f"{display_path(file)}:{line}" if line is not None else display_path(file)


def _trace_summary(report: ModelReport) -> str:
    parts = [report.trace, f"{report.coverage:.0%} traced"]
    if report.input_shape:
        parts.append("input " + "×".join(str(s) for s in report.input_shape))
    return " · ".join(parts)


def _code_block(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"
