"""Shared pieces of the CI-gate tests: an inner test suite whose check figures come from a file.

The inner tests record hand-made CheckResults (no torch, no model), so each pytester run takes a
fraction of a second and the figures are exactly what a test wants them to be.
"""

from __future__ import annotations

import json

import pytest

#: Inner conftest: the ``figures`` fixture records one CheckResult per entry of figures.json[test name].
INNER_CONFTEST = '''
import json, pathlib
import pytest
from pytest_equivariance.check.result import CheckResult, Trial
from pytest_equivariance.plugin import record_result

@pytest.fixture
def figures(request):
    table = json.loads((pathlib.Path(__file__).parent / "figures.json").read_text())
    for check in table.get(request.node.name, []):
        trial = Trial("shift (dy=+1, dx=+0)", {"shift": [1, 0]}, check["worst"], check.get("mean", check["worst"] / 2),
                      0.0, 0.0, True, consistency=check.get("consistency"))
        result = CheckResult(check.get("kind", "shift_equivariant"), True, [trial], 1.0, 0.0, 1234,
                             check.get("device", "cpu"), "float32", "circular", (-2, -1), (1, 3, 8, 8),
                             test_id=request.node.nodeid)
        record_result(request.node, result)
'''

#: Plugins the inner runs do not need. In-process runs re-import what they load every time
#: (pytester restores sys.modules afterwards), and hypothesis' summary hook imports all of hypothesis.
QUIET_PLUGINS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")

INNER_TESTS = '''
import pytest

def test_a(figures):
    pass

def test_b(figures):
    pass

@pytest.mark.equiv_regression_tol(5.0)
def test_lenient(figures):
    pass
'''


def pytest_configure(config: pytest.Config) -> None:
    # `pytest_plugins = ["pytester"]` is refused in a non-root conftest when the whole suite runs.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


@pytest.fixture
def quiet_plugins() -> tuple[str, ...]:
    """Arguments that switch off the plugins inner runs do not need."""
    return QUIET_PLUGINS


class Suite:
    """A pytester project with tests test_a, test_b and test_lenient and their figures."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        pytester.makeconftest(INNER_CONFTEST)
        pytester.makepyfile(test_model=INNER_TESTS)
        self.baseline = pytester.path / "equiv-baseline.json"
        self.set(test_a=[{"worst": 0.10}], test_b=[{"worst": 0.20}, {"worst": 0.3, "kind": "shift_invariant",
                                                                      "consistency": 0.9}],
                 test_lenient=[{"worst": 0.10}])

    def set(self, **tests: list[dict]) -> None:
        """Set the figures each named test will record (tests not named keep theirs)."""
        path = self.pytester.path / "figures.json"
        table = json.loads(path.read_text()) if path.exists() else {}
        table.update(tests)
        path.write_text(json.dumps(table))

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest(*QUIET_PLUGINS, *args)

    def update(self, *args: str) -> pytest.RunResult:
        return self.run("--equiv-baseline", str(self.baseline), "--equiv-baseline-update", *args)

    def compare(self, *args: str) -> pytest.RunResult:
        return self.run("--equiv-baseline", str(self.baseline), *args)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Suite:
    return Suite(pytester)
