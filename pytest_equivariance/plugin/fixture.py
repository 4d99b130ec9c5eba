"""The ``equivariance`` fixture: checks inside a test, with the run's defaults, every result recorded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_equivariance.plugin.running import EquivarianceCheckFailed, run_check
from pytest_equivariance.plugin.session import _session
from pytest_equivariance.plugin.settings import Settings

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult


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

    def check_scale_equivariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Return the result of a scale-equivariance check: model(rescale(x)) against rescale(model(x))."""
        __tracebackhide__ = True
        return self._check("scale_equivariant", model, inputs, kwargs)

    def check_scale_invariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Return the result of a scale-invariance check: model(rescale(x)) against model(x)."""
        __tracebackhide__ = True
        return self._check("scale_invariant", model, inputs, kwargs)

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

    def assert_scale_equivariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Check scale equivariance; raise EquivarianceCheckFailed with the report when it fails."""
        __tracebackhide__ = True
        return self._assert("scale_equivariant", model, inputs, kwargs)

    def assert_scale_invariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Check scale invariance; raise EquivarianceCheckFailed with the report when it fails."""
        __tracebackhide__ = True
        return self._assert("scale_invariant", model, inputs, kwargs)

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

    # Point clouds and graphs (check.pointclouds): inputs are the model's arguments, fields declared.
    def check_e3_equivariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Return the result of an E(3)-equivariance check: model(g·x) against g·model(x)."""
        __tracebackhide__ = True
        return self._check("e3_equivariant", model, inputs, kwargs)

    def check_e3_invariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Return the result of an E(3)-invariance check: model(g·x) against model(x)."""
        __tracebackhide__ = True
        return self._check("e3_invariant", model, inputs, kwargs)

    def check_permutation_equivariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Return the result of a permutation-equivariance check: model(σ·x) against σ·model(x)."""
        __tracebackhide__ = True
        return self._check("permutation_equivariant", model, inputs, kwargs)

    def check_permutation_invariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Return the result of a permutation-invariance check: model(σ·x) against model(x)."""
        __tracebackhide__ = True
        return self._check("permutation_invariant", model, inputs, kwargs)

    def assert_e3_equivariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Check E(3) equivariance; raise EquivarianceCheckFailed with the report when it fails."""
        __tracebackhide__ = True
        return self._assert("e3_equivariant", model, inputs, kwargs)

    def assert_e3_invariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Check E(3) invariance; raise EquivarianceCheckFailed with the report when it fails."""
        __tracebackhide__ = True
        return self._assert("e3_invariant", model, inputs, kwargs)

    def assert_permutation_equivariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Check permutation equivariance; raise EquivarianceCheckFailed with the report when it fails."""
        __tracebackhide__ = True
        return self._assert("permutation_equivariant", model, inputs, kwargs)

    def assert_permutation_invariant(self, model: Any, inputs: Any = None, **kwargs: Any) -> "CheckResult":
        """Check permutation invariance; raise EquivarianceCheckFailed with the report when it fails."""
        __tracebackhide__ = True
        return self._assert("permutation_invariant", model, inputs, kwargs)


@pytest.fixture(scope="session")
def equivariance(pytestconfig: pytest.Config) -> EquivarianceFixture:
    """Run equivariance checks in a test: ``equivariance.assert_shift_invariant(model, x)``.

    Session-scoped (it holds no per-test state; results go to whichever test is running), so it
    also works in hypothesis ``@given`` tests without the function-scoped-fixture health check.
    """
    return EquivarianceFixture(pytestconfig)
