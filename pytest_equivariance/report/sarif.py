"""Lint reports as SARIF 2.1.0, for GitHub code scanning and other static-analysis viewers.

One run; the rule table becomes ``tool.driver.rules`` (help text from :data:`RULES`), each finding a
result with a physical location relative to ``%SRCROOT%`` (the working directory) and the module's
qualname as a logical location. Errors (targets that could not be loaded, inputs a model rejected)
become error notifications of the invocation, notes on parts analysed without fx become note
notifications. Reference: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_equivariance.lint.findings import Finding, ModelReport, Severity

if TYPE_CHECKING:
    from pytest_equivariance.lint.rules import Rule

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def sarif_document(
    reports: Sequence[ModelReport],
    rules: Mapping[str, "Rule"],
    *,
    tool_version: str,
    locations: Mapping[str, tuple[str | None, int | None]] | None = None,
) -> dict[str, Any]:
    """Return the SARIF log of one run over ``reports``.

    ``locations`` maps a target to its model's definition, used for findings without a location
    (code scanning needs one on every result).
    """
    from pytest_equivariance.report.findings_text import rule_markdown

    index = {code: i for i, code in enumerate(rules)}
    root = Path.cwd().resolve()
    results = []
    notifications = []
    for report in reports:
        notifications += [_notification("note", n, report.target) for n in report.notes]
        notifications += [_notification("error", e, report.target) for e in report.errors]
        fallback = (locations or {}).get(report.target)
        results += [_result(f, report, index, root, fallback) for f in report.findings]
    driver_rules = [
        {
            "id": rule.code,
            "name": _pascal(rule.name),
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rule.why},
            "help": {"text": f"{rule.summary}\n\n{rule.fix}", "markdown": rule_markdown(rule)},
            "defaultConfiguration": {
                "level": _LEVEL[rule.severity],
                "enabled": rule.enabled_by_default,
            },
            "properties": {"tags": ["equivariance", rule.name]},
        }
        for rule in rules.values()
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "equiv-lint",
                        "semanticVersion": tool_version,
                        "version": tool_version,
                        "informationUri": "https://pypi.org/project/pytest-equivariance/",
                        "rules": driver_rules,
                    }
                },
                "originalUriBaseIds": {SRCROOT: {"uri": root.as_uri() + "/"}},
                "invocations": [
                    {
                        "executionSuccessful": not any(r.errors for r in reports),
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": results,
            }
        ],
    }


def render_sarif(
    reports: Sequence[ModelReport],
    rules: Mapping[str, "Rule"],
    *,
    tool_version: str,
    locations: Mapping[str, tuple[str | None, int | None]] | None = None,
) -> str:
    """Return the SARIF log as JSON text."""
    document = sarif_document(reports, rules, tool_version=tool_version, locations=locations)
    return json.dumps(document, indent=2, default=str)


def _result(
    finding: Finding,
    report: ModelReport,
    index: Mapping[str, int],
    root: Path,
    fallback: tuple[str | None, int | None] | None,
) -> dict[str, Any]:
    file, line = finding.location(fallback)
    location: dict[str, Any] = {}
    if file is not None:
        physical: dict[str, Any] = {"artifactLocation": _artifact(file, root)}
        if line is not None:
            physical["region"] = {"startLine": int(line)}
        location["physicalLocation"] = physical
    if finding.qualname:
        location["logicalLocations"] = [{"fullyQualifiedName": finding.qualname, "kind": "member"}]
    text = f"{finding.message}. Fix: {finding.fix}" if finding.fix else finding.message
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "level": _LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [location] if location else [],
        "properties": {
            "target": report.target,
            "qualname": finding.qualname,
            "op": finding.op,
            "kind": finding.kind,
        },
    }
    if finding.code in index:
        result["ruleIndex"] = index[finding.code]
    return result


def _artifact(file: str, root: Path) -> dict[str, Any]:
    path = Path(file).resolve()
    try:
        return {"uri": path.relative_to(root).as_posix(), "uriBaseId": SRCROOT}
    except ValueError:
        return {"uri": path.as_uri()}


def _notification(level: str, text: str, target: str) -> dict[str, Any]:
    return {"level": level, "message": {"text": text}, "properties": {"target": target}}


def _pascal(kebab: str) -> str:
    return "".join(part.capitalize() for part in kebab.split("-"))
