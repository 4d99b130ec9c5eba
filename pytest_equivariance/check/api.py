"""The dynamic checks a user calls, in one place: ``check_shift_equivariant`` and friends.

Each lives with what it checks (:mod:`.shifts`, :mod:`.rotations`, :mod:`.scales`, :mod:`.custom`), and all share one
argument spec (:mod:`.spec`) and one run loop (:mod:`.run`); each returns a :class:`CheckResult`.

A check applies a set of transforms to a batch of inputs, puts every transformed copy through the
model (batched, chunked, on the chosen device, in eval mode), and compares ``model(g·x)`` with
``g·model(x)`` (equivariance) or ``model(x)`` (invariance) output leaf by output leaf. It never raises
because the model fails the check: that is ``result.passed``. It raises
:class:`~pytest_equivariance.errors.EquivarianceUsageError` for arguments it cannot honour.

Example::

    from pytest_equivariance import check_shift_invariant

    result = check_shift_invariant(model, input_shape=(4, 3, 64, 64), max_shift=8, seed=0)
    if not result.passed:
        print(result.worst.transform, result.worst.max_abs)
"""

from pytest_equivariance.check.custom import check_equivariant
from pytest_equivariance.check.rotations import check_rotation_equivariant, check_rotation_invariant
from pytest_equivariance.check.pointclouds import (
    check_e3_equivariant,
    check_e3_invariant,
    check_permutation_equivariant,
    check_permutation_invariant,
)
from pytest_equivariance.check.run import RESULT_LISTENERS
from pytest_equivariance.check.scales import check_scale_equivariant, check_scale_invariant
from pytest_equivariance.check.shifts import (
    check_shift_equivariant,
    check_shift_invariant,
    draw_shifts,
    draw_subpixel_shifts,
)
from pytest_equivariance.check.spec import DEFAULT_BATCH, DEFAULT_MAX_SHIFT, DEFAULT_TRIALS

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_MAX_SHIFT",
    "DEFAULT_TRIALS",
    "RESULT_LISTENERS",
    "check_equivariant",
    "check_rotation_equivariant",
    "check_rotation_invariant",
    "check_scale_equivariant",
    "check_scale_invariant",
    "check_shift_equivariant",
    "check_shift_invariant",
    "draw_shifts",
    "draw_subpixel_shifts",
    "check_e3_equivariant",
    "check_e3_invariant",
    "check_permutation_equivariant",
    "check_permutation_invariant",
]
