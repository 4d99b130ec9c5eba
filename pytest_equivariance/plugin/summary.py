"""GitHub Actions job summary: when ``GITHUB_STEP_SUMMARY`` is set, append the checks table to it.

Registered by :mod:`pytest_equivariance.plugin.settings` (``_EXTENSIONS``). The process that sees every
result (the xdist controller, or a serial run) appends, after the baseline gate has compared: the
checks with their worst error, tolerance and verdict; regressions and changed weights against the
baseline; and where the HTML report is. Off when the variable is absent, or with
``--equiv-no-github-summary`` / ``equiv_github_summary = false``.
"""

from __future__ import annotations

import pytest

from pytest_equivariance.plugin.baseline import _GATE_PLUGIN, writes_files

OPTION = "--equiv-no-github-summary"
INI = "equiv_github_summary"

#: Why the summary could not be appended, for the terminal summary.
_FAILURE_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("equivariance")
    group.addoption(OPTION, dest="equiv_no_github_summary", action="store_true", default=False,
                    help="do not append the equivariance summary to $GITHUB_STEP_SUMMARY (GitHub Actions).")
    parser.addini(INI, type="bool", default=True,
                  help="append the equivariance summary to $GITHUB_STEP_SUMMARY when it is set (default true).")


@pytest.hookimpl(trylast=True)  # after the baseline gate has compared and the HTML report is written
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not writes_files(config) or config.getoption("equiv_no_github_summary", False) or not config.getini(INI):
        return
    from pytest_equivariance.plugin.session import collected_results
    from pytest_equivariance.report.step_summary import append_summary, checks_markdown, summary_path

    path = summary_path()
    results = collected_results(config)
    if path is None or not results:
        return
    from pytest_equivariance.plugin.html import report_path

    gate = config.pluginmanager.get_plugin(_GATE_PLUGIN)  # registered when a baseline or JSON is asked for
    comparison = gate.comparison if gate is not None else None
    baseline = gate.shown_path(gate.baseline_path) if comparison is not None else None
    html = report_path(config)
    results = sorted(results, key=lambda r: r.test_id or "")  # the order xdist workers finish in varies
    markdown = checks_markdown(results, comparison=comparison, baseline=baseline,
                               html_report=str(html) if html is not None else None)
    try:
        append_summary(markdown, path)
    except OSError as exc:
        config.stash[_FAILURE_KEY] = (f"could not append the equivariance summary to {path} "
                                      f"({exc.strerror or exc}); check $GITHUB_STEP_SUMMARY")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    message = config.stash.get(_FAILURE_KEY, None)
    if message is not None:
        terminalreporter.write_sep("-", message, red=True, bold=True)
