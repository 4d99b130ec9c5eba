"""Renderers of lint reports, fed hand-made reports: JSON schema, SARIF structure, GitHub lines, text."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from pytest_equivariance.lint.findings import Finding, ModelReport, Severity
from pytest_equivariance.lint.loader import NOT_LOADED, failed_report
from pytest_equivariance.lint.rules import RULES
from pytest_equivariance.report.findings_json import SCHEMA_VERSION, render_json
from pytest_equivariance.report.findings_text import render_model, render_summary, rule_markdown
from pytest_equivariance.report.github import render_github
from pytest_equivariance.report.sarif import render_sarif


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = str(tmp_path / "models" / "net.py")
    pool = Finding(
        code="EQ001",
        severity=Severity.ERROR,
        message="MaxPool2d(kernel_size=2, stride=2) subsamples without low-pass filtering",
        qualname="features.pool",
        op="MaxPool2d",
        file=source,
        line=12,
        fix="self.pool = MaxBlurPool2d(kernel_size=2, stride=2)",
        params={"stride": (2, 2), "kernel_size": (2, 2)},
    )
    slice_ = Finding(
        code="EQ005",
        severity=Severity.WARNING,
        message="x[..., ::2] keeps one pixel in 2, with a comma, 100% and: colon",
        qualname="",
        op="getitem",
        kind="method",
        fix="y = BlurPool2d(stride=2)(x)\n# second line",
    )
    info = Finding(
        code="EQ011", severity=Severity.INFO, message="even kernel [2x2]", qualname="head", op="Conv2d",
        file="/elsewhere/lib.py", line=3,
    )
    return [
        ModelReport(
            target="models/net.py::Net",
            trace="fx",
            coverage=1.0,
            findings=[pool, slice_],
            input_shape=(1, 3, 224, 224),
        ),
        ModelReport(
            target="models/net.py::Other",
            trace="hierarchical",
            coverage=0.5,
            findings=[info],
            notes=["backbone could not be traced (data-dependent control flow); scanned its modules"],
        ),
        ModelReport(
            target="models/net.py::Rejects",
            trace="fx",
            errors=["Shape propagation failed at fc: RuntimeError: mat1 and mat2 shapes cannot be multiplied"],
        ),
        failed_report("broken.py", ValueError("Syntax error in broken.py:3: invalid syntax; fix the file.")),
    ]


LOCATIONS = {"models/net.py::Net": ("/abs/models/net.py", 5)}


def test_json_document_has_the_design_schema(reports):
    document = json.loads(render_json(reports))
    assert document["version"] == SCHEMA_VERSION == 1
    assert [m["target"] for m in document["models"]] == [r.target for r in reports]
    assert document["models"][1]["notes"] == reports[1].notes
    first = document["models"][0]
    assert {"target", "trace", "coverage", "findings", "errors"} <= set(first)
    finding = first["findings"][0]
    assert {"code", "severity", "message", "qualname", "op", "file", "line", "fix"} <= set(finding)
    assert finding["severity"] == "error" and finding["line"] == 12
    assert finding["params"]["stride"] == [2, 2]
    failed = document["models"][3]
    assert failed["trace"] == NOT_LOADED and failed["coverage"] == 0.0 and failed["findings"] == []
    assert failed["errors"] == ["Syntax error in broken.py:3: invalid syntax; fix the file."]


def test_sarif_structure(reports):
    log = json.loads(render_sarif(reports, RULES, tool_version="9.9", locations=LOCATIONS))
    assert log["version"] == "2.1.0" and "sarif-2.1.0" in log["$schema"]
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "equiv-lint" and driver["version"] == "9.9"
    assert [r["id"] for r in driver["rules"]] == list(RULES)
    eq001 = driver["rules"][0]
    assert eq001["name"] == "StridedMaxPool"
    assert eq001["shortDescription"]["text"] == RULES["EQ001"].summary
    assert "antialias" in eq001["help"]["markdown"]
    assert eq001["defaultConfiguration"] == {"level": "error", "enabled": True}
    assert driver["rules"][list(RULES).index("EQ010")]["defaultConfiguration"]["enabled"] is False

    results = run["results"]
    assert [r["ruleId"] for r in results] == ["EQ001", "EQ005", "EQ011"]
    assert [r["level"] for r in results] == ["error", "warning", "note"]
    for result in results:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["message"]["text"]
    pool = results[0]["locations"][0]
    assert pool["physicalLocation"]["artifactLocation"] == {"uri": "models/net.py", "uriBaseId": "%SRCROOT%"}
    assert pool["physicalLocation"]["region"] == {"startLine": 12}
    assert pool["logicalLocations"] == [{"fullyQualifiedName": "features.pool", "kind": "member"}]
    # No source location of its own: the model's definition stands in (code scanning needs one).
    sliced = results[1]["locations"][0]["physicalLocation"]
    assert sliced["artifactLocation"]["uri"] == "file:///abs/models/net.py"
    assert sliced["region"]["startLine"] == 5
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/")
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    levels = [n["level"] for n in invocation["toolExecutionNotifications"]]
    assert levels == ["note", "error", "error"]  # a traced-around part, a rejected input, a failed load


def test_github_annotations(reports):
    lines = render_github(reports, locations=LOCATIONS).splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("::error file=models/net.py,line=12,title=EQ001::MaxPool2d(kernel_size=2")
    assert "%0AFix: self.pool = MaxBlurPool2d" in lines[0]
    warning = lines[1]
    assert warning.startswith("::warning file=/abs/models/net.py,line=5,title=EQ005::")
    message = warning.split("::", 2)[2]
    assert "with a comma, 100%25 and: colon" in message  # data escapes % and newlines only
    assert "%0A# second line" in message
    assert lines[2].startswith("::notice file=/elsewhere/lib.py,line=3,title=EQ011::")
    assert lines[3] == (
        "::error title=equiv-lint::models/net.py::Rejects: Shape propagation failed at fc: "
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied"
    )
    assert lines[4] == "::error title=equiv-lint::Syntax error in broken.py:3: invalid syntax; fix the file."
    pattern = re.compile(r"^::(error|warning|notice)( [a-z]+=[^:,]+(,[a-z]+=[^:,]+)*)?::.+$")
    assert all(pattern.match(line) for line in lines)


def text_of(reports, **kw) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, soft_wrap=True, width=100)
    for report in reports:
        render_model(console, report, location=LOCATIONS.get(report.target), **kw)
    render_summary(console, reports)
    return buffer.getvalue()


def test_text_groups_by_model_with_locations_fixes_and_summary(reports):
    text = text_of(reports)
    lines = text.splitlines()
    assert lines[0] == "models/net.py::Net  fx · 100% traced · input 1×3×224×224"
    assert lines[1] == (
        "  models/net.py:12: EQ001 [error] features.pool: MaxPool2d(kernel_size=2, stride=2) "
        "subsamples without low-pass filtering"
    )
    assert lines[2] == "    fix: self.pool = MaxBlurPool2d(kernel_size=2, stride=2)"
    assert lines[3].startswith("  /abs/models/net.py:5: EQ005 [warning] x[..., ::2]")
    assert lines[5] == "         # second line"
    assert "models/net.py::Other  hierarchical · 50% traced" in text
    assert "1 note on what was analysed without fx or shapes (--verbose shows them)" in text
    assert "mat1 and mat2" not in text  # errors go to stderr
    assert "broken.py" not in text.split("Found")[0]  # load errors go to stderr, not the groups
    assert lines[-1] == (
        "Found 3 findings (1 error, 1 warning, 1 info) in 3 models; 2 targets failed (errors above)."
    )


def test_text_verbose_lists_notes(reports):
    assert "note: backbone could not be traced" in text_of(reports, verbose=True)


def test_text_clean_run_summary():
    clean = [ModelReport(target="m.py::A"), ModelReport(target="m.py::B")]
    text = text_of(clean)
    assert "m.py::A  fx · 100% traced  no findings" in text
    assert text.splitlines()[-1] == "All clean: 2 models, no findings."


def test_text_info_only_says_below_fail_level():
    report = ModelReport(
        target="m.py::A",
        findings=[Finding("EQ011", Severity.INFO, "even kernel", "conv", "Conv2d")],
    )
    assert "none at or above the fail level (warning)" in text_of([report])


@pytest.mark.parametrize("qualname", ["sub", "a", "pool"])
def test_text_names_the_module_even_when_the_message_contains_its_name(qualname):
    # The qualname is what per-module-ignores match: a line that dropped it would hide the glob to write.
    message = "nn.AvgPool2d(kernel_size=2, stride=2) subsamples by 2 with a box filter (pool)"
    report = ModelReport(target="m.py::A", findings=[Finding("EQ003", Severity.WARNING, message, qualname, "AvgPool2d")])
    assert f"EQ003 [warning] {qualname}: {message}" in text_of([report])


def test_text_colours_by_severity_unless_no_color(reports, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, soft_wrap=True, color_system="standard")
    render_model(console, reports[0])
    assert "\x1b[1;31mEQ001" in buffer.getvalue()  # bold red
    monkeypatch.setenv("NO_COLOR", "1")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, soft_wrap=True, color_system="standard")
    render_model(console, reports[0])
    assert "\x1b[31m" not in buffer.getvalue() and "\x1b[1;31m" not in buffer.getvalue()


def test_rule_markdown_has_every_section():
    for code, rule in RULES.items():
        page = rule_markdown(rule)
        assert page.startswith(f"# {code}: {rule.name}\n")
        for heading in ("## What it does", "## Why is this bad?", "## Example", "## Fix", "## Suppress"):
            assert heading in page
        assert ("## Fix a whole model" in page) == (code in {"EQ001", "EQ002", "EQ003"})
        assert f"# equiv: ignore[{code}]" in page
