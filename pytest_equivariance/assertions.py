"""``assert_*`` twins of the checks: raise AssertionError with a plain-text report when a check fails.

They work in any test runner (the messages come from :mod:`pytest_equivariance.report.text`); under
pytest, ``__tracebackhide__`` keeps the traceback on the test's own line, as e3nn's test helpers do.
Each returns the :class:`~pytest_equivariance.check.result.CheckResult` when the check passes, so a
test can look at the figures too.

Example::

    from pytest_equivariance import assert_shift_equivariant

    def test_backbone_is_shift_equivariant():
        assert_shift_equivariant(make_backbone(), input_shape=(2, 3, 64, 64), max_shift=8)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

from pytest_equivariance.check import api

if TYPE_CHECKING:
    from torch import Tensor, nn

    from pytest_equivariance.check.result import CheckResult


def raise_for_result(result: "CheckResult") -> "CheckResult":
    """Return ``result`` when it passed; otherwise raise AssertionError with its plain-text report."""
    __tracebackhide__ = True
    if not result.passed:
        from pytest_equivariance.report.text import format_result

        raise AssertionError(format_result(result))
    return result


def assert_shift_equivariant(model: "nn.Module", inputs: "Tensor | None" = None, **kwargs: Any) -> "CheckResult":
    """Check ``model(shift(x)) == shift(model(x))``; raise AssertionError with the report if not.

    Keywords as :func:`pytest_equivariance.check.api.check_shift_equivariant` (``shift=`` for one shift).
    """
    __tracebackhide__ = True
    return raise_for_result(api.check_shift_equivariant(model, inputs, **kwargs))


def assert_shift_invariant(model: "nn.Module", inputs: "Tensor | None" = None, **kwargs: Any) -> "CheckResult":
    """Check ``model(shift(x)) == model(x)``; raise AssertionError with the report if not.

    Keywords as :func:`pytest_equivariance.check.api.check_shift_invariant`.
    """
    __tracebackhide__ = True
    return raise_for_result(api.check_shift_invariant(model, inputs, **kwargs))


def assert_rotation_equivariant(
    model: "nn.Module", inputs: "Tensor | None" = None, **kwargs: Any
) -> "CheckResult":
    """Check ``model(rotate(x)) == rotate(model(x))``; raise AssertionError with the report if not.

    Keywords as :func:`pytest_equivariance.check.api.check_rotation_equivariant` (``angle=`` for one).
    """
    __tracebackhide__ = True
    return raise_for_result(api.check_rotation_equivariant(model, inputs, **kwargs))


def assert_rotation_invariant(model: "nn.Module", inputs: "Tensor | None" = None, **kwargs: Any) -> "CheckResult":
    """Check ``model(rotate(x)) == model(x)``; raise AssertionError with the report if not.

    Keywords as :func:`pytest_equivariance.check.api.check_rotation_invariant`.
    """
    __tracebackhide__ = True
    return raise_for_result(api.check_rotation_invariant(model, inputs, **kwargs))


def assert_scale_equivariant(model: "nn.Module", inputs: "Tensor | None" = None, **kwargs: Any) -> "CheckResult":
    """Check ``model(rescale(x)) == rescale(model(x))``; raise AssertionError with the report if not.

    Keywords as :func:`pytest_equivariance.check.api.check_scale_equivariant` (``scale=`` for one factor).
    """
    __tracebackhide__ = True
    return raise_for_result(api.check_scale_equivariant(model, inputs, **kwargs))


def assert_scale_invariant(model: "nn.Module", inputs: "Tensor | None" = None, **kwargs: Any) -> "CheckResult":
    """Check ``model(rescale(x)) == model(x)``; raise AssertionError with the report if not.

    Keywords as :func:`pytest_equivariance.check.api.check_scale_invariant`.
    """
    __tracebackhide__ = True
    return raise_for_result(api.check_scale_invariant(model, inputs, **kwargs))


def assert_equivariant(
    model: "nn.Module", inputs: "Tensor | None" = None, transforms: Iterable[Any] = (), **kwargs: Any
) -> "CheckResult":
    """Check custom ``(input_fn, output_fn)`` pairs; raise AssertionError with the report if any fails."""
    __tracebackhide__ = True
    return raise_for_result(api.check_equivariant(model, inputs, transforms, **kwargs))


def assert_lint_clean(
    model: "nn.Module",
    example_input_or_shape: Any = None,
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
) -> None:
    """Run the static rules on ``model``; raise AssertionError listing findings at warning level or above.

    Info-level findings (e.g. EQ010, zero padding, when selected) are listed but do not fail, as the
    linter's default fail level. ``select`` / ``ignore`` take rule codes or prefixes ("EQ00").
    """
    __tracebackhide__ = True
    from pytest_equivariance.lint import lint
    from pytest_equivariance.lint.findings import Severity

    findings = lint(model, example_input_or_shape, select=select, ignore=ignore)
    failing = [f for f in findings if Severity(f.severity).rank >= Severity.WARNING.rank]
    if not failing:
        return
    name = type(model).__name__
    lines = [f"{name}: {len(failing)} equivariance lint finding{'s' if len(failing) != 1 else ''}"]
    for f in findings:
        where = f" ({f.file}:{f.line})" if f.file and f.line else ""
        lines.append(f"  {f.code} [{Severity(f.severity).value}] {f.qualname}: {f.message}{where}")
        if f.fix:
            first = f.fix.strip().splitlines()[0]
            lines.append(f"      fix: {first}")
    raise AssertionError("\n".join(lines))


def assert_e3_equivariant(model: "nn.Module", inputs: Any = None, **kwargs: Any) -> "CheckResult":
    """Check ``model(g·x) == g·model(x)`` over E(3) elements; raise AssertionError with the report if not.

    Keywords as :func:`pytest_equivariance.check.api.check_e3_equivariant` (``input_fields=``, ``output_fields=``).
    """
    __tracebackhide__ = True
    return raise_for_result(api.check_e3_equivariant(model, inputs, **kwargs))


def assert_e3_invariant(model: "nn.Module", inputs: Any = None, **kwargs: Any) -> "CheckResult":
    """Check ``model(g·x) == model(x)`` over E(3) elements; raise AssertionError with the report if not."""
    __tracebackhide__ = True
    return raise_for_result(api.check_e3_invariant(model, inputs, **kwargs))


def assert_permutation_equivariant(model: "nn.Module", inputs: Any = None, **kwargs: Any) -> "CheckResult":
    """Check ``model(σ·x) == σ·model(x)`` over node (or edge) permutations; raise AssertionError if not."""
    __tracebackhide__ = True
    return raise_for_result(api.check_permutation_equivariant(model, inputs, **kwargs))


def assert_permutation_invariant(model: "nn.Module", inputs: Any = None, **kwargs: Any) -> "CheckResult":
    """Check ``model(σ·x) == model(x)`` over node (or edge) permutations; raise AssertionError if not."""
    __tracebackhide__ = True
    return raise_for_result(api.check_permutation_invariant(model, inputs, **kwargs))
