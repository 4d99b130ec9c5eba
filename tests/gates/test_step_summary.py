"""GitHub Actions job summary: the plugin and equiv-lint append Markdown to $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import re

from pytest_equivariance.report.step_summary import cell


def markdown_tables(markdown: str) -> list[list[list[str]]]:
    """Parse GitHub-flavoured Markdown tables: a header row, a --- row, then rows of equal width."""
    tables, current = [], None
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if current is None:
                current = [cells]
            else:
                current.append(cells)
        elif current is not None:
            tables.append(current)
            current = None
    if current is not None:
        tables.append(current)
    for table in tables:
        assert all(set(c) <= set("-") and c for c in table[1]), table[1]
        assert len({len(row) for row in table}) == 1, "ragged table"
    return tables


def test_cells_escape_pipes_and_fold_lines():
    assert cell("a | b\nc") == "a \\| b c"


def test_a_run_appends_the_checks_table(suite, monkeypatch):
    summary = suite.pytester.path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert suite.update().ret == 0
    suite.set(test_a=[{"worst": 0.3}])
    assert suite.compare("--equiv-html", "report.html").ret == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n")  # appended, not overwritten
    assert text.count("## Equivariance checks") == 2
    last = text.split("## Equivariance checks")[-1]
    checks, regressions = markdown_tables(last)
    assert checks[0] == ["test", "check", "worst", "tolerance", "worst transform", "passed"]
    tests = [row[0].strip("`") for row in checks[2:]]
    assert tests == ["test_model.py::test_a", "test_model.py::test_b", "test_model.py::test_b",
                     "test_model.py::test_lenient"]
    assert "**Robustness regressions**" in last and regressions[2][0] == "`test_model.py::test_a`"
    assert "2 regressed" in last and "report.html" in last  # worst and mean error of test_a


def test_off_without_the_variable_or_when_disabled(suite, monkeypatch):
    summary = suite.pytester.path / "summary.md"
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert suite.run().ret == 0 and not summary.exists()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert suite.run("--equiv-no-github-summary").ret == 0 and not summary.exists()
    suite.pytester.makeini("[pytest]\nequiv_github_summary = false\n")
    assert suite.run().ret == 0 and not summary.exists()


def test_xdist_writes_one_summary(suite, monkeypatch):
    summary = suite.pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert suite.run("-n", "2").ret == 0
    assert summary.read_text().count("## Equivariance checks") == 1
    assert len(markdown_tables(summary.read_text())[0]) == 2 + 4


def test_an_unwritable_summary_is_reported_and_does_not_fail_the_run(suite, monkeypatch):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(suite.pytester.path / "missing" / "summary.md"))
    result = suite.run()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*could not append the equivariance summary to*"])
