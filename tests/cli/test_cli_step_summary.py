"""equiv-lint --format github also appends a findings table to GitHub's job summary."""

from __future__ import annotations

import sys
from pathlib import Path

from cli_models import ALIASING

sys.path.insert(0, str(Path(__file__).parents[1] / "gates"))
from test_step_summary import markdown_tables  # noqa: E402


def test_github_format_appends_the_findings(write, run, project, monkeypatch):
    write("alias.py", ALIASING)
    summary = project / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run("alias.py", "--format", "github")
    assert result.code == 1 and result.out.startswith("::error file=alias.py")
    (table,) = markdown_tables(summary.read_text())
    assert table[0] == ["code", "severity", "location", "model", "layer", "finding", "fix"]
    assert table[2][0] == "`EQ001`" and table[2][2].startswith("`alias.py:")
    summary.unlink()
    assert run("alias.py", "--format", "github", "--no-github-summary").code == 1
    assert run("alias.py", "--format", "json").code == 1
    assert not summary.exists()


def test_an_unwritable_summary_is_one_error_line_and_keeps_the_exit_code(write, run, project, monkeypatch):
    write("alias.py", ALIASING)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project / "missing" / "summary.md"))
    result = run("alias.py", "--format", "github")
    assert result.code == 1
    assert "could not append the findings summary to" in result.err and result.err.count("\n") == 1
