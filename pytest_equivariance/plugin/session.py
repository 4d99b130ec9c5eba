"""The per-run state: settings, the running test, and the results gathered from every report."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pytest

from pytest_equivariance.plugin.markers import _MARKER_DOCS, allowed_keywords
from pytest_equivariance.plugin.settings import Settings, build_seed, read_settings, reproduce_command, seeds_its_build

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult


#: Results recorded by the running test (worker side): list of CheckResult.
ITEM_RESULTS_KEY = pytest.StashKey[list]()


#: Results collected from all reports (controller side): list of CheckResult.
RESULTS_KEY = pytest.StashKey[list]()


#: Name under which the per-run state object is registered with pytest's plugin manager.
_SESSION_PLUGIN = "equivariance-session"

#: The module every check's result passes through (looked up, not imported: it imports torch).
_RUN_LOOP = "pytest_equivariance.check.run"


class EquivarianceSession:
    """Per-run state registered as a plugin: settings, the running test, and results from reports.

    On the xdist controller (or in a serial run) it gathers ``report.equivariance`` from every call
    report into ``config.stash[RESULTS_KEY]`` and prints the summary; on a worker it carries the
    controller's seed so ``--equiv-seed=random`` draws once per run.
    """

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.current_item: pytest.Item | None = None
        #: node id -> outcome of its call phase ("passed", "failed", "xfailed", "xpassed").
        self.outcomes: dict[str, str] = {}

    def pytest_report_header(self, config: pytest.Config) -> str:
        seed = f"{self.settings.seed} (random)" if self.settings.seed_is_random else str(self.settings.seed)
        line = f"equivariance: seed={seed} device={self.settings.device}"
        if self.settings.trials is not None:
            line += f" trials={self.settings.trials}"
        if self.settings.localize_name != "on-failure":
            line += f" localize={self.settings.localize_name}"
        return line

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Hand the run seed to each xdist worker (so 'random' is drawn once, on the controller)."""
        node.workerinput["equiv_seed"] = self.settings.seed

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        loop = sys.modules.get(_RUN_LOOP)
        if loop is not None:  # tests that call check_* themselves imported it at collection
            self.listen(loop)
        self.current_item = item
        try:
            if self.settings.seed_models and seeds_its_build(item):
                from pytest_equivariance.seeding import seeded

                # Set-up, call and teardown: fixtures that build the model run under the seed too.
                with seeded(build_seed(self.settings.seed, item.nodeid)):
                    return (yield)
            return (yield)
        finally:
            self.current_item = None

    def listen(self, loop: Any) -> None:
        """Receive every CheckResult of the run loop ``loop``, also from checks a test calls directly."""
        if self.on_result not in loop.RESULT_LISTENERS:
            loop.RESULT_LISTENERS.append(self.on_result)

    def stop_listening(self) -> None:
        """Stop receiving results from the run loop (at the end of the run)."""
        loop = sys.modules.get(_RUN_LOOP)
        if loop is not None and self.on_result in loop.RESULT_LISTENERS:
            loop.RESULT_LISTENERS.remove(self.on_result)

    def on_result(self, result: "CheckResult") -> None:
        """Record a finished check on the running test (a no-op outside tests)."""
        item = self.current_item
        if item is None or not _CONFIG or _CONFIG[-1] is not self.config:
            return  # outside tests, or an outer run while pytester runs an inner one
        if result.test_id is None:
            result.test_id = item.nodeid
        if result.reproduce is None:
            result.reproduce = reproduce_command(item.config, item.nodeid, self.settings)
        if not any(r is result for r in item.stash.get(ITEM_RESULTS_KEY, [])):
            record_result(item, result)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.outcomes[report.nodeid] = _outcome(report)
        data = getattr(report, "equivariance", None)
        if not data or report.when != "call":
            return
        from pytest_equivariance.check.result import CheckResult

        self.config.stash[RESULTS_KEY].extend(CheckResult.from_json(d) for d in data)

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        results = collected_results(config)
        if not results or getattr(config.option, "no_summary", False):
            return
        verbosity = config.option.verbose
        if verbosity <= -2:
            return
        from pytest_equivariance.report import terminal

        if verbosity == -1:
            for line in terminal.quiet_lines(results, self.outcomes):
                terminalreporter.write_line(line)
            return
        color, width = _console_style(config)
        terminalreporter.write_sep("=", "equivariance summary")
        text = terminal.render(terminal.summary_table(results, self.outcomes), color=color, width=width)
        terminalreporter.write(text)


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    return report.outcome


#: Configs of the running pytest sessions, innermost last (pytester nests them). Extensions that
#: receive only a report (e.g. in pytest_runtest_logreport) find their config here.
_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS_KEY] = []
    _CONFIG.append(config)
    for name, doc in _MARKER_DOCS.items():
        keywords = ", ".join(f"{k}=..." for k in allowed_keywords(name))
        config.addinivalue_line("markers", f"{name}({keywords}): {doc}.")
    session = EquivarianceSession(config, read_settings(config))
    config.pluginmanager.register(session, _SESSION_PLUGIN)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _CONFIG:
        _CONFIG.remove(config)
    session = config.pluginmanager.get_plugin(_SESSION_PLUGIN)
    if session is not None:
        session.stop_listening()
        config.pluginmanager.unregister(session)


def _session(config: pytest.Config) -> EquivarianceSession:
    session = config.pluginmanager.get_plugin(_SESSION_PLUGIN)
    assert session is not None, "pytest_equivariance.plugin was not configured"
    return session


def record_result(item: pytest.Item, result: "CheckResult") -> None:
    """Remember a check's result on the test item; it travels home on the call report."""
    item.stash.setdefault(ITEM_RESULTS_KEY, []).append(result)


def collected_results(config: pytest.Config) -> "list[CheckResult]":
    """All check results of this run, in report order (on the xdist controller: from all workers)."""
    return config.stash.get(RESULTS_KEY, [])


def _console_style(config: pytest.Config) -> tuple[bool, int]:
    """Return (colour?, width) as pytest's own terminal writer decided from --color and NO_COLOR."""
    if config.pluginmanager.has_plugin("terminalreporter"):
        tw = config.get_terminal_writer()
        return bool(tw.hasmarkup), max(int(tw.fullwidth), 40)
    return config.getoption("color", "auto") == "yes", 100
