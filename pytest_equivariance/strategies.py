"""Hypothesis strategies for equivariance tests: shifts, rotations and natural-like images.

Each strategy shrinks towards the simplest group element (the smallest shift, the smallest angle), so
a failing ``@given`` test reports the smallest transform that breaks the model. They pair with the
single-transform form of the checks::

    from hypothesis import given
    from pytest_equivariance import assert_shift_invariant
    from pytest_equivariance.strategies import shifts

    @given(shift=shifts(max_shift=8))
    def test_classifier_is_shift_invariant(shift):
        assert_shift_invariant(model, input_shape=(2, 3, 64, 64), shift=shift)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from pytest_equivariance.check.transforms import FLIP_NAMES

if TYPE_CHECKING:
    import torch


def shifts(
    max_shift: int = 8, dims: int = 2, *, allow_zero: bool = False, lattice: int | tuple[int, ...] = 1
) -> st.SearchStrategy[tuple[int, ...]]:
    """Return a strategy for shifts: tuples of ``dims`` ints in ``[-max_shift, max_shift]``.

    Entries are multiples of ``lattice`` (one int, or one per dim: the output stride, for equivariance
    of strided outputs). Shrinks towards zero, entry by entry from the first: the smallest failing
    shift along the last dim is ``(0, ..., 0, 1)``. The all-zero shift (the identity) is excluded
    unless ``allow_zero``.
    """
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 1:
        raise ValueError(f"max_shift={max_shift!r} is not a number of pixels; pass a positive integer, e.g. max_shift=8.")
    if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= 3:
        raise ValueError(f"dims={dims!r} is not a number of shifted dims; pass 1, 2 or 3.")
    steps = (lattice,) * dims if isinstance(lattice, int) else tuple(lattice)
    if len(steps) != dims or any(not isinstance(k, int) or k < 1 for k in steps):
        raise ValueError(f"lattice={lattice!r} is not a stride lattice for {dims} dims; pass a positive int, or one per dim.")
    if all(max_shift < k for k in steps):
        raise ValueError(f"max_shift={max_shift} is below the lattice {steps}, so no non-zero shift fits; pass max_shift={min(steps)} or more.")
    entries = [st.integers(-(max_shift // k), max_shift // k).map(lambda i, k=k: i * k) for k in steps]
    strategy = st.tuples(*entries)
    return strategy if allow_zero else strategy.filter(any)


def rotations(
    mode: str = "exact",
    *,
    min_angle: float = 1.0,
    max_angle: float = 359.0,
    resolution: float = 1.0,
    flips: bool = False,
) -> st.SearchStrategy[Any]:
    """Return a strategy for rotation angles in degrees, shrinking towards the smallest angle.

    ``mode="exact"``: quarter turns 90, 180, 270 (and ``"hflip"``, ``"vflip"`` with ``flips``), for
    checks in exact mode. ``mode="interp"``: multiples of ``resolution`` degrees between
    ``min_angle`` and ``max_angle``, for checks with ``mode="interp"``.
    """
    if mode == "exact":
        choices: list[Any] = [90, 180, 270] + (list(FLIP_NAMES) if flips else [])
        return st.sampled_from(choices)
    if mode != "interp":
        raise ValueError(f"mode={mode!r} is not a rotation mode; pass 'exact' or 'interp'.")
    if resolution <= 0 or not min_angle <= max_angle:
        raise ValueError(f"resolution={resolution!r}, min_angle={min_angle!r}, max_angle={max_angle!r} give no range; pass resolution > 0 and min_angle <= max_angle.")
    lo, hi = math.ceil(min_angle / resolution), math.floor(max_angle / resolution)
    if lo > hi:
        raise ValueError(f"No multiple of {resolution} lies between {min_angle} and {max_angle}; widen the range or pass a finer resolution.")
    return st.integers(lo, hi).map(lambda i: round(i * resolution, 10))


def natural_images(
    shape: tuple[int, ...], *, exponent: float = 1.0, dtype: "torch.dtype | None" = None
) -> st.SearchStrategy["torch.Tensor"]:
    """Return a strategy for deterministic 1/f-noise images of ``shape`` from a drawn seed.

    The images come from :func:`pytest_equivariance.inputs.natural_images`, so a shrunk or replayed
    example is the same tensor on every machine; the seed shrinks towards 0.
    """

    def build(seed: int) -> "torch.Tensor":
        from pytest_equivariance.inputs import natural_images as make

        return make(tuple(shape), seed=seed, exponent=exponent, dtype=dtype)

    return st.integers(0, 2**31 - 1).map(build)
