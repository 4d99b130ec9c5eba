"""Generated bad arguments thrown at every public entry: only EquivarianceUsageError (one sentence) or
a documented result may come out — never an exception from torch or from our internals.

Each example corrupts one argument of a call that is otherwise valid and cheap (a tiny circular
network on 8x8 images, two trials), so a failure names the argument that leaked.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import pytest_equivariance as pe
from pytest_equivariance import (
    CheckResult,
    EquivarianceUsageError,
    ModelReport,
    Profile,
)
from pytest_equivariance.check import run
from pytest_equivariance.check.transforms import shift
from pytest_equivariance.errors import shown
from pytest_equivariance.plugin.markers import MARKER_KEYWORDS


class Tiny(nn.Module):
    """A circular stride-1 convolution, then global pooling: exactly shift-invariant, cheap to run."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")

    def forward(self, x):
        return self.conv(x).mean((-2, -1))


class TinyMap(nn.Module):
    """A 1x1 convolution: its output is a map on the input's grid, exactly shift- and rotation-equivariant."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


MODEL = Tiny().eval()
MAP = TinyMap().eval()  # for the equivariance checks, which need spatial outputs to compare
X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))

#: Values no argument should choke on: wrong types, wrong signs, sizes too large, odd tensors.
ODD_OBJECTS = [
    object(), nn.Conv2d, Tiny, float("nan"), float("inf"), -0.5, 1e308, (), [], {}, "", "cuda:99", "mps", b"x",
    torch.zeros(0), torch.zeros(0, 3, 8, 8), torch.zeros(2, 3, 8, 8, device="meta"), torch.zeros(2, 3, 8, 8).long(),
    torch.zeros(3, 8, 8), torch.zeros(2, 5, 8, 8), torch.tensor(1.0), Tiny().to("meta"), slice(None), Ellipsis,
    -1, 0, 1, 3, 10**6, 10**12, -(10**12), 2**63, 2**64, True, False, None,
]
BAD = st.one_of(
    st.sampled_from(ODD_OBJECTS),
    st.text(max_size=6),
    st.lists(st.one_of(st.integers(-3, 40), st.floats(-3, 40), st.text(max_size=3), st.none()), max_size=4),
    st.tuples(st.integers(-3, 40), st.integers(-3, 40)),
    st.tuples(st.integers(-2, 9), st.integers(-2, 9), st.integers(-2, 40), st.integers(-2, 40)),
    st.dictionaries(st.text(max_size=3), st.sampled_from(["regular", "scalar", 3, None]), max_size=2),
)

#: entry -> (the call with ``**override`` applied, the keywords it takes, what a result may be)
ENTRIES: dict[str, tuple[Callable[..., Any], tuple[str, ...], tuple[type, ...]]] = {
    "check_shift_equivariant": (
        lambda **kw: pe.check_shift_equivariant(**{"model": MAP, "input_shape": (1, 3, 8, 8), "trials": 2, **kw}),
        ("model", "inputs", "input_shape", "max_shift", "shifts", "shift", "trials", "mode", "dims", "atol", "rtol",
         "seed", "device", "batch_size", "localize", "grid", "margin", "subpixel", "min_psnr", "measure"),
        (CheckResult,),
    ),
    "check_shift_invariant": (
        lambda **kw: pe.check_shift_invariant(**{"model": MODEL, "input_shape": (1, 3, 8, 8), "trials": 2, **kw}),
        ("inputs", "input_shape", "max_shift", "shifts", "mode", "min_consistency", "seed", "batch_size",
         "margin", "subpixel", "min_psnr"),
        (CheckResult,),
    ),
    "check_rotation_equivariant": (
        lambda **kw: pe.check_rotation_equivariant(**{"model": MAP, "input_shape": (1, 3, 8, 8), **kw}),
        ("model", "inputs", "input_shape", "angles", "angle", "trials", "mode", "dims", "atol", "rtol", "seed",
         "device", "batch_size", "localize", "margin", "min_psnr", "measure", "group", "input_fields",
         "output_fields"),
        (CheckResult,),
    ),
    "check_equivariant": (
        lambda **kw: pe.check_equivariant(**{"model": MAP, "input_shape": (1, 3, 8, 8),
                                             "transforms": [(lambda x: x.flip(-1), lambda y: y.flip(-1))], **kw}),
        ("model", "inputs", "transforms", "input_shape", "atol", "rtol", "seed", "batch_size", "trials"),
        (CheckResult,),
    ),
    "lie_derivative": (
        lambda **kw: pe.lie_derivative(**{"model": MODEL, "inputs": X, "generator": "translate_x", **kw}),
        ("model", "inputs", "generator", "method", "output", "batch_size", "device"),
        (torch.Tensor, dict),
    ),
    "attribute": (
        lambda **kw: pe.attribute(**{"model": MODEL, "inputs": X, "generator": "rotate", **kw}),
        ("model", "inputs", "generator", "method", "output", "circular_padding", "batch_size", "device"),
        (Profile,),
    ),
    "localize": (
        lambda **kw: pe.localize(**{"model": MODEL, "inputs": X, "transform": shift((1, 2), (-2, -1)),
                                    "equivariant": True, **kw}),
        ("model", "inputs", "transform", "device", "batch_size"),
        (Profile,),
    ),
    "lint_model": (
        lambda **kw: pe.lint_model(**{"model": MODEL, **kw}),
        ("model", "example_input_or_shape", "select", "ignore", "per_module_ignores", "respect_suppressions"),
        (ModelReport,),
    ),
    "antialias": (
        lambda **kw: pe.antialias(**{"model": MODEL, **kw}),
        ("model", "method", "filter_size", "skip", "inplace", "conv", "example_input", "padding_mode", "criterion"),
        (nn.Module,),
    ),
}


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_entry_returns_a_result_when_nothing_is_corrupted(entry):
    # The fuzz below counts a usage error as a pass: that means something only if the call it
    # corrupts is valid, so the uncorrupted call must return a result (and a check must pass).
    call, _, results = ENTRIES[entry]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "RESULT_LISTENERS", [])
        out = call()
    assert isinstance(out, results), f"{entry}() returned {type(out).__name__}"
    if isinstance(out, CheckResult):
        assert out.passed and out.trials, f"{entry}() failed on a model built to pass it"


def _call(entry: str, keyword: str, value: Any) -> None:
    call, _, results = ENTRIES[entry]
    called = f"{entry}({keyword}={shown(value)})"
    leaked = None
    try:
        with pytest.MonkeyPatch.context() as patch:  # keep these checks out of the run's summary
            patch.setattr(run, "RESULT_LISTENERS", [])
            out = call(**{keyword: value})
    except EquivarianceUsageError as exc:
        text = str(exc)
        assert text and "\n" not in text and len(text) < 600, f"{called}: not one sentence: {text!r}"
        return
    except Exception as exc:  # noqa: BLE001 - this is what the test is looking for
        leaked = f"{called} leaked {type(exc).__name__}: {exc}"
    if leaked is not None:
        pytest.fail(leaked, pytrace=False)
    assert isinstance(out, results), f"{called} returned {type(out).__name__}"
    if isinstance(out, CheckResult):
        assert out.trials, f"{called} passed with no trial at all"
        assert all(math.isfinite(t.max_abs) or not t.passed for t in out.trials)


@pytest.mark.parametrize("entry", ENTRIES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(data=st.data())
def test_bad_arguments_raise_only_usage_errors(entry, data):
    keyword = data.draw(st.sampled_from(ENTRIES[entry][1]), label="keyword")
    value = data.draw(BAD, label="value")
    _call(entry, keyword, value)


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_odd_object_in_every_argument(entry):
    # The hand-picked values, exhaustively: the generated ones above cover the space around them.
    for keyword in ENTRIES[entry][1]:
        for value in ODD_OBJECTS:
            _call(entry, keyword, value)


# -- the command line and the markers ---------------------------------------------------------------

FLAGS = [
    "--format", "json", "sarif", "github", "--select", "EQ001", "--ignore", "--fail-level", "--input-shape",
    "1,3,8,8", "-1,3", "--config", "--allow-no-model", "--exit-zero", "--no-cache", "--cache-dir", "--quiet",
    "--statistics", "--list-rules", "--explain", "EQ0", "--fix", "--diff", "--add-noqa", "--unsafe-fixes",
    "--verbose", "--version", "net.py", "net.py::Net", "net.py::Nope", "missing.py", "pkg.mod:build", ".",
    "a\x00b.py", "net.py::", "::Net", "-",
]
NET = "import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        " \
      "super().__init__()\n        self.pool = nn.MaxPool2d(2)\n\n    def forward(self, x):\n" \
      "        return self.pool(x)\n"


REPORT_FLAGS = ["--compare", "-o", "--output", "--title", "x", "missing.json", "garbage.json", "empty.json",
                "net.py", "out.html", ".", "a\x00b.json", "-"]


def _run_cli(main: Callable[[list[str]], int], argv: list[str], name: str) -> tuple[int, str]:
    """Run a command-line entry in a scratch directory; return its exit code and standard error."""
    import contextlib
    import io
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        for file, text in (("net.py", NET), ("garbage.json", "{not json"), ("empty.json", "{}")):
            with open(os.path.join(directory, file), "w", encoding="utf-8") as handle:
                handle.write(text)
        out, err = io.StringIO(), io.StringIO()
        leaked = None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
            leaked = f"{name} {argv!r} leaked {type(exc).__name__}: {exc}"
        if leaked is not None:
            pytest.fail(leaked, pytrace=False)
    if not {"--verbose", "-v"} & set(argv):  # which asks for tracebacks
        assert "Traceback" not in err.getvalue(), (argv, err.getvalue())
    if code == 2 and "--help" not in argv and "-h" not in argv:
        assert "error:" in err.getvalue(), (argv, err.getvalue())
    return code, err.getvalue()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(argv=st.lists(st.one_of(st.sampled_from(FLAGS), st.text(max_size=6)), max_size=5))
def test_bad_equiv_lint_command_lines_exit_2_with_a_sentence_never_a_traceback(argv):
    from pytest_equivariance.cli import main

    code, _ = _run_cli(main, argv, "equiv-lint")
    assert code in (0, 1, 2), (argv, code)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(argv=st.lists(st.one_of(st.sampled_from(REPORT_FLAGS), st.text(max_size=6)), max_size=5))
def test_bad_equiv_report_command_lines_exit_2_with_a_sentence_never_a_traceback(argv):
    from pytest_equivariance.cli.equiv_report import main

    code, _ = _run_cli(main, argv, "equiv-report")
    assert code in (0, 1, 2), (argv, code)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(marker=st.sampled_from(["shift_equivariant", "shift_invariant", "rotation_equivariant", "rotation_invariant"]),
       keyword=st.sampled_from([*MARKER_KEYWORDS, "unknown"]),
       value=BAD)
def test_marker_arguments_are_judged_without_raising(marker, keyword, value):
    # At collection, before any model exists: a sentence or None, never an exception.
    from pytest_equivariance.plugin.markers import marker_usage_error

    error = marker_usage_error(getattr(pytest.mark, marker)(**{keyword: value}).mark, "test_x.py::test_x")
    assert error is None or ("\n" not in error and error.endswith(".")), error
