"""``--equiv-html PATH`` end to end (pytester): written once, at session end, from all results.

The inner tests record hand-made CheckResults (no torch, no model), so each run is quick.
"""

from __future__ import annotations

import html

import pytest
from optional import require

# hypothesis's pytest plugin imports hypothesis at the end of every run; pytester drops modules an
# inner run imported, so without this import each in-process run would pay for it again.
import hypothesis.internal.observability  # noqa: F401  isort: skip

pytest_plugins = ("pytester",)

INNER_TESTS = '''
from pytest_equivariance.check.result import CheckResult, ShiftGrid, Trial
from pytest_equivariance.plugin import record_result


def _result(request, passed, error):
    grid = ShiftGrid([0, 1], [0, 1], [[0.0, error], [error, error]])
    result = CheckResult(
        "shift_invariant", passed, [Trial("shift (dy=+1, dx=+0)", {"shift": [1, 0]}, error, error, 0, 0, passed)],
        1e-5, 1e-4, 42, "cpu", "float32", "circular", (-2, -1), (1, 3, 8, 8), grid=grid,
    )
    result.test_id = request.node.nodeid
    result.reproduce = "pytest " + request.node.nodeid + " --equiv-seed 42"
    record_result(request.node, result)


def test_good(request):
    _result(request, True, 1e-7)


def test_bad(request):
    _result(request, False, 0.25)


import pytest

@pytest.mark.parametrize("name", ["<b>&amp;</b>"])
def test_param(request, name):
    _result(request, True, 0.0)
'''

#: Counts report writes in every process (controller and workers) by wrapping the writer.
COUNTING_CONFTEST = '''
import os
import pytest_equivariance.report.html as report_html

_write = report_html.write_html


def write_html(path, results, **kwargs):
    with open(os.environ["EQUIV_WRITES_LOG"], "a") as log:
        log.write(f"{os.getpid()} {len(results)}\\n")
    return _write(path, results, **kwargs)


report_html.write_html = write_html
'''

IDS = (
    "test_inner.py::test_good",
    "test_inner.py::test_bad",
    "test_inner.py::test_param[<b>&amp;</b>]",
)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(test_inner=INNER_TESTS)
    pytester.makeconftest(COUNTING_CONFTEST)
    monkeypatch.setenv("EQUIV_WRITES_LOG", str(pytester.path / "writes.log"))
    return pytester


#: Unrelated plugins left out of inner runs: pytest-benchmark warns in runs nested in an xdist worker.
QUIET = ("-p", "no:benchmark")


def _writes(project: pytest.Pytester) -> list[str]:
    log = project.path / "writes.log"
    return log.read_text().splitlines() if log.exists() else []


def test_report_is_written_at_session_end(project: pytest.Pytester) -> None:
    result = project.runpytest(*QUIET, "--equiv-html", "out/report.html")
    result.assert_outcomes(passed=3)
    page = (project.path / "out" / "report.html").read_text(encoding="utf-8")
    for nodeid in IDS:
        assert html.escape(nodeid) in page
    assert "<b>&amp;</b>" not in page
    assert "3 checks · 2 passed · 1 failed" in page
    assert "--equiv-seed 42" in page
    result.stdout.fnmatch_lines(["*equivariance HTML report: *report.html*"])
    assert len(_writes(project)) == 1


def test_no_option_no_report(project: pytest.Pytester) -> None:
    project.runpytest(*QUIET).assert_outcomes(passed=3)
    assert _writes(project) == []
    assert not list(project.path.rglob("*.html"))


def test_ini_key_is_relative_to_the_rootdir(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nequiv_html = reports/eq.html\n")
    sub = project.mkdir("sub")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)
        project.runpytest(*QUIET, str(project.path)).assert_outcomes(passed=3)
    assert (project.path / "reports" / "eq.html").exists()


def test_unwritable_path_is_reported_not_raised(project: pytest.Pytester) -> None:
    (project.path / "blocker").write_text("a file, not a directory")
    result = project.runpytest(*QUIET, "--equiv-html", "blocker/report.html")
    result.assert_outcomes(passed=3)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*could not write the equivariance HTML report to *blocker*report.html*"])


def test_under_xdist_the_controller_writes_once_with_all_results(project: pytest.Pytester) -> None:
    require("xdist")
    # Three fresh processes: leave out the unrelated hypothesis plugin to keep start-up short.
    result = project.runpytest_subprocess(
        *QUIET, "-n", "2", "-p", "no:hypothesispytest", "--equiv-html", "report.html"
    )
    result.assert_outcomes(passed=3)
    writes = _writes(project)
    assert len(writes) == 1, writes
    assert writes[0].endswith(" 3")  # every worker's results reached the one writer
    page = (project.path / "report.html").read_text(encoding="utf-8")
    positions = [page.index(html.escape(nodeid)) for nodeid in sorted(IDS)]
    assert positions == sorted(positions)  # sorted by test id, whichever worker finished first


def test_plugin_module_does_not_import_torch_or_rich() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pytest_equivariance.plugin.html as m; "
        "print(sorted(n for n in ('torch', 'rich', 'pytest_equivariance.report.html') if n in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
