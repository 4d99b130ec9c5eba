"""The equivariance markers: exact models pass, aliasing ones fail with a report that reproduces."""

from __future__ import annotations

import re

from pytest_equivariance.plugin import derive_seed

SHAPE = "(2, 1, 8, 8)"

EXACT = f"""
import pytest
from models import circular_net, pooled_classifier

@pytest.mark.shift_equivariant(input_shape={SHAPE}, trials=4)
def test_circular_net():
    return circular_net()

@pytest.mark.shift_invariant(input_shape={SHAPE}, trials=4)
def test_pooled_classifier():
    return pooled_classifier()
"""

ALIASING = f"""
import pytest
from models import aliasing_classifier, circular_net

@pytest.mark.shift_equivariant(input_shape={SHAPE}, trials=2)
def test_first():
    return circular_net()

@pytest.mark.shift_invariant(input_shape={SHAPE}, max_shift=3, trials=4)
def test_aliasing():
    return aliasing_classifier()
"""


def _headline(output: str) -> str:
    match = re.search(r"^shift_invariant failed under .*$", output, re.MULTILINE)
    assert match, output
    return match.group(0)


def test_exact_models_pass(inner):
    inner.write(EXACT)
    result = inner.run()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*PytestReturnNotNoneWarning*")


def test_aliasing_model_fails_with_worst_shift_seed_and_command(inner):
    inner.write(ALIASING)
    result = inner.run()
    result.assert_outcomes(passed=1, failed=1)
    seed = derive_seed(0, "test_inner.py::test_aliasing")
    result.stdout.fnmatch_lines(
        [
            f"shift_invariant failed under shift (dy=*, dx=*): max_abs * exceeds atol=1e-05 rtol=1e-04;"
            f" */4 trials failed, seed {seed}",
            "*equivariance report*",
            "FAILED shift_invariant (circular)*",
            "worst transform: shift (dy=*, dx=*)",
            f"seed: {seed} (derived from the run seed and the test id)",
            "reproduce: pytest test_inner.py::test_aliasing --equiv-seed=0",
            "FAILED test_inner.py::test_aliasing - shift_invariant failed under shift*",
        ]
    )


def test_reproduce_command_repeats_the_same_figures(inner):
    inner.write(ALIASING)
    first = inner.run("--equiv-seed=11")
    line = _headline(first.stdout.str())
    command = re.search(r"^reproduce: (.*)$", first.stdout.str(), re.MULTILINE).group(1).split()
    assert command[:2] == ["pytest", "test_inner.py::test_aliasing"]
    again = inner.run(*command[1:])  # the failing test alone: no other check runs before it
    again.assert_outcomes(failed=1)
    assert _headline(again.stdout.str()) == line
    other = inner.run("test_inner.py::test_aliasing", "--equiv-seed=12")
    assert _headline(other.stdout.str()) != line  # the seed matters, so the match above means something


def test_random_run_seed_is_printed_and_reproduces(inner):
    inner.write(ALIASING)
    first = inner.run("--equiv-seed=random")
    header = re.search(r"^equivariance: seed=(\d+) \(random\) device=cpu$", first.stdout.str(), re.MULTILINE)
    assert header, first.stdout.str()
    again = inner.run("test_inner.py::test_aliasing", f"--equiv-seed={header.group(1)}")
    assert _headline(again.stdout.str()) == _headline(first.stdout.str())


def test_model_from_return_tuple_and_fixtures(inner):
    inner.write(
        """
import pytest, torch
from models import circular_net, pooled_classifier

INPUTS = torch.randn(3, 1, 6, 10, generator=torch.Generator().manual_seed(0))

@pytest.mark.shift_equivariant(shift=(1, 2))
def test_returns_model_and_inputs():
    return circular_net(), INPUTS

@pytest.fixture
def model():
    return pooled_classifier()

@pytest.fixture
def equiv_inputs():
    return INPUTS[:2]

@pytest.mark.shift_invariant(shift=(0, 3))
def test_requests_model(model):
    pass

@pytest.mark.shift_invariant(shift=(3, 0))
def test_model_fixture_not_requested():
    pass
"""
    )
    results = inner.results()
    assert [r["input_shape"] for r in results["test_returns_model_and_inputs"]] == [[3, 1, 6, 10]]
    assert [r["input_shape"] for r in results["test_requests_model"]] == [[2, 1, 6, 10]]
    assert [r["input_shape"] for r in results["test_model_fixture_not_requested"]] == [[2, 1, 6, 10]]
    assert all(r["passed"] for rs in results.values() for r in rs)


def test_several_markers_run_several_checks_in_decorator_order(inner):
    inner.write(
        f"""
import pytest
from models import aliasing_classifier

@pytest.mark.shift_invariant(input_shape={SHAPE}, shift=(2, 2))
@pytest.mark.shift_invariant(input_shape={SHAPE}, shift=(1, 0))
def test_two_checks():
    return aliasing_classifier()
"""
    )
    checks = inner.results()["test_two_checks"]
    assert [c["trials"][0]["params"]["shift"] for c in checks] == [[2, 2], [1, 0]]
    assert [c["passed"] for c in checks] == [True, False]  # exact on the stride-2 lattice only


def test_a_test_without_a_model_fails_with_a_clear_message(inner):
    inner.write(
        """
import pytest

@pytest.mark.shift_equivariant()
def test_nothing():
    pass
"""
    )
    result = inner.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_nothing is marked for an equivariance check but returned no model*"])


def test_usage_error_from_the_check_names_the_test(inner):
    inner.write(
        """
import pytest
from models import circular_net

@pytest.mark.shift_equivariant(input_shape=(1, 1, 8, 8), shifts=[(1, 0, 0)])
def test_wrong_shift_length():
    return circular_net()
"""
    )
    result = inner.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.shift_equivariant on test_inner.py::test_wrong_shift_length: *"])


def test_class_and_module_markers_apply_after_the_tests_own(inner):
    inner.write(
        """
import pytest
from models import pooled_classifier

pytestmark = pytest.mark.shift_invariant(input_shape=(1, 1, 8, 8), shift=(0, 3))

@pytest.mark.shift_invariant(input_shape=(1, 1, 8, 8), shift=(2, 0))
class TestClassifier:
    @pytest.mark.shift_invariant(input_shape=(1, 1, 8, 8), shift=(1, 1))
    def test_method(self):
        return pooled_classifier()
"""
    )
    checks = inner.results()["test_method"]
    assert [c["trials"][0]["params"]["shift"] for c in checks] == [[1, 1], [2, 0], [0, 3]]


def test_markers_take_subpixel_min_psnr_and_measure(inner):
    inner.write('''
        import pytest
        from models import circular_net

        @pytest.mark.shift_equivariant(input_shape=(1, 1, 16, 16), subpixel=True, trials=4)
        def test_subpixel():
            return circular_net()  # a ReLU between circular convs: integer shifts commute, half pixels do not

        @pytest.mark.shift_equivariant(input_shape=(1, 1, 16, 16), trials=4, min_psnr=60)
        def test_psnr():
            return circular_net()

        @pytest.mark.shift_equivariant(input_shape=(1, 1, 16, 16), measure="lie")
        def test_lie():
            return circular_net()
    ''')
    results = inner.results()
    assert [r["passed"] for r in results["test_subpixel"]] == [False]
    assert results["test_subpixel"][0]["trials"][0]["params"]["shift"] == [0.5, 0]
    assert [r["passed"] for r in results["test_psnr"]] == [True]
    assert results["test_psnr"][0]["min_psnr"] == 60
    assert results["test_lie"][0]["measure"] == "lie" and not results["test_lie"][0]["passed"]
