"""pytest option ``--equiv-html PATH``: write one self-contained HTML report of every check at the end.

Registered by :mod:`pytest_equivariance.plugin.settings` (``_EXTENSIONS``). Like the main plugin it imports
neither torch nor the renderers at module level, so runs that do not ask for a report pay nothing.
The report is written once, by the process that sees all results: the xdist controller (workers
skip it), or the only process of a serial run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_equivariance.plugin.baseline import writes_files, _path_setting

OPTION_HTML = "--equiv-html"
INI_HTML = "equiv_html"

#: Where this run's report went (or why it could not be written), for the terminal summary.
_WRITTEN_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("equivariance")
    group.addoption(
        OPTION_HTML,
        dest=INI_HTML,
        metavar="PATH",
        default=None,
        help="write a self-contained HTML report of all equivariance checks (heatmaps, profiles, "
        "seeds) to PATH at the end of the run (default: ini equiv_html, else none).",
    )
    parser.addini(
        INI_HTML,
        type="string",
        default="",
        help="path of the equivariance HTML report, relative to the rootdir (same as --equiv-html).",
    )


def report_path(config: pytest.Config) -> Path | None:
    """Return where this run writes its HTML report, or None when it writes none.

    The command-line path is relative to the directory pytest was invoked from; the ini path to the
    rootdir, as pytest's own ``junit_*`` settings (and as the other ``--equiv-*`` paths).
    """
    return _path_setting(config, INI_HTML)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    path = report_path(config)
    if path is None or not writes_files(config):
        return
    from pytest_equivariance.plugin.session import collected_results
    from pytest_equivariance.report.html import write_html

    title = f"Equivariance report · {config.rootpath.name}"
    # Reports arrive in the order tests finish, which under xdist varies from run to run; sorting by
    # test id (stable, so a test's checks keep their order) makes the same run give the same file.
    results = sorted(collected_results(config), key=lambda r: r.test_id or "")
    try:
        write_html(path, results, title=title)
    except OSError as exc:
        config.stash[_WRITTEN_KEY] = (
            f"could not write the equivariance HTML report to {path} ({exc.strerror or exc}); "
            f"pass {OPTION_HTML} a path in a writable directory"
        )
        return
    config.stash[_WRITTEN_KEY] = f"equivariance HTML report: {path}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    message = config.stash.get(_WRITTEN_KEY, None)
    if message is not None:
        failed = message.startswith("could not")
        terminalreporter.write_sep("-", message, red=failed, bold=failed)
