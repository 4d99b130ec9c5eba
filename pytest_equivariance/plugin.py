"""pytest entry point of pytest-equivariance (registered under the ``pytest11`` entry point).

This module is imported by pytest at start-up in every project that has the package installed, so
it must stay cheap: it never imports torch at module level. The checks import torch only inside the
hooks and fixtures that run them.

What it adds to pytest:

- markers ``shift_equivariant``, ``shift_invariant``, ``rotation_equivariant`` and
  ``rotation_invariant``: the marked test returns a model (or ``(model, inputs)``), or requests a
  fixture named ``model`` (and optionally ``equiv_inputs``), and the plugin checks it;
- the ``equivariance`` fixture, whose ``assert_*`` / ``check_*`` methods run checks inside a test;
- options and ini keys ``equiv_device``, ``equiv_seed``, ``equiv_trials``, ``equiv_localize``;
- a failure report for each failing check and a summary table of every check at the end of the run.

Result flow: every check a test runs is turned into ``CheckResult.to_json()`` and attached to the
test's call-phase report as ``report.equivariance`` (a list of dicts). pytest-xdist serialises report
attributes, so the same hook (``pytest_runtest_logreport``) sees them on the controller in a serial
run and under ``-n N``. There they are collected, in order, for the summary, baselines and reports
(see :func:`collected_results`).

Reproducibility: each check's seed is derived from the run's seed (``--equiv-seed``) and the test's
node id with a stable hash, so ``pytest "<nodeid>" --equiv-seed=N`` repeats a failing check exactly,
whichever other tests run beside it and on whichever xdist worker. A marked test (or one that uses
the ``equivariance`` fixture) also runs — set-up, call and teardown — with torch, ``random`` and
numpy seeded from a seed derived the same way (:func:`build_seed`), so a randomly initialised model
is the same model in every run; the generators' states are restored afterwards
(:mod:`pytest_equivariance.seeding`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import secrets
import shlex
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

# Torch-free: the modes and flip names a marker may name live with the transforms they select.
from pytest_equivariance.check.arguments import DEVICE_PATTERN, expected_value, is_int, real_tuple

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult

#: Results recorded by the running test (worker side): list of CheckResult.
ITEM_RESULTS_KEY = pytest.StashKey[list]()
#: Results collected from all reports (controller side): list of CheckResult.
RESULTS_KEY = pytest.StashKey[list]()
#: A marker usage error found at collection, raised when the test is set up.
_USAGE_ERROR_KEY = pytest.StashKey[str]()

#: Feature plugins that live in modules of their own; registered when present.
_EXTENSIONS = (
    "pytest_equivariance.plugin_baseline",
    "pytest_equivariance.plugin_html",
    "pytest_equivariance.plugin_summary",
)

#: Name under which the per-run state object is registered with pytest's plugin manager.
_SESSION_PLUGIN = "equivariance-session"

OPTION_DEVICE = "--equiv-device"
OPTION_SEED = "--equiv-seed"
OPTION_TRIALS = "--equiv-trials"
OPTION_LOCALIZE = "--equiv-localize"
OPTION_NO_SEED_MODELS = "--equiv-no-seed-models"

DEFAULT_DEVICE = "cpu"
LOCALIZE_CHOICES = {"on-failure": None, "always": True, "never": False}


# --------------------------------------------------------------------------------------------
# Markers: names, keywords and their validation
# --------------------------------------------------------------------------------------------

#: Marker name -> the family of its check ("shift" or "rotation") and whether it is invariance.
MARKERS: dict[str, tuple[str, bool]] = {
    "shift_equivariant": ("shift", False),
    "shift_invariant": ("shift", True),
    "rotation_equivariant": ("rotation", False),
    "rotation_invariant": ("rotation", True),
}

_COMMON_KEYWORDS = (
    "input_shape", "trials", "mode", "dims", "atol", "rtol", "seed", "device", "batch_size",
    "localize", "grid", "margin", "min_psnr", "measure",
)  # fmt: skip
_FAMILY_KEYWORDS = {
    "shift": ("max_shift", "shifts", "shift", "subpixel"),
    "rotation": ("angles", "angle", "group", "input_fields", "output_fields"),
}
#: Every keyword a marker accepts, in the order the docs list them.
MARKER_KEYWORDS = (
    "input_shape", "max_shift", "shifts", "shift", "subpixel", "trials", "mode", "angles", "angle", "dims",
    "group", "input_fields", "output_fields", "atol", "rtol", "min_consistency", "min_psnr", "measure", "seed",
    "device", "batch_size", "localize", "grid", "margin",
)  # fmt: skip

_MARKER_DOCS = {
    "shift_equivariant": "check that the test's model commutes with shifts: model(shift(x)) == shift(model(x))",
    "shift_invariant": "check that the test's model ignores shifts: model(shift(x)) == model(x)",
    "rotation_equivariant": "check that the test's model commutes with rotations: model(rot(x)) == rot(model(x))",
    "rotation_invariant": "check that the test's model ignores rotations: model(rot(x)) == model(x)",
}


def allowed_keywords(marker: str) -> tuple[str, ...]:
    """Return the keyword arguments marker ``marker`` accepts."""
    family, invariant = MARKERS[marker]
    extra = ("min_consistency",) if invariant else ()
    return tuple(k for k in MARKER_KEYWORDS if k in _COMMON_KEYWORDS + _FAMILY_KEYWORDS[family] + extra)


def marker_usage_error(marker: "pytest.Mark", nodeid: str) -> str | None:
    """Return a one-sentence usage error for an equivariance marker, or None when it is valid."""
    where = f"@pytest.mark.{marker.name} on {nodeid}"
    if marker.args:
        return (
            f"{where} got positional arguments {marker.args!r}; "
            f"pass keyword arguments, e.g. @pytest.mark.{marker.name}(input_shape=(1, 3, 32, 32))."
        )
    allowed = allowed_keywords(marker.name)
    for name, value in marker.kwargs.items():
        if name not in allowed:
            hint = ""
            if name == "min_consistency":
                hint = " (min_consistency applies to invariance checks only)"
            elif name in MARKER_KEYWORDS:
                hint = " (it belongs to the other family of markers)"
            return (
                f"{where} got an unknown argument {name!r}{hint}; "
                f"use one of: {', '.join(allowed)}."
            )
        expected = expected_value(name, value, MARKERS[marker.name][0])
        if expected is not None:
            return f"{where} got {name}={value!r}; pass {expected}."
    kwargs = marker.kwargs
    for single, many in (("shift", "shifts"), ("shift", "max_shift"), ("angle", "angles")):
        if single in kwargs and many in kwargs:
            return f"{where} got both {single}= and {many}=; pass only one of them."
    dims = kwargs.get("dims")
    if dims is not None:
        ndims = 1 if is_int(dims) else len(dims)
        shift = kwargs.get("shift")
        if real_tuple(shift) and len(shift) != ndims:
            return f"{where} got shift={shift!r} for dims={dims!r}; pass one entry per dim."
    return None


# --------------------------------------------------------------------------------------------
# Options, ini keys and the per-run state
# --------------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("equivariance", "equivariance checks (pytest-equivariance)")
    group.addoption(
        OPTION_DEVICE,
        dest="equiv_device",
        default=None,
        metavar="DEVICE",
        help="device the checks run on: cpu, cuda, cuda:N or auto (default: ini equiv_device, else cpu).",
    )
    group.addoption(
        OPTION_SEED,
        dest="equiv_seed",
        default=None,
        metavar="SEED",
        help="run seed every check's seed is derived from: an integer, or 'random' to draw one "
        "and print it in the header (default: ini equiv_seed, else 0).",
    )
    group.addoption(
        OPTION_TRIALS,
        dest="equiv_trials",
        default=None,
        metavar="N",
        help="random transforms per check, unless a check sets trials= (default: ini equiv_trials, "
        "else each check's own default).",
    )
    group.addoption(
        OPTION_LOCALIZE,
        dest="equiv_localize",
        default=None,
        choices=tuple(LOCALIZE_CHOICES),
        help="when to profile a check layer by layer to find where equivariance breaks "
        "(default: ini equiv_localize, else on-failure).",
    )
    parser.addini("equiv_device", "default device for equivariance checks (cpu, cuda, cuda:N, auto)")
    parser.addini("equiv_seed", "run seed for equivariance checks (integer or 'random')")
    parser.addini("equiv_trials", "default number of random transforms per equivariance check")
    group.addoption(
        OPTION_NO_SEED_MODELS,
        dest="equiv_no_seed_models",
        action="store_true",
        default=False,
        help="do not seed torch, random and numpy before a marked test or one that uses the "
        "equivariance fixture (for suites that seed their models themselves; ini: equiv_seed_models).",
    )
    parser.addini("equiv_localize", "when to localize failures: on-failure, always or never")
    parser.addini(
        "equiv_seed_models",
        "build the models of marked tests under the test's seed (default true)",
        type="bool",
        default=True,
    )

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


@dataclasses.dataclass(frozen=True)
class Settings:
    """The run-wide defaults every check starts from (options override ini keys)."""

    device: str = DEFAULT_DEVICE
    seed: int = 0
    seed_is_random: bool = False
    trials: int | None = None
    localize: bool | None = None
    localize_name: str = "on-failure"
    seed_models: bool = True


def _setting(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name, None)
    if value is None:
        value = config.getini(name) or None
    return None if value is None else str(value).strip()


def read_settings(config: pytest.Config) -> Settings:
    """Return the run's settings from options, ini keys and defaults; raise UsageError when invalid."""
    device = _setting(config, "equiv_device") or DEFAULT_DEVICE
    if not DEVICE_PATTERN.match(device):
        raise pytest.UsageError(
            f"{OPTION_DEVICE}/equiv_device got {device!r}; pass cpu, cuda, cuda:N or auto."
        )
    worker_seed = getattr(config, "workerinput", {}).get("equiv_seed")
    seed_text = _setting(config, "equiv_seed") or "0"
    seed_is_random = seed_text == "random"
    if worker_seed is not None:  # an xdist worker uses the controller's seed, drawn once
        seed = int(worker_seed)
    elif seed_is_random:
        seed = secrets.randbelow(2**31)
    else:
        try:
            seed = int(seed_text)
        except ValueError:
            seed = -1
        if seed < 0:
            raise pytest.UsageError(
                f"{OPTION_SEED}/equiv_seed got {seed_text!r}; pass a non-negative integer or 'random'."
            )
    trials_text = _setting(config, "equiv_trials")
    trials = None
    if trials_text is not None:
        trials = int(trials_text) if trials_text.isdigit() else 0
        if trials <= 0:
            raise pytest.UsageError(
                f"{OPTION_TRIALS}/equiv_trials got {trials_text!r}; pass a positive integer."
            )
    localize_name = _setting(config, "equiv_localize") or "on-failure"
    if localize_name not in LOCALIZE_CHOICES:
        raise pytest.UsageError(
            f"{OPTION_LOCALIZE}/equiv_localize got {localize_name!r}; "
            f"pass one of {', '.join(LOCALIZE_CHOICES)}."
        )
    return Settings(
        device=device,
        seed=seed,
        seed_is_random=seed_is_random,
        trials=trials,
        localize=LOCALIZE_CHOICES[localize_name],
        localize_name=localize_name,
        seed_models=bool(config.getini("equiv_seed_models")) and not config.getoption("equiv_no_seed_models", False),
    )


def derive_seed(run_seed: int, nodeid: str) -> int:
    """Return the seed of the checks in test ``nodeid``: a stable hash of the run seed and node id.

    zlib.crc32 rather than ``hash()``: Python salts string hashes per process, and the same test
    must get the same seed on every run and every xdist worker. Every check in a test gets the same
    seed, so adding a check does not change the others' draws, and a hypothesis test sees the same
    inputs in every example (its shrinking stays deterministic).
    """
    return zlib.crc32(f"{run_seed}:{nodeid}".encode())


def build_seed(run_seed: int, nodeid: str) -> int:
    """Return the seed torch, ``random`` and numpy get before test ``nodeid`` builds its model.

    Derived like :func:`derive_seed`, but distinct from it: the check draws its natural images from
    a generator seeded with the check seed, and weights drawn from the same stream would be
    correlated with those images.
    """
    return zlib.crc32(f"{run_seed}:{nodeid}:build".encode())


def seeds_its_build(item: pytest.Item) -> bool:
    """Return whether the plugin seeds ``item``: it is marked, or it uses the ``equivariance`` fixture."""
    return bool(_equivariance_markers(item)) or "equivariance" in getattr(item, "fixturenames", ())


def reproduce_command(config: pytest.Config, nodeid: str, settings: Settings) -> str:
    """Return the shell command that re-runs test ``nodeid`` with this run's seed and defaults."""
    path, sep, rest = nodeid.partition("::")
    invocation_dir = config.invocation_params.dir
    if invocation_dir != config.rootpath:
        path = os.path.relpath(config.rootpath / path, invocation_dir)
    parts = ["pytest", shlex.quote(path + sep + rest), f"{OPTION_SEED}={settings.seed}"]
    if settings.device != DEFAULT_DEVICE:
        parts.append(f"{OPTION_DEVICE}={settings.device}")
    if settings.trials is not None:
        parts.append(f"{OPTION_TRIALS}={settings.trials}")
    return " ".join(parts)


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
        api = sys.modules.get("pytest_equivariance.check.api")
        if api is not None:  # tests that call check_* themselves imported it at collection
            self.listen(api)
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

    def listen(self, api: Any) -> None:
        """Receive every CheckResult from ``check.api``, also from checks a test calls directly."""
        if self.on_result not in api.RESULT_LISTENERS:
            api.RESULT_LISTENERS.append(self.on_result)

    def stop_listening(self) -> None:
        """Stop receiving results from ``check.api`` (at the end of the run)."""
        api = sys.modules.get("pytest_equivariance.check.api")
        if api is not None and self.on_result in api.RESULT_LISTENERS:
            api.RESULT_LISTENERS.remove(self.on_result)

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


# --------------------------------------------------------------------------------------------
# Running checks for a test
# --------------------------------------------------------------------------------------------


class EquivarianceCheckFailed(AssertionError):
    """An equivariance check failed; ``results`` are the failing CheckResults it reports on.

    An AssertionError, so ``pytest.raises(AssertionError)`` and hypothesis treat it like an assert.
    ``from_marker`` failures are shown without a traceback (the plugin, not the test body, raised).
    """

    def __init__(self, results: "list[CheckResult]", *, from_marker: bool = False) -> None:
        from pytest_equivariance.report import terminal

        super().__init__("\n".join(terminal.headline(r) for r in results))
        self.results = results
        self.from_marker = from_marker


def _console_style(config: pytest.Config) -> tuple[bool, int]:
    """Return (colour?, width) as pytest's own terminal writer decided from --color and NO_COLOR."""
    if config.pluginmanager.has_plugin("terminalreporter"):
        tw = config.get_terminal_writer()
        return bool(tw.hasmarkup), max(int(tw.fullwidth), 40)
    return config.getoption("color", "auto") == "yes", 100


def run_check(
    item: pytest.Item,
    kind: str,
    model: Any,
    inputs: Any = None,
    kwargs: Mapping[str, Any] | None = None,
) -> "CheckResult":
    """Run the ``check_<kind>`` function with the run's defaults for ``item``; record and return it.

    Defaults that the caller did not set: ``device``, ``trials`` and ``localize`` from the options,
    and ``seed`` derived from the run seed and the node id.
    """
    __tracebackhide__ = True
    from pytest_equivariance.check import api

    session = _session(item.config)
    session.listen(api)
    settings = session.settings
    kwargs = dict(kwargs or {})
    kwargs.setdefault("seed", derive_seed(settings.seed, item.nodeid))
    kwargs.setdefault("device", settings.device)
    if settings.trials is not None and not ({"shift", "shifts", "angle", "angles", "group"} & kwargs.keys()):
        kwargs.setdefault("trials", settings.trials)
    if "localize" not in kwargs and settings.localize is not None:
        kwargs["localize"] = settings.localize
    if isinstance(kwargs.get("input_shape"), str):
        from pytest_equivariance.inputs import parse_shape

        kwargs["input_shape"] = parse_shape(kwargs["input_shape"])
    check: Callable[..., "CheckResult"] = getattr(api, f"check_{kind}")
    result = check(model, inputs, **kwargs)
    result.test_id = item.nodeid
    result.reproduce = reproduce_command(item.config, item.nodeid, settings)
    if not any(r is result for r in item.stash.get(ITEM_RESULTS_KEY, [])):
        record_result(item, result)  # the listener records it while a test runs; this covers the rest
    return result


def _equivariance_markers(item: pytest.Item) -> list["pytest.Mark"]:
    # Own markers in decorator order (top first), then class and module markers.
    own = [m for m in getattr(item, "own_markers", ()) if m.name in MARKERS]
    own.reverse()
    seen = {id(m) for m in own}
    rest = [m for m in item.iter_markers() if m.name in MARKERS and id(m) not in seen]
    return own + rest


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in _equivariance_markers(item):
            error = marker_usage_error(marker, item.nodeid)
            if error is not None:
                item.stash[_USAGE_ERROR_KEY] = error
                break


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    error = item.stash.get(_USAGE_ERROR_KEY, None)
    if error is not None:
        pytest.fail(error, pytrace=False)


_NOT_GIVEN = object()


def _fixture_value(item: pytest.Function, name: str) -> Any:
    """Return fixture ``name`` for ``item`` (requested or defined), or _NOT_GIVEN when none exists."""
    if name in item.funcargs:
        return item.funcargs[name]
    try:
        return item._request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        return _NOT_GIVEN


def _model_and_inputs(item: pytest.Function, returned: Any) -> tuple[Any, Any]:
    if isinstance(returned, (tuple, list)):
        if len(returned) != 2:
            pytest.fail(
                f"{item.nodeid} returned a {type(returned).__name__} of {len(returned)} items; "
                f"return the model, or (model, inputs).",
                pytrace=False,
            )
        model, inputs = returned
    elif returned is not None:
        model, inputs = returned, _NOT_GIVEN
    else:
        model = _fixture_value(item, "model")
        if model is _NOT_GIVEN:
            pytest.fail(
                f"{item.nodeid} is marked for an equivariance check but returned no model and no "
                f"fixture named 'model' exists; return the model (or (model, inputs)) from the test, "
                f"or define a 'model' fixture.",
                pytrace=False,
            )
        inputs = _NOT_GIVEN
    if inputs is _NOT_GIVEN:
        inputs = _fixture_value(item, "equiv_inputs")
    return model, (None if inputs is _NOT_GIVEN else inputs)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a marked test: call it for its model, then run one check per equivariance marker."""
    markers = _equivariance_markers(pyfuncitem)
    if not markers:
        return None
    from pytest_equivariance.errors import EquivarianceUsageError

    function = pyfuncitem.obj
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    returned = function(**arguments)
    if hasattr(returned, "__await__") or hasattr(returned, "__aiter__"):
        pytest.fail(f"{pyfuncitem.nodeid} is async; equivariance markers need a plain test function.", pytrace=False)
    model, inputs = _model_and_inputs(pyfuncitem, returned)
    failed = []
    for marker in markers:
        try:
            result = run_check(pyfuncitem, marker.name, model, inputs, marker.kwargs)
        except EquivarianceUsageError as exc:
            pytest.fail(f"@pytest.mark.{marker.name} on {pyfuncitem.nodeid}: {exc}", pytrace=False)
        if not result.passed:
            failed.append(result)
    if failed:
        raise EquivarianceCheckFailed(failed, from_marker=True)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    if call.when == "call":
        results = item.stash.get(ITEM_RESULTS_KEY, [])
        if results:
            report.equivariance = [r.to_json() for r in results]
        error = call.excinfo.value if call.excinfo is not None else None
        if isinstance(error, EquivarianceCheckFailed) and report.failed:
            _attach_failure_report(item, call, report, error)
    return report


def _attach_failure_report(
    item: pytest.Item, call: pytest.CallInfo[Any], report: pytest.TestReport, error: EquivarianceCheckFailed
) -> None:
    from pytest_equivariance.report import terminal

    if error.from_marker:
        report.longrepr = call.excinfo.getrepr(style="value")
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        # The short summary line shows the headline rather than the exception's qualified name,
        # and a marker's failure points at the test, not at the plugin that raised it.
        crash.message = str(error).partition("\n")[0]
        if error.from_marker:
            path, lineno, _ = item.reportinfo()
            crash.path, crash.lineno = str(path), (lineno or 0) + 1
    if hasattr(report.longrepr, "addsection"):
        color, width = _console_style(item.config)
        body = terminal.render(terminal.failure_reports(error.results, reproduce=False), color=color, width=width)
        for command in dict.fromkeys(r.reproduce for r in error.results if r.reproduce):
            line = terminal.reproduce_line(command)
            body += terminal.render(line, color=color, width=width, soft_wrap=True)
        report.longrepr.addsection("equivariance report", body.rstrip("\n"))


# --------------------------------------------------------------------------------------------
# The `equivariance` fixture
# --------------------------------------------------------------------------------------------


class EquivarianceFixture:
    """Runs equivariance checks inside a test, with the run's defaults, recording every result.

    ``check_*`` methods return a :class:`~pytest_equivariance.check.result.CheckResult`;
    ``assert_*`` methods raise :class:`EquivarianceCheckFailed` (an AssertionError) with the report
    when the check fails. Keyword arguments are those of the ``check_*`` functions in
    ``pytest_equivariance.check.api``; ``seed``, ``device``, ``trials`` and ``localize`` default to the
    run's (``--equiv-seed`` etc.), the seed derived per test so a failure reproduces exactly.
    """

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    @property
    def settings(self) -> Settings:
        """The run-wide defaults (device, seed, trials, localize)."""
        return _session(self._config).settings

    def _item(self) -> pytest.Item:
        item = _session(self._config).current_item
        if item is None:
            raise RuntimeError("the equivariance fixture can only run checks while a test runs")
        return item

    def _check(self, kind: str, model: Any, inputs: Any, kwargs: dict[str, Any]) -> "CheckResult":
        __tracebackhide__ = True
        return run_check(self._item(), kind, model, inputs, kwargs)

    def _assert(self, kind: str, model: Any, inputs: Any, kwargs: dict[str, Any]) -> "CheckResult":
        __tracebackhide__ = True
        result = self._check(kind, model, inputs, kwargs)
        if not result.passed:
            raise EquivarianceCheckFailed([result])
        return result

    def check_shift_equivariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Return the result of a shift-equivariance check: model(shift(x)) against shift(model(x))."""
        __tracebackhide__ = True
        return self._check("shift_equivariant", model, inputs, kwargs)

    def check_shift_invariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Return the result of a shift-invariance check: model(shift(x)) against model(x)."""
        __tracebackhide__ = True
        return self._check("shift_invariant", model, inputs, kwargs)

    def check_rotation_equivariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Return the result of a rotation-equivariance check: model(rot(x)) against rot(model(x))."""
        __tracebackhide__ = True
        return self._check("rotation_equivariant", model, inputs, kwargs)

    def check_rotation_invariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Return the result of a rotation-invariance check: model(rot(x)) against model(x)."""
        __tracebackhide__ = True
        return self._check("rotation_invariant", model, inputs, kwargs)

    def check_equivariant(
        self, model: Any, inputs: Any = None, *, transforms: Sequence[Any], **kwargs: Any
    ) -> "CheckResult":
        """Return the result of a check over custom ``(input_transform, output_transform)`` pairs."""
        __tracebackhide__ = True
        return self._check("equivariant", model, inputs, {"transforms": transforms, **kwargs})

    def assert_shift_equivariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Check shift equivariance; raise EquivarianceCheckFailed with the report when it fails."""
        __tracebackhide__ = True
        return self._assert("shift_equivariant", model, inputs, kwargs)

    def assert_shift_invariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Check shift invariance; raise EquivarianceCheckFailed with the report when it fails."""
        __tracebackhide__ = True
        return self._assert("shift_invariant", model, inputs, kwargs)

    def assert_rotation_equivariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Check rotation equivariance; raise EquivarianceCheckFailed with the report when it fails."""
        __tracebackhide__ = True
        return self._assert("rotation_equivariant", model, inputs, kwargs)

    def assert_rotation_invariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Check rotation invariance; raise EquivarianceCheckFailed with the report when it fails."""
        __tracebackhide__ = True
        return self._assert("rotation_invariant", model, inputs, kwargs)

    def assert_equivariant(
        self, model: Any, inputs: Any = None, *, transforms: Sequence[Any], **kwargs: Any
    ) -> "CheckResult":
        """Check custom ``(input_transform, output_transform)`` pairs; raise when the check fails."""
        __tracebackhide__ = True
        return self._assert("equivariant", model, inputs, {"transforms": transforms, **kwargs})

    def assert_lint_clean(
        self, model: Any, example_input_or_shape: Any = None, *, select: Any = None, ignore: Any = None
    ) -> None:
        """Run the static rules on ``model``; raise AssertionError listing the findings, if any."""
        __tracebackhide__ = True
        from pytest_equivariance.assertions import assert_lint_clean

        assert_lint_clean(model, example_input_or_shape, select=select, ignore=ignore)


@pytest.fixture(scope="session")
def equivariance(pytestconfig: pytest.Config) -> EquivarianceFixture:
    """Run equivariance checks in a test: ``equivariance.assert_shift_invariant(model, x)``.

    Session-scoped (it holds no per-test state; results go to whichever test is running), so it
    also works in hypothesis ``@given`` tests without the function-scoped-fixture health check.
    """
    return EquivarianceFixture(pytestconfig)
