"""pytest glue for CI gates: robustness baselines, ``--equiv-json``, JUnit properties, xdist GPUs.

Registered by :mod:`pytest_equivariance.plugin.settings` (``_EXTENSIONS``). Like the main plugin it never
imports torch at module level: only a worker asked to run on CUDA imports it, to count the GPUs.

Who does what under pytest-xdist:

* workers run the checks, attach their results to the test reports (the main plugin), add JUnit
  properties to each test, and pass the ``equiv_regression_tol`` marker home on the report;
  with ``--equiv-device cuda``, worker ``gw{i}`` runs on GPU ``i mod count`` (:func:`worker_device`);
* the controller (or the only process of a serial run) reads the baseline before any test runs, so
  a missing or corrupt file stops the run at once, then compares, writes the baseline and the JSON
  results once, and prints one summary.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_equivariance.gates import baseline as _baseline
from pytest_equivariance.gates.baseline import DEFAULT_REGRESSION_TOL
from pytest_equivariance.errors import BaselineError, EquivarianceUsageError
from pytest_equivariance.plugin.session import ITEM_RESULTS_KEY, collected_results

if TYPE_CHECKING:
    from pytest_equivariance.gates.baseline import Baseline, Comparison

BASELINE_OPTION = "--equiv-baseline"
UPDATE_OPTION = "--equiv-baseline-update"
PRUNE_OPTION = "--equiv-baseline-prune"
TOL_OPTION = "--equiv-regression-tol"
FLOOR_OPTION = "--equiv-regression-floor"
JSON_OPTION = "--equiv-json"
STRICT_WEIGHTS_OPTION = "--equiv-baseline-strict-weights"
#: Marker that sets the relative regression tolerance of one test: ``@pytest.mark.equiv_regression_tol(0.5)``.
TOL_MARKER = "equiv_regression_tol"
#: Report attribute that carries a test's marker tolerance from the worker to the controller.
_REPORT_TOL = "equiv_regression_tol"
#: Options under which pytest only prints information (their ``dest``): no gate, no files.
_INFO_OPTIONS = ("help", "version", "markers", "showfixtures", "show_fixtures_per_test")
#: Name under which the controller's CIGate is registered.
_GATE_PLUGIN = "equivariance-ci-gate"


# ------------------------------------------------------------------------------ options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("equivariance", "equivariance checks")
    group.addoption(BASELINE_OPTION, dest="equiv_baseline", metavar="PATH", default=None,
                    help="Compare every check's figures with this robustness baseline (JSON) and fail "
                         "the run on regressions. Ini: equiv_baseline.")
    group.addoption(UPDATE_OPTION, dest="equiv_baseline_update", action="store_true", default=False,
                    help="Write this run's figures into the --equiv-baseline file instead of comparing, "
                         "keeping the entries of tests that did not run. Only a run without failures writes.")
    group.addoption(PRUNE_OPTION, dest="equiv_baseline_prune", action="store_true", default=False,
                    help="With --equiv-baseline-update: also drop the entries of tests that did not run.")
    group.addoption(TOL_OPTION, dest="equiv_regression_tol", metavar="TOL", default=None,
                    help="Relative worsening of a figure that counts as a regression "
                         f"(default {DEFAULT_REGRESSION_TOL}). Ini: equiv_regression_tol; "
                         f"per test: @pytest.mark.{TOL_MARKER}(TOL).")
    group.addoption(FLOOR_OPTION, dest="equiv_regression_floor", metavar="ABS", default=None,
                    help="Absolute change of an error figure below which it is noise (default by dtype: "
                         "1e-5 for float32). Ini: equiv_regression_floor.")
    group.addoption(STRICT_WEIGHTS_OPTION, dest="equiv_baseline_strict_weights", action="store_true",
                    default=False,
                    help="Fail the run when a check's model weights or inputs differ from its baseline entry's "
                         "(fingerprints); by default such checks are listed as 'weights changed' and not "
                         "gated. Ini: equiv_baseline_strict_weights.")
    group.addoption(JSON_OPTION, dest="equiv_json", metavar="PATH", default=None,
                    help="Write every check's figures and transforms to this JSON file. Ini: equiv_json.")
    parser.addini("equiv_baseline", "Robustness baseline file (relative to the rootdir).", default="")
    parser.addini("equiv_regression_tol", "Relative regression tolerance of baseline figures.", default="")
    parser.addini("equiv_regression_floor", "Absolute noise floor of baseline error figures.", default="")
    parser.addini("equiv_baseline_strict_weights", "Fail when a check's weights or inputs differ from the "
                  "baseline's (true/false).", type="bool", default=False)
    parser.addini("equiv_json", "Write check results as JSON to this file (relative to the rootdir).",
                  default="")


# ------------------------------------------------------------------------------ xdist and GPUs


_WORKER_ID = re.compile(r"gw(\d+)")


def worker_device(requested: str | None, worker_id: str | None, cuda_count: int) -> str | None:
    """Return the device an xdist worker should use: GPU ``i mod cuda_count`` for worker ``gw{i}``.

    Only ``"cuda"`` and ``"auto"`` (which means CUDA when there is a GPU) are spread over the GPUs;
    an explicit ``"cuda:N"``, ``"cpu"``, other devices, a serial run (``worker_id`` None) or a machine
    without GPUs keep ``requested`` as it is.

    >>> [worker_device("cuda", f"gw{i}", 2) for i in range(3)]
    ['cuda:0', 'cuda:1', 'cuda:0']
    """
    if not _spreads(requested) or worker_id is None or cuda_count <= 0:
        return requested
    match = _WORKER_ID.fullmatch(worker_id)
    if match is None:
        return requested
    return f"cuda:{int(match.group(1)) % cuda_count}"


def _spreads(requested: Any) -> bool:
    return isinstance(requested, str) and requested.strip().lower() in ("cuda", "auto")


def _spread_workers_over_gpus(config: pytest.Config) -> None:
    requested = getattr(config.option, "equiv_device", None)
    if not requested:
        try:
            requested = config.getini("equiv_device") or None
        except ValueError:  # the main plugin does not declare the ini key
            requested = None
    if not _spreads(requested):
        return
    import torch  # only here: a worker that will run checks on CUDA imports torch anyway

    worker_id = config.workerinput["workerid"]  # type: ignore[attr-defined]
    config.option.equiv_device = worker_device(requested, worker_id, torch.cuda.device_count())


# ------------------------------------------------------------------------------ configure


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def writes_files(config: pytest.Config) -> bool:
    """Whether this process writes the run's files: not an xdist worker, and rank 0 of a
    ``torch.distributed`` run (every rank holds the whole set's figures; one writes them)."""
    from pytest_equivariance.check.distributed import is_main_process

    return not _is_worker(config) and is_main_process()


def _setting(config: pytest.Config, dest: str) -> tuple[Any, Path]:
    """Return an option's value (else its ini value) and the directory relative paths start from.

    Command-line paths are relative to the invocation directory, ini paths to the rootdir.
    """
    value = getattr(config.option, dest, None)
    if value not in (None, ""):
        return value, Path(config.invocation_params.dir)
    return (config.getini(dest) or None), config.rootpath  # like pytest's own junit_* settings


def _path_setting(config: pytest.Config, dest: str) -> Path | None:
    value, base = _setting(config, dest)
    return None if value is None else (base / str(value)).resolve()


def _number_setting(config: pytest.Config, dest: str, option: str, default: float | None) -> float | None:
    value, _ = _setting(config, dest)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise pytest.UsageError(
            f"{option} / {dest} must be a non-negative number, not {value!r}; pass e.g. {option} 0.2."
        )
    return number


@pytest.hookimpl(tryfirst=True)  # before other plugins read the device option
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{TOL_MARKER}(tol): relative worsening of this test's check figures that counts as a robustness "
        f"regression against --equiv-baseline (overrides {TOL_OPTION}).",
    )
    if _is_worker(config):
        _spread_workers_over_gpus(config)
        return
    if any(getattr(config.option, name, False) for name in _INFO_OPTIONS):
        return  # `pytest --help` and friends run no tests: they need no baseline file
    gate = CIGate(
        config,
        baseline_path=_path_setting(config, "equiv_baseline"),
        update=bool(config.option.equiv_baseline_update),
        prune=bool(config.option.equiv_baseline_prune),
        tol=_number_setting(config, "equiv_regression_tol", TOL_OPTION, DEFAULT_REGRESSION_TOL) or 0.0,
        floor=_number_setting(config, "equiv_regression_floor", FLOOR_OPTION, None),
        json_path=_path_setting(config, "equiv_json"),
        strict_weights=bool(config.option.equiv_baseline_strict_weights
                            or config.getini("equiv_baseline_strict_weights")),
    )
    if gate.update and gate.baseline_path is None:
        raise pytest.UsageError(
            f"{UPDATE_OPTION} needs the file to write; pass {BASELINE_OPTION} PATH as well."
        )
    if gate.prune and not gate.update:
        raise pytest.UsageError(f"{PRUNE_OPTION} only applies when updating; add {UPDATE_OPTION}.")
    if gate.baseline_path is not None and (not gate.update or gate.baseline_path.exists()):
        # Read it now: a missing or broken file stops the run before any test, and is never rewritten.
        try:
            gate.baseline = _baseline.load(gate.baseline_path)
        except BaselineError as exc:
            raise pytest.UsageError(str(exc)) from exc
    if gate.baseline_path is not None or gate.json_path is not None:
        config.pluginmanager.register(gate, _GATE_PLUGIN)


def pytest_unconfigure(config: pytest.Config) -> None:
    gate = config.pluginmanager.get_plugin(_GATE_PLUGIN)
    if gate is not None:
        config.pluginmanager.unregister(gate, _GATE_PLUGIN)


# ------------------------------------------------------------------------------ per test (worker side)


def _marker_tol(item: pytest.Item) -> float | None:
    marker = item.get_closest_marker(TOL_MARKER)
    if marker is None:
        return None
    value = marker.args[0] if marker.args else marker.kwargs.get("tol")
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or value < 0:
        raise EquivarianceUsageError(
            f"@pytest.mark.{TOL_MARKER} needs one non-negative number (the relative tolerance), got "
            f"args={marker.args!r} kwargs={marker.kwargs!r}; write e.g. @pytest.mark.{TOL_MARKER}(0.5)."
        )
    return float(value)


def pytest_runtest_setup(item: pytest.Item) -> None:
    try:
        _marker_tol(item)
    except EquivarianceUsageError as exc:
        pytest.fail(str(exc), pytrace=False)


def junit_properties(results: list[Any]) -> list[tuple[str, object]]:
    """Return the JUnit ``<property>`` pairs of a test's check results: ``equiv.{i}.{figure}``."""
    properties: list[tuple[str, object]] = []
    for i, result in enumerate(results):
        properties.append((f"equiv.{i}.kind", result.kind))
        properties.append((f"equiv.{i}.passed", result.passed))
        for name, value in result.figures().items():
            properties.append((f"equiv.{i}.{name}", f"{value:.6g}"))
        properties.append((f"equiv.{i}.seed", result.seed))
    return properties


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    if call.when == "call":
        # Before the report is made, so the properties ride on this report and on teardown's (JUnit).
        item.user_properties.extend(junit_properties(item.stash.get(ITEM_RESULTS_KEY, [])))
    report = yield
    if call.when == "call":
        try:
            tol = _marker_tol(item)
        except EquivarianceUsageError:
            tol = None  # already reported by setup
        if tol is not None:
            setattr(report, _REPORT_TOL, tol)
    return report


# ------------------------------------------------------------------------------ controller side


class CIGate:
    """The controller's half of the CI gates: collects what tests report, then compares and writes.

    Registered as a plugin object of its own for one run (as pytest's junitxml does), on the xdist
    controller or in a serial run; never on workers.
    """

    def __init__(self, config: pytest.Config, *, baseline_path: Path | None, update: bool, prune: bool,
                 tol: float, floor: float | None, json_path: Path | None, strict_weights: bool = False) -> None:
        self.config = config
        self.baseline_path = baseline_path
        self.update = update
        self.prune = prune
        self.tol = tol
        self.floor = floor
        self.json_path = json_path
        self.strict_weights = strict_weights
        self.baseline: Baseline | None = None  # read at configure time
        self.test_tols: dict[str, float] = {}  # marker tolerances, by test id
        self.ran: set[str] = set()  # tests whose call phase passed or produced results
        self.comparison: Comparison | None = None
        self.error: str | None = None
        self.note: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        if report.passed or getattr(report, "equivariance", None):
            self.ran.add(report.nodeid)
        tol = getattr(report, _REPORT_TOL, None)
        if tol is not None:
            self.test_tols[report.nodeid] = float(tol)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not writes_files(self.config):
            return
        results = collected_results(self.config)
        entries = _baseline.entries_from_results(results)
        if self.baseline_path is not None:
            self.comparison = self._compare(self.baseline or _baseline.Baseline(), entries)
            if self.update:
                self._write_baseline(session, entries)
            elif self.comparison.failed and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.json_path is not None:
            try:
                _baseline.write_atomic(self.json_path, _results_json(results, entries, self))
            except OSError as exc:
                self._fail(session, f"Cannot write the {JSON_OPTION} file {self.json_path} ({exc}); "
                                    f"check the path.")

    def _compare(self, baseline: "Baseline", entries: list[Any]) -> "Comparison":
        return _baseline.compare(baseline, entries, tol=self.tol, test_tols=self.test_tols, floor=self.floor,
                                 ran_tests=self.ran, strict_weights=self.strict_weights)

    def _write_baseline(self, session: pytest.Session, entries: list[Any]) -> None:
        assert self.baseline_path is not None
        if session.exitstatus != pytest.ExitCode.OK:
            self.note = (f"baseline {self.shown_path(self.baseline_path)} not updated: the run did not pass "
                         f"(exit status {int(session.exitstatus)}); fix the failures and rerun.")
            return
        try:
            before, _ = _baseline.update(self.baseline_path, entries, ran_tests=self.ran, prune=self.prune)
        except BaselineError as exc:
            self._fail(session, str(exc))
            return
        except OSError as exc:
            self._fail(session, f"Cannot write baseline file {self.baseline_path} ({exc}); check the path "
                                f"and its permissions.")
            return
        # What changed in the file, against what it held just before (another run may have written it).
        self.comparison = self._compare(before, entries)
        if self.prune:
            self.comparison.not_run = 0

    def _fail(self, session: pytest.Session, message: str) -> None:
        self.error = message
        session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        comparison = self.comparison
        written = comparison is not None and self.update and self.note is None and self.error is None
        listed = comparison is not None and (written or comparison.regressions or comparison.improvements
                                             or comparison.new or comparison.stale
                                             or comparison.fingerprint_changes)
        if not (listed or self.error or self.note):
            if comparison is not None:
                terminalreporter.write_line(
                    f"equivariance baseline {self.shown_path(self.baseline_path)}: "
                    f"{comparison.unchanged} checks unchanged, {comparison.not_run} not run"
                )
            return
        failed = bool(self.error) or (comparison is not None and comparison.failed and not self.update)
        title = "equivariance baseline" if self.baseline_path is not None else "equivariance results"
        terminalreporter.section(title, red=failed, yellow=not failed, bold=True)
        if listed and not (self.update and not written):
            from pytest_equivariance.report.regressions import comparison_renderable
            from pytest_equivariance.report.terminal import render

            tw = self.config.get_terminal_writer()
            assert comparison is not None
            path = self.shown_path(self.baseline_path)
            renderable = comparison_renderable(comparison, path=path, updated=self.update)
            # CI logs do not wrap: use a comfortable width there, the terminal's own width otherwise.
            width = tw.fullwidth if tw.hasmarkup else max(tw.fullwidth, 120)
            terminalreporter.write(render(renderable, width=width, color=tw.hasmarkup))
        if self.note:
            terminalreporter.write_line(self.note, yellow=True)
        if self.error:
            terminalreporter.write_line(f"ERROR: {self.error}", red=True, bold=True)

    def shown_path(self, path: Path | None) -> str:
        """Return ``path`` relative to the invocation directory when it lies below it."""
        if path is None:
            return ""
        try:
            return str(path.relative_to(Path(self.config.invocation_params.dir).resolve()))
        except ValueError:
            return str(path)


def _results_json(results: list[Any], entries: list[Any], gate: CIGate) -> str:
    from pytest_equivariance.gates.runs import results_document

    baseline = None
    if gate.comparison is not None:
        baseline = {"path": str(gate.baseline_path), "mode": "update" if gate.update else "compare",
                    "written": gate.update and gate.note is None and gate.error is None,
                    **gate.comparison.to_json()}
    return results_document(results, entries, baseline)
