"""Hypothesis strategies shrink to the smallest transform that breaks a model."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from check_models import pooled_classifier
from pytest_equivariance.assertions import assert_shift_invariant
from pytest_equivariance.check.api import check_rotation_equivariant, check_shift_invariant
from pytest_equivariance.inputs import natural_images as make_natural_images
from pytest_equivariance.strategies import natural_images, rotations, shifts

FAST = settings(max_examples=40, database=None, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
SHAPE = (2, 3, 8, 8)


def test_find_shrinks_to_the_smallest_odd_shift_that_breaks_a_strided_max_pool():
    model = pooled_classifier(aliasing=True)

    def breaks(shift):
        return not check_shift_invariant(model, input_shape=SHAPE, shift=shift, localize=False).passed

    assert find(shifts(max_shift=6), breaks, settings=FAST) == (0, 1)


def test_failing_given_test_reports_the_smallest_odd_shift():
    model = pooled_classifier(aliasing=True)
    failing: list[tuple[int, ...]] = []

    @FAST
    @given(shift=shifts(max_shift=6))
    def test(shift):
        try:
            assert_shift_invariant(model, input_shape=SHAPE, shift=shift, localize=False)
        except AssertionError:
            failing.append(shift)
            raise

    with pytest.raises(AssertionError, match="shift invariance FAILED"):
        test()
    assert failing[-1] == (0, 1)  # hypothesis replays the minimal example last


def test_passing_given_test_on_the_lattice():
    model = pooled_classifier(aliasing=True)

    @settings(max_examples=8, database=None, derandomize=True, deadline=None)
    @given(shift=shifts(max_shift=6, lattice=2))
    def test(shift):
        assert_shift_invariant(model, input_shape=SHAPE, shift=shift, localize=False)

    test()


@given(shift=shifts(max_shift=5, dims=3, lattice=(1, 2, 1)))
@settings(max_examples=30, database=None)
def test_shifts_stay_in_range_on_the_lattice_and_are_not_zero(shift):
    assert len(shift) == 3
    assert any(shift)
    assert all(abs(d) <= 5 for d in shift)
    assert shift[1] % 2 == 0


def test_zero_shift_only_when_allowed():
    assert find(shifts(4, allow_zero=True), lambda s: True) == (0, 0)
    assert find(shifts(4, dims=1), lambda s: True) == (1,)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_shift": 0}, "max_shift=0 "),
        ({"dims": 4}, "dims=4 "),
        ({"lattice": 0}, "lattice=0 "),
        ({"max_shift": 1, "lattice": 2}, "pass max_shift=2 or more"),
    ],
)
def test_shifts_rejects_bad_arguments(kwargs, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        shifts(**kwargs)


def test_rotations_shrink_to_the_smallest_angle():
    assert find(rotations(), lambda a: True) == 90
    assert find(rotations("interp"), lambda a: a > 10) == 11.0
    assert find(rotations("interp", min_angle=5, resolution=2.5), lambda a: True) == 5.0
    with pytest.raises(ValueError, match="mode='spin' is not a rotation mode"):
        rotations("spin")


def test_a_failing_interp_angle_shrinks_to_the_smallest_failing_angle():
    from check_models import c4_net

    model = c4_net(symmetric=False)

    def breaks(angle):
        return not check_rotation_equivariant(
            model, input_shape=(1, 3, 12, 12), mode="interp", angle=angle, localize=False
        ).passed

    smallest = find(rotations("interp", min_angle=1, max_angle=30), breaks, settings=FAST)
    assert all(not breaks(a) for a in range(1, int(smallest)))


@given(seed=st.integers(0, 2**31 - 2))
@settings(max_examples=5, database=None, deadline=None)
def test_natural_images_are_deterministic_in_their_seed(seed):
    shape = (2, 1, 8, 8)
    images = make_natural_images(shape, seed=seed)
    assert images.shape == shape
    assert torch.allclose(images.flatten(2).mean(-1), torch.zeros(2, 1), atol=1e-5)
    assert torch.equal(images, make_natural_images(shape, seed=seed))  # bit for bit, not close
    assert not torch.equal(images, make_natural_images(shape, seed=seed + 1))
    assert not torch.equal(images[0], images[1])  # one seed, different images in the batch


def test_natural_images_strategy_draws_the_images_of_a_seed():
    # The strategy draws a seed and maps it through inputs.natural_images; its seed shrinks to 0.
    shape = (2, 1, 8, 8)
    assert torch.equal(find(natural_images(shape), lambda _: True, settings=FAST), make_natural_images(shape, seed=0))
