"""pytest entry point of pytest-equivariance (registered under the ``pytest11`` entry point).

This module is imported by pytest at start-up in every project that has the package installed, so
it must stay cheap: it never imports torch at module level. The checks import torch only inside the
hooks and fixtures that run them.

Result flow: every check a test runs is turned into ``CheckResult.to_json()`` and attached to the
test's call-phase report as ``report.equivariance`` (a list of dicts). pytest-xdist serialises report
attributes, so the same hook (``pytest_runtest_logreport``) sees them on the controller in a serial
run and under ``-n N``. There they are collected, in order, for the summary, baselines and reports
(see :func:`collected_results`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult

#: Results recorded by the running test (worker side): list of CheckResult.
ITEM_RESULTS_KEY = pytest.StashKey[list]()
#: Results collected from all reports (controller side): list of CheckResult.
RESULTS_KEY = pytest.StashKey[list]()

#: Feature plugins that live in modules of their own; registered when present.
_EXTENSIONS = ("pytest_equivariance.plugin_baseline", "pytest_equivariance.plugin_html")


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # pytest_addoption is a historic hook, so extensions registered here still add their options.
    for name in _EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        if not pluginmanager.is_registered(module):
            pluginmanager.register(module, name)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS_KEY] = []


def record_result(item: pytest.Item, result: "CheckResult") -> None:
    """Remember a check's result on the test item; it travels home on the call report."""
    item.stash.setdefault(ITEM_RESULTS_KEY, []).append(result)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    if call.when == "call":
        results = item.stash.get(ITEM_RESULTS_KEY, [])
        if results:
            report.equivariance = [r.to_json() for r in results]
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    data = getattr(report, "equivariance", None)
    if not data or report.when != "call":
        return
    from pytest_equivariance.check.result import CheckResult

    config = _config_of(report)
    if config is not None:
        config.stash[RESULTS_KEY].extend(CheckResult.from_json(d) for d in data)


def collected_results(config: pytest.Config) -> "list[CheckResult]":
    """All check results of this run, in report order (on the xdist controller: from all workers)."""
    return config.stash.get(RESULTS_KEY, [])


_CONFIG: list[pytest.Config] = []


def _config_of(report: pytest.TestReport) -> pytest.Config | None:
    return _CONFIG[-1] if _CONFIG else None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG.append(session.config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _CONFIG and _CONFIG[-1] is config:
        _CONFIG.pop()
