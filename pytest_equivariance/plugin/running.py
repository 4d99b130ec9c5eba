"""Running checks for a test: the marked-test protocol, failure reports, and usage errors at set-up."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from pytest_equivariance.plugin.markers import _equivariance_markers, marker_usage_error
from pytest_equivariance.plugin.session import ITEM_RESULTS_KEY, _console_style, _session, record_result
from pytest_equivariance.plugin.settings import derive_seed, reproduce_command

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult


#: A marker usage error found at collection, raised when the test is set up.
_USAGE_ERROR_KEY = pytest.StashKey[str]()


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
    from pytest_equivariance.check import api, run

    session = _session(item.config)
    session.listen(run)
    settings = session.settings
    kwargs = dict(kwargs or {})
    kwargs.setdefault("seed", derive_seed(settings.seed, item.nodeid))
    kwargs.setdefault("device", settings.device)
    if settings.trials is not None and not ({"shift", "shifts", "angle", "angles", "group", "scale", "scales"} & kwargs.keys()):
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
        usage = None
        try:
            result = run_check(pyfuncitem, marker.name, model, inputs, marker.kwargs)
        except EquivarianceUsageError as exc:
            usage = f"@pytest.mark.{marker.name} on {pyfuncitem.nodeid}: {exc}"
        if usage is not None:  # failed outside the except: one section, not the error twice
            pytest.fail(usage, pytrace=False)
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
        elif _is_usage_error(error) and report.failed and call.excinfo is not None:
            report.longrepr = _usage_repr(item, call.excinfo)
    return report


def _is_usage_error(error: BaseException | None) -> bool:
    if error is None:
        return False
    from pytest_equivariance.errors import EquivarianceUsageError

    return isinstance(error, EquivarianceUsageError)


def _usage_repr(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
    """A usage error raised through the fixture or an ``assert_*`` call, shown at the test's own lines.

    The error is the user's to fix in their test, and its sentence says how; the frames inside the
    package and torch (and the exception it was raised from) would only bury it.
    """
    path = getattr(item, "path", None)
    own = excinfo.traceback.filter(lambda entry: entry.path == path)
    if own:
        excinfo.traceback = own
    return excinfo.getrepr(style="short", chain=False)


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
