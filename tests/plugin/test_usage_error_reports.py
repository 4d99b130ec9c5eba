"""A usage error in a marked test, or through the fixture, is reported once, in one clean section."""

from __future__ import annotations

import pytest

BAD_TESTS = '''
import pytest
from torch import nn
from models import circular_net


@pytest.mark.rotation_equivariant(group="C0")
def test_group_c0():
    return circular_net()


@pytest.mark.rotation_equivariant(group="C1")
def test_group_c1():
    return circular_net()


@pytest.mark.shift_equivariant
def test_returns_42():
    return 42


@pytest.mark.shift_equivariant
def test_returns_a_string():
    return "model"


@pytest.mark.shift_equivariant
def test_returns_a_class():
    return nn.Conv2d


@pytest.mark.shift_equivariant(input_shape=(2, 5, 16, 16))
def test_channel_mismatch():
    return circular_net()


def test_through_the_fixture(equivariance):
    equivariance.assert_shift_equivariant(circular_net(), input_shape=(2, 5, 16, 16))
'''


def test_each_usage_error_is_said_once_without_a_chained_traceback(inner):
    inner.write(BAD_TESTS)
    result = inner.run("-p", "no:randomly", "-rN")  # no short summary: its lines are as wide as the terminal
    result.assert_outcomes(failed=5, errors=2)
    out = result.stdout.str()
    assert "During handling of the above exception" not in out
    assert "The above exception was the direct cause" not in out
    for needle in ("got int as its model, not a torch.nn.Module", "got str as its model, not a torch.nn.Module",
                   "got the class Conv2d, not an instance of it"):
        assert out.count(needle) == 1, needle  # once: not again after "During handling of ..."
    # The model's complaint is quoted once per test (marker, fixture), and no frame of torch is shown.
    assert out.count("to have 1 channels, but got 5 channels instead") == 2
    assert "torch/nn/modules" not in out and "pytest_equivariance/check" not in out


@pytest.mark.parametrize(("selected", "outcomes", "lines"), [
    # A bad marker argument is found at collection and reported at set-up, before the test runs.
    ("group_c0", {"errors": 1}, [
        "*ERROR at setup of test_group_c0*",
        "@pytest.mark.rotation_equivariant on test_inner.py::test_group_c0 got group='C0'; pass a group: "
        "'C<N>' with 2 <= N <= 10000 or 'D<N>' with 1 <= N <= 10000 (e.g. 'C4', 'D8'), 'SO2' or 'O2' for images; 'O', 'Oh', 'SO3' or 'O3' for volumes.",
    ]),
    # The trivial group passes no set-up: it has nothing to check, whatever the model.
    ("group_c1", {"errors": 1}, [
        "*ERROR at setup of test_group_c1*",
        "@pytest.mark.rotation_equivariant on test_inner.py::test_group_c1 got group='C1'; pass a group with more "
        "than the identity to check ('C1' has nothing else): drop group= (pass angles= to choose the rotations) "
        "or name a group with rotations, e.g. 'C4'.",
    ]),
    # Through the fixture, the error is shown at the test's own line.
    ("fixture", {"failed": 1}, [
        "test_inner.py:*: in test_through_the_fixture",
        "*equivariance.assert_shift_equivariant(circular_net(), input_shape=(2, 5, 16, 16))",
        "E   pytest_equivariance.errors.EquivarianceUsageError: The model rejected inputs of shape (N, 5, 16, 16)*",
    ]),
], ids=["marker argument", "trivial group", "fixture"])
def test_where_a_usage_error_is_reported(inner, selected, outcomes, lines):
    inner.write(BAD_TESTS)
    result = inner.run("-p", "no:randomly", "-k", selected)
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines(lines)
