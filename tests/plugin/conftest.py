"""Shared pieces of the plugin tests: inner pytest sessions (``pytester``) over tiny models.

The inner test files import ``models`` (written by :func:`inner`), small networks whose symmetry is
known exactly: circular-padded stride-1 convolutions (exactly shift-equivariant), the same with
global pooling (exactly shift-invariant), and stride-2 max pooling (aliases under odd shifts).
"""

from __future__ import annotations

import pytest

import hypothesis  # noqa: F401  (loaded once: inner runs with hypothesis would re-import it)
import torch

import pytest_equivariance.report.terminal  # noqa: F401
from pytest_equivariance.check.api import check_shift_invariant


def _load_what_checks_import() -> None:
    """Run one localized check, so every module a check imports lazily is loaded up front.

    pytester forgets the modules an in-process run (or a test using pytester) imported; torch
    registers operator libraries as its submodules load and refuses to register one twice, so those
    modules must already be loaded before the first inner run.
    """
    models: dict = {}
    exec(MODELS, models)  # builds models under torch.random.fork_rng, which imports lazily too
    check_shift_invariant(models["aliasing_classifier"](), input_shape=(1, 1, 8, 8), shift=(1, 1), localize=True, grid=True)


def pytest_configure(config: pytest.Config) -> None:
    # `pytest_plugins = ["pytester"]` is refused in a non-root conftest when the whole suite runs, so
    # the plugin is loaded here instead; pytest_configure is replayed for conftests found late.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


#: Plugins the inner runs do not need (hypothesis' summary hook imports all of hypothesis).
QUIET_PLUGINS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:randomly", "-p", "no:benchmark")

MODELS = '''
import torch
from torch import nn


def _seeded(build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


def circular_net():
    """Stride-1 circular convolutions: exactly shift-equivariant."""
    return _seeded(lambda: nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"), nn.ReLU(),
        nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"),
    ))


def pooled_classifier():
    """Circular convolutions, global average pooling, linear head: exactly shift-invariant."""
    return _seeded(lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    ))


def aliasing_classifier():
    """Stride-2 max pooling before global pooling: not shift-invariant under odd shifts."""
    return _seeded(lambda: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    ))
'''


class Inner:
    """A pytester project holding ``models.py``, and ways to run pytest in it."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        pytester.makepyfile(models=MODELS)
        pytester.syspathinsert()

    def write(self, source: str, name: str = "test_inner") -> None:
        """Write the inner test module ``name``.py."""
        self.pytester.makepyfile(**{name: source})

    def run(self, *args: str) -> pytest.RunResult:
        """Run pytest in-process and return its output and outcomes."""
        return self.pytester.runpytest_inprocess(*QUIET_PLUGINS, *args)

    def results(self, *args: str) -> dict[str, list[dict]]:
        """Run pytest in-process and return the check results each test's report carried, by test name."""
        recorder = self.pytester.inline_run(*QUIET_PLUGINS, *args)
        out: dict[str, list[dict]] = {}
        for report in recorder.getreports("pytest_runtest_logreport"):
            data = getattr(report, "equivariance", None)
            if report.when == "call" and data:
                out[report.nodeid.rpartition("::")[2]] = data
        return out


# Tiny models on a shared machine: one thread avoids thread-pool contention that makes each
# forward pass some fifty times slower.
torch.set_num_threads(1)
_load_what_checks_import()


@pytest.fixture
def inner(pytester: pytest.Pytester) -> Inner:
    """A pytester project with ``models.py``, to write inner tests into and run."""
    return Inner(pytester)
