"""Rotation checks: quarter turns and flips exactly, other angles by interpolation on the disk."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from check_models import C4Conv, c4_net, circular_net, seeded
from pytest_equivariance.check.api import check_rotation_equivariant, check_rotation_invariant

SHAPE = (2, 3, 16, 16)


def test_c4_symmetric_kernels_are_rotation_equivariant():
    result = check_rotation_equivariant(c4_net(), input_shape=SHAPE)
    assert result.passed
    assert [t.params["k"] for t in result.trials] == [1, 2, 3]
    assert result.mode == "exact"
    assert [a for a, _ in result.angle_errors] == [90.0, 180.0, 270.0]


def test_c4_pooled_classifier_is_rotation_invariant():
    result = check_rotation_invariant(c4_net(head=True), input_shape=SHAPE)
    assert result.passed
    assert result.consistency == 1.0


def test_asymmetric_kernels_fail_quarter_turns():
    result = check_rotation_equivariant(c4_net(symmetric=False), input_shape=SHAPE, localize=False)
    assert not result.passed
    assert result.worst_error > 0.1


def test_flips_are_checked_along_the_plane():
    # 3x3 kernels summed over quarter turns are also mirror-symmetric: flips pass.
    result = check_rotation_equivariant(c4_net(), input_shape=SHAPE, angles=["hflip", "vflip", 90])
    assert result.passed
    assert [t.transform for t in result.trials] == ["flip W", "flip H", "rot90 ×1"]
    # A 5x5 kernel summed over quarter turns is chiral in general: flips fail, quarter turns pass.
    chiral = seeded(lambda: nn.Sequential(C4Conv(3, 4, size=5)))
    assert check_rotation_equivariant(chiral, input_shape=SHAPE, angles=[90, 270]).passed
    flipped = check_rotation_equivariant(chiral, input_shape=SHAPE, angles=["hflip"], localize=False)
    assert not flipped.passed


def test_single_angle_form():
    result = check_rotation_equivariant(c4_net(), input_shape=SHAPE, angle=180)
    assert len(result.trials) == 1 and result.trials[0].params == {"k": 2}


def test_ordinary_conv_net_is_not_rotation_equivariant():
    result = check_rotation_equivariant(circular_net(), input_shape=SHAPE, localize=False)
    assert not result.passed


def test_interp_rotations_pass_symmetric_kernels_and_fail_asymmetric_ones():
    good = check_rotation_equivariant(c4_net(), input_shape=(2, 3, 32, 32), mode="interp", localize=False)
    bad = check_rotation_equivariant(c4_net(symmetric=False), input_shape=(2, 3, 32, 32), mode="interp", localize=False)
    assert good.passed, [(t.transform, t.max_abs) for t in good.trials if not t.passed]
    assert not bad.passed
    assert good.mode == "interp"
    assert good.atol >= 0.05  # interpolation allowance on top of float32's
    assert len(good.angle_errors) == 23
    assert bad.worst_error > 5 * good.worst_error


def test_interp_compares_only_the_inscribed_disk():
    # The model writes 1 where its input is empty; rotating its output leaves the corners at 0.
    # Only the disk mask keeps those corners from failing an otherwise pointwise (equivariant) model.
    from pytest_equivariance.check.transforms import rotation

    class AddOne(nn.Module):
        def forward(self, x):
            return x + 1.0

    result = check_rotation_equivariant(AddOne(), input_shape=(1, 1, 24, 24), mode="interp", angles=[30, 45])
    assert result.passed
    g = rotation(45.0)
    x = g.reference(torch.randn(1, 1, 24, 24))
    unmasked = (AddOne()(g.on_input(x)) - g.on_output(AddOne()(x))).abs().max()
    assert unmasked > 0.5


def test_quarter_turns_by_interpolation_agree_with_exact_ones():
    result = check_rotation_equivariant(c4_net(), input_shape=SHAPE, mode="interp", angles=[90, 180, 270])
    assert result.worst_error < 1e-4


def test_random_angles_are_drawn_from_the_seed():
    a = check_rotation_equivariant(c4_net(), input_shape=SHAPE, mode="interp", trials=3, seed=1)
    b = check_rotation_equivariant(c4_net(), input_shape=SHAPE, mode="interp", trials=3, seed=1)
    c = check_rotation_equivariant(c4_net(), input_shape=SHAPE, mode="interp", trials=3, seed=2)
    assert [t.params for t in a.trials] == [t.params for t in b.trials] != [t.params for t in c.trials]


def test_rotation_in_another_plane_of_a_volume():
    class Pointwise(nn.Module):
        def forward(self, x):
            return torch.tanh(x) * 2

    result = check_rotation_equivariant(Pointwise(), input_shape=(1, 2, 6, 8, 8), dims=(-3, -1), angles=[180])
    assert result.passed
    assert result.dims == (-3, -1)


@pytest.mark.parametrize("check", [check_rotation_equivariant, check_rotation_invariant])
def test_model_state_is_restored(check):
    model = c4_net(head=check is check_rotation_invariant).train()
    result = check(model, input_shape=SHAPE)
    assert result.passed
    assert all(m.training for m in model.modules())
