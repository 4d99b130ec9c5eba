"""The `equivariance` fixture: checks inside a test body, with the run's defaults, all recorded."""

from __future__ import annotations

from pytest_equivariance.plugin import derive_seed


def test_assert_methods_pass_exact_models_and_fail_aliasing_ones(inner):
    inner.write(
        """
import pytest, torch
from models import aliasing_classifier, circular_net, pooled_classifier
from pytest_equivariance.plugin import EquivarianceCheckFailed

def test_exact(equivariance):
    equivariance.assert_shift_equivariant(circular_net(), input_shape=(1, 1, 8, 8), max_shift=3, trials=3)
    result = equivariance.assert_shift_invariant(pooled_classifier(), input_shape=(1, 1, 8, 8), shift=(1, 2))
    assert result.passed and result.worst.params["shift"] in ([1, 2], (1, 2))

def test_aliasing(equivariance):
    equivariance.assert_shift_invariant(aliasing_classifier(), input_shape=(1, 1, 8, 8), shift=(0, 1))

def test_raises_an_assertion_error(equivariance):
    with pytest.raises(AssertionError) as info:
        equivariance.assert_shift_invariant(aliasing_classifier(), input_shape=(1, 1, 8, 8), shift=(1, 1), localize=False)
    assert isinstance(info.value, EquivarianceCheckFailed)
    assert info.value.results[0].worst.transform == "shift (dy=+1, dx=+1)"
"""
    )
    result = inner.run()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            ">       equivariance.assert_shift_invariant(aliasing_classifier(), *",  # the test's own line
            "E       *EquivarianceCheckFailed: shift_invariant failed under shift (dy=+0, dx=+1)*",
            "*equivariance report*",
            "worst transform: shift (dy=+0, dx=+1)",
            "reproduce: pytest test_inner.py::test_aliasing --equiv-seed=0",
        ]
    )
    result.stdout.fnmatch_lines(["4 equivariance checks, 2 failed (1 expected), in test_inner.py"])


def test_check_methods_return_results_with_derived_seeds_and_option_defaults(inner):
    inner.write(
        """
from models import aliasing_classifier, pooled_classifier

def test_two(equivariance):
    first = equivariance.check_shift_invariant(aliasing_classifier(), input_shape=(1, 1, 8, 8))
    second = equivariance.check_shift_invariant(pooled_classifier(), input_shape=(1, 1, 8, 8))
    assert not first.passed and second.passed
    assert equivariance.settings.seed == 3
"""
    )
    checks = inner.results("--equiv-seed=3", "--equiv-trials=2")["test_two"]
    nodeid = "test_inner.py::test_two"
    assert [c["seed"] for c in checks] == [derive_seed(3, nodeid)] * 2
    assert [len(c["trials"]) for c in checks] == [2, 2]
    assert [c["test_id"] for c in checks] == [nodeid, nodeid]


def test_rotation_custom_and_lint_methods(inner):
    inner.write(
        """
import pytest, torch
from torch import nn
from models import aliasing_classifier

def test_rotation_and_custom(equivariance):
    pointwise = nn.Conv2d(1, 2, 1)  # a 1x1 convolution commutes with every spatial permutation
    equivariance.assert_rotation_equivariant(pointwise, input_shape=(1, 1, 6, 6))
    equivariance.assert_rotation_invariant(nn.Sequential(pointwise, nn.AdaptiveAvgPool2d(1)), input_shape=(1, 1, 6, 6))
    flip = lambda t: t.flip(-1)
    equivariance.assert_equivariant(pointwise, torch.randn(1, 1, 4, 4), transforms=[(flip, flip)])

def test_lint(equivariance):
    equivariance.assert_lint_clean(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1)), (1, 1, 8, 8))
    with pytest.raises(AssertionError, match="EQ001"):
        equivariance.assert_lint_clean(aliasing_classifier(), (1, 1, 8, 8))
"""
    )
    results = inner.results()
    assert [c["kind"] for c in results["test_rotation_and_custom"]] == [
        "rotation_equivariant", "rotation_invariant", "custom",
    ]  # fmt: skip
    assert all(c["passed"] for c in results["test_rotation_and_custom"])
    assert "test_lint" not in results  # linting records no check result


def test_direct_calls_to_the_public_api_are_recorded_too(inner):
    inner.write(
        """
from pytest_equivariance import assert_shift_equivariant, check_shift_invariant
from models import aliasing_classifier, circular_net

def test_direct():
    assert_shift_equivariant(circular_net(), input_shape=(1, 1, 8, 8), shift=(2, 1))
    assert not check_shift_invariant(aliasing_classifier(), input_shape=(1, 1, 8, 8), shift=(1, 0)).passed
"""
    )
    checks = inner.results()["test_direct"]
    assert [c["kind"] for c in checks] == ["shift_equivariant", "shift_invariant"]
    assert all(c["test_id"] == "test_inner.py::test_direct" for c in checks)
    assert checks[0]["reproduce"] == "pytest test_inner.py::test_direct --equiv-seed=0"


def test_fixture_works_in_hypothesis_tests_and_shrinks(inner):
    inner.write(
        """
from hypothesis import given, settings, strategies as st
from models import aliasing_classifier

MODEL = aliasing_classifier()

@settings(max_examples=10, database=None, derandomize=True)
@given(dy=st.integers(0, 3), dx=st.integers(0, 3))
def test_shifts(equivariance, dy, dx):
    equivariance.assert_shift_invariant(MODEL, input_shape=(1, 1, 8, 8), shift=(dy, dx), localize=False)
"""
    )
    result = inner.run("-p", "hypothesispytest")
    result.assert_outcomes(failed=1)
    # The smallest failing shift is one pixel along one axis; the report shows the shrunk example.
    result.stdout.fnmatch_lines(["worst transform: shift (dy=+0, dx=+1)"])
    result.stdout.fnmatch_lines(["*shift_invariant ×* (circular)*no*"])  # one summary row
