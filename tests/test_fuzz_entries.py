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


class Neighbours(nn.Module):
    """Positions moved towards their neighbours, features summed over them: E(3)- and permutation-equivariant."""

    def forward(self, pos, h, edge_index):
        src, dst = edge_index
        moved = pos + torch.zeros_like(pos).index_add_(0, dst, 0.1 * (pos[src] - pos[dst]))
        return moved, h + torch.zeros_like(h).index_add_(0, dst, h[src])


CLOUD = (torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), torch.randn(5, 2),
         torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]]))

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
    "check_scale_equivariant": (
        lambda **kw: pe.check_scale_equivariant(**{"model": MAP, "input_shape": (1, 3, 8, 8), "localize": False, **kw}),
        # What only scale checks take: the shared arguments are fuzzed through the other checks.
        ("scales", "scale", "scale_range", "trials", "mode", "max_channel_error", "margin", "output_fields"),
        (CheckResult,),
    ),
    "check_scale_invariant": (
        lambda **kw: pe.check_scale_invariant(**{"model": MODEL, "input_shape": (1, 3, 8, 8), "localize": False, **kw}),
        ("scales", "scale_range", "trials", "mode", "min_consistency"),
        (CheckResult,),
    ),
    "scale_channels": (
        lambda **kw: pe.scale_channels(**{"n": 3, **kw}),
        ("n", "axis", "base"),
        (object,),
    ),
    "check_equivariant": (
        lambda **kw: pe.check_equivariant(**{"model": MAP, "input_shape": (1, 3, 8, 8),
                                             "transforms": [(lambda x: x.flip(-1), lambda y: y.flip(-1))], **kw}),
        ("model", "inputs", "transforms", "input_shape", "atol", "rtol", "seed", "batch_size", "trials"),
        (CheckResult,),
    ),
    "check_e3_equivariant": (
        lambda **kw: pe.check_e3_equivariant(**{
            "model": Neighbours(), "inputs": CLOUD, "input_fields": ("points", "2x0e", None),
            "output_fields": ("points", "2x0e"), "trials": 2, **kw}),
        ("model", "inputs", "input_fields", "output_fields", "group", "trials", "seed", "atol", "rtol", "device",
         "batch_size", "localize", "positions", "edge_index", "edge_attrs"),
        (CheckResult,),
    ),
    "check_permutation_equivariant": (
        lambda **kw: pe.check_permutation_equivariant(**{"model": Neighbours(), "inputs": CLOUD, "trials": 2, **kw}),
        ("model", "inputs", "permute", "trials", "seed", "atol", "rtol", "device", "batch_size", "localize",
         "positions", "edge_index", "edge_attrs"),
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

NET = "import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        " \
      "super().__init__()\n        self.conv = nn.Conv2d(3, 4, 3)\n        self.pool = nn.MaxPool2d(2)\n\n" \
      "    def forward(self, x):\n        return self.pool(self.conv(x))\n"  # EQ001 (an error), EQ011 (info)

# Command lines are drawn by class, each with the exit code the CLIs document for it (0 clean, 1
# findings or a regression, 2 usage error): a valid command, then options that do not change its
# outcome, then (for the usage class) one corruption. Targets come first: argparse takes positionals
# in one run.

#: equiv-lint options that change neither the findings nor the exit code.
LINT_NEUTRAL = [("--quiet",), ("--statistics",), ("--format", "json"), ("--format", "sarif"), ("--format", "github"),
                ("--format", "text"), ("--no-cache",), ("--cache-dir", "cache"), ("--allow-no-model",),
                ("--no-github-summary",), ("--verbose",), ("--input-shape", "1,3,8,8")]
#: ...that keep NET's EQ001 error a failure.
LINT_FAILING = [("--select", "EQ001"), ("--select", "ALL"), ("--fail-level", "info"), ("--fail-level", "warning"),
                ("--fail-level", "error")]
#: ...that make NET clean: exit 0 whatever, EQ001 dropped (EQ011 is info, below the fail level), EQ002 only.
LINT_CLEANING = [("--exit-zero",), ("--ignore", "EQ001"), ("--select", "EQ002")]
#: ...that print something and exit 0 before any target is read.
LINT_EARLY = [("--list-rules",), ("--version",), ("--explain", "EQ001")]
#: Each a usage error, whatever else the command line holds.
LINT_CORRUPT = [("--bogus",), ("missing.py",), ("a\x00b.py",), ("net.py::Nope",), ("pkg.mod:build",), ("-",),
                ("",), ("empty.json",), ("--format", "bogus"), ("--fail-level", "bogus"), ("--input-shape", "-1,3"),
                ("--input-shape", "x"), ("--input-shape", "1,3"), ("--explain", "EQ0"), ("--config", "missing.toml"),
                ("--select", "XYZ"), ("--ignore", "XYZ"), ("--input-shape",)]
LINT_TARGETS = [("net.py",), ("net.py::Net",), (".",)]


def _command(draw, targets, *pools, last=()):
    """Targets, then options drawn from ``pools`` in a drawn order, then ``last``: a flat argument list."""
    options = [group for pool in pools for group in draw(st.lists(st.sampled_from(pool), max_size=3))]
    return [*targets, *(token for group in [*draw(st.permutations(options)), *last] for token in group)]


@st.composite
def lint_command_lines(draw) -> tuple[list[str], int]:
    kind = draw(st.sampled_from(["findings", "clean", "early", "usage"]))
    target = draw(st.sampled_from(LINT_TARGETS))
    if kind == "findings":
        return _command(draw, target, LINT_NEUTRAL, LINT_FAILING), 1
    if kind == "clean":
        return _command(draw, target, LINT_NEUTRAL, last=[draw(st.sampled_from(LINT_CLEANING))]), 0
    if kind == "early":
        first = draw(st.sampled_from(LINT_EARLY))
        return _command(draw, draw(st.sampled_from([(), target])), LINT_NEUTRAL, LINT_CLEANING, last=[first]), 0
    corrupt = draw(st.one_of(st.sampled_from(LINT_CORRUPT), st.text(max_size=6).map(lambda t: (f"--zz{t}",)),
                             st.text(max_size=6).map(lambda t: (f"zz{t}",))))
    return _command(draw, target, LINT_NEUTRAL, LINT_CLEANING, last=[corrupt]), 2


def _results_file(padding_mode: str) -> str:
    """A results file, as pytest --equiv-json writes it, of one shift-invariance check of a small net."""
    from pytest_equivariance.gates.entries import entries_from_results
    from pytest_equivariance.gates.runs import results_document

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode=padding_mode), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "RESULT_LISTENERS", [])
        result = pe.check_shift_invariant(model, input_shape=(1, 3, 8, 8), trials=2, localize=False)
    result.test_id = "test_net.py::test_net"
    return results_document([result], entries_from_results([result]), None)


#: run.json: an exactly invariant run; worse.json: the same check, regressed (zero padding breaks it).
RUN_FILES = {"run.json": _results_file("circular"), "worse.json": _results_file("zeros")}

REPORT_OPTIONS = [("-o", "out.html"), ("--output", "dir/out.html"), ("--title", "x")]
#: Each a usage error, whatever else the command line holds.
REPORT_CORRUPT = [("missing.json",), ("garbage.json",), ("empty.json",), ("net.py",), ("-",), ("a\x00b.json",),
                  ("--bogus",), ("-o", "run.json"), ("-o", "."), ("-o", ""), ("--compare", "run.json"), ("-o",),
                  ("--title",)]


@st.composite
def report_command_lines(draw) -> tuple[list[str], int]:
    kind = draw(st.sampled_from(["merged", "compared", "regressed", "usage"]))
    title = draw(st.text(max_size=6).filter(lambda t: not t.startswith("-")).map(lambda t: ("--title", t)))
    options = [*REPORT_OPTIONS, title]
    if kind == "merged":
        return _command(draw, draw(st.sampled_from([("run.json",), ("run.json", "worse.json")])), options), 0
    if kind == "compared":  # no regression: the same run, or a run that got better
        pair = draw(st.sampled_from([("run.json", "run.json"), ("worse.json", "run.json")]))
        return _command(draw, (), options, last=[("--compare", *pair)]), 0
    if kind == "regressed":
        return _command(draw, (), options, last=[("--compare", "run.json", "worse.json")]), 1
    valid = draw(st.sampled_from([(), ("run.json",), ("--compare", "run.json", "worse.json")]))
    corrupt = draw(st.one_of(st.sampled_from(REPORT_CORRUPT), st.text(max_size=6).map(lambda t: (f"--zz{t}",))))
    if not valid:  # no results file at all is a usage error of its own
        return _command(draw, (), options), 2
    return _command(draw, valid, options, last=[corrupt]), 2


def _run_cli(main: Callable[[list[str]], int], argv: list[str], name: str) -> tuple[int, str]:
    """Run a command-line entry in a scratch directory; return its exit code and standard error."""
    import contextlib
    import io
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        patch.delenv("GITHUB_STEP_SUMMARY", raising=False)
        files = {"net.py": NET, "garbage.json": "{not json", "empty.json": "{}", **RUN_FILES}
        for file, text in files.items():
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


def _exits_as_documented(main: Callable[[list[str]], int], case: tuple[list[str], int], name: str) -> None:
    argv, expected = case
    code, err = _run_cli(main, argv, name)
    assert code == expected, (argv, code, err)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(case=lint_command_lines())
def test_equiv_lint_command_lines_exit_with_their_documented_code(case):
    from pytest_equivariance.cli import main

    _exits_as_documented(main, case, "equiv-lint")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(case=report_command_lines())
def test_equiv_report_command_lines_exit_with_their_documented_code(case):
    from pytest_equivariance.cli.equiv_report import main

    _exits_as_documented(main, case, "equiv-report")


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: For keywords with a simple rule, whether a value is valid, written out independently of the plugin.
SIMPLE_RULES: dict[str, Callable[[Any], bool]] = {
    "trials": lambda v: _integer(v) and 0 < v <= 10_000,
    "batch_size": lambda v: _integer(v) and v > 0,
    "margin": lambda v: _integer(v) and v >= 0,
    "seed": lambda v: _integer(v) and 0 <= v < 2**63,
    "max_shift": lambda v: _integer(v) and v > 0,
    "atol": lambda v: _number(v) and v >= 0,
    "rtol": lambda v: _number(v) and v >= 0,
    "min_consistency": lambda v: _number(v) and 0 <= v <= 1,
    "min_psnr": _number,
    "subpixel": lambda v: isinstance(v, bool),
    "grid": lambda v: isinstance(v, bool),
    "localize": lambda v: v is None or isinstance(v, bool),
    "measure": lambda v: v in ("error", "lie"),
}


@settings(max_examples=200, deadline=None, derandomize=True)
@given(marker=st.sampled_from(["shift_equivariant", "shift_invariant", "rotation_equivariant", "rotation_invariant"]),
       keyword=st.sampled_from([*MARKER_KEYWORDS, "unknown"]),
       value=st.one_of(BAD, st.integers(-3, 20), st.floats(-1, 2), st.booleans()))
def test_marker_arguments_are_judged_without_raising(marker, keyword, value):
    # At collection, before any model exists: the sentence that names the argument, or None.
    from pytest_equivariance.plugin.markers import allowed_keywords, marker_usage_error

    where = f"@pytest.mark.{marker} on test_x.py::test_x"
    error = marker_usage_error(getattr(pytest.mark, marker)(**{keyword: value}).mark, "test_x.py::test_x")
    if keyword not in allowed_keywords(marker):
        assert error is not None and error.startswith(f"{where} got an unknown argument {keyword!r}"), error
    elif keyword in SIMPLE_RULES:
        valid = SIMPLE_RULES[keyword](value)
        assert (error is None) == valid, (keyword, value, error)
        if not valid:
            assert error is not None and error.startswith(f"{where} got {keyword}={shown(value)}; pass "), error
    else:
        assert error is None or error.startswith(f"{where} got {keyword}={shown(value)}; pass "), error
    assert error is None or ("\n" not in error and error.endswith(".")), error


#: The edges of SIMPLE_RULES, every one tried: generated values rarely land on them.
EDGES = [-1, 0, 1, 2, 0.5, 1.0, 1.5, -0.0, 10_000, 10_001, 2**63 - 1, 2**63, True, False, None, float("nan"),
         float("inf"), "error", "lie", "psnr"]


@pytest.mark.parametrize("marker", ["shift_invariant", "rotation_invariant", "shift_equivariant"])
def test_marker_arguments_at_the_edges_of_their_rules(marker):
    from pytest_equivariance.plugin.markers import allowed_keywords, marker_usage_error

    for keyword in set(SIMPLE_RULES) & set(allowed_keywords(marker)):
        for value in EDGES:
            error = marker_usage_error(getattr(pytest.mark, marker)(**{keyword: value}).mark, "t.py::t")
            assert (error is None) == SIMPLE_RULES[keyword](value), (marker, keyword, value, error)
