"""Rotations of 3-D space and their real irreps (check/so3.py): exact in float64, in e3nn's basis."""

from __future__ import annotations

import math

import pytest
import torch
from optional import require

from pytest_equivariance.check import so3
from pytest_equivariance.errors import EquivarianceUsageError

ORDERS = [(l, p) for l in range(5) for p in (1, -1)]  # noqa: E741


def test_random_rotations_are_seeded_haar_rotations():
    r = so3.random_rotations(4000, seed=7)
    assert r.shape == (4000, 3, 3) and r.dtype == torch.float64
    assert torch.allclose(r @ r.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand_as(r), atol=1e-14)
    assert torch.allclose(torch.linalg.det(r), torch.ones(4000, dtype=torch.float64), atol=1e-14)
    assert torch.equal(r, so3.random_rotations(4000, seed=7))
    assert not torch.equal(r[:5], so3.random_rotations(5, seed=8))
    # Haar: every entry averages 0 (std 1/sqrt(3n) ~ 0.009), and the angle's density is (1 - cos θ)/π,
    # whose mean of cos θ is -1/2; a uniform axis-and-angle draw would give 0.
    assert r.mean(0).abs().max() < 0.05
    cos_angle = (r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    assert abs(cos_angle.mean().item() + 0.5) < 0.03


def test_random_orthogonal_inverts_about_half_of_the_same_rotations():
    r, o = so3.random_rotations(400, seed=3), so3.random_orthogonal(400, seed=3)
    det = torch.linalg.det(o)
    assert 150 < int((det < 0).sum()) < 250
    assert torch.allclose(o, r * det.sign()[:, None, None], atol=0)


def test_axis_angle_turns_x_to_y_about_z_and_batches():
    quarter = so3.axis_angle_to_matrix(torch.tensor([0.0, 0.0, 2.0]), math.pi / 2)
    assert torch.allclose(quarter @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                          torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-15)
    axes = torch.randn(6, 3, dtype=torch.float64)
    angles = torch.rand(6, dtype=torch.float64) * 6
    batch = so3.axis_angle_to_matrix(axes, angles)
    assert batch.shape == (6, 3, 3)
    # The axis is fixed and the trace is 1 + 2 cos θ.
    assert torch.allclose((batch @ axes[..., None])[..., 0], axes, atol=1e-14)
    assert torch.allclose(batch.diagonal(dim1=-2, dim2=-1).sum(-1), 1 + 2 * torch.cos(angles), atol=1e-14)


def test_generators_of_order_one_are_cartesian():
    generators = so3.so3_generators(1)
    for k, axis in enumerate(torch.eye(3, dtype=torch.float64)):
        assert torch.allclose(torch.linalg.matrix_exp(0.7 * generators[k]), so3.axis_angle_to_matrix(axis, 0.7),
                              atol=1e-15)


def test_order_one_is_the_matrix_and_order_zero_is_one():
    r = so3.random_rotations(8, seed=1)
    assert torch.equal(so3.wigner_D(1, r), r)
    assert torch.equal(so3.wigner_D(0, r), torch.ones(8, 1, 1, dtype=torch.float64))


@pytest.mark.parametrize(("l", "p"), ORDERS)
def test_irreps_are_orthogonal_homomorphisms_of_o3(l, p):  # noqa: E741
    r1, r2 = so3.random_orthogonal(16, seed=11), so3.random_orthogonal(16, seed=12)
    d1, d2, d12 = so3.irrep_D(l, p, r1), so3.irrep_D(l, p, r2), so3.irrep_D(l, p, r1 @ r2)
    assert d1.shape == (16, 2 * l + 1, 2 * l + 1)
    assert (d12 - d1 @ d2).abs().max() < 1e-12
    assert (d1 @ d1.transpose(-1, -2) - torch.eye(2 * l + 1, dtype=torch.float64)).abs().max() < 1e-12


@pytest.mark.parametrize("l", range(7))
def test_characters_are_those_of_order_l(l):  # noqa: E741
    """Basis-free: the trace of D_l at a rotation by θ is sin((l + 1/2) θ) / sin(θ / 2)."""
    angles = torch.linspace(0.1, 3.1, 9, dtype=torch.float64)
    d = so3.wigner_D(l, so3.axis_angle_to_matrix(torch.randn(9, 3, dtype=torch.float64), angles))
    character = torch.sin((l + 0.5) * angles) / torch.sin(angles / 2)
    assert torch.allclose(d.diagonal(dim1=-2, dim2=-1).sum(-1), character, atol=1e-12)


def test_parity_follows_e3nn():
    r = so3.random_orthogonal(32, seed=5)
    det = torch.linalg.det(r)
    assert torch.allclose(so3.irrep_D(0, -1, r)[:, 0, 0], det, atol=1e-14)  # pseudoscalar
    assert torch.allclose(so3.irrep_D(1, -1, r), r, atol=1e-14)  # vector
    assert torch.allclose(so3.irrep_D(1, 1, r), r * det[:, None, None], atol=1e-14)  # pseudovector
    inversion = -torch.eye(3, dtype=torch.float64)
    for l, p in ORDERS:  # noqa: E741
        assert torch.allclose(so3.irrep_D(l, p, inversion), p * torch.eye(2 * l + 1, dtype=torch.float64))
    shared = so3.irreps_D([(2, -1), (0, 1), (1, -1)], r)
    assert torch.equal(shared[0], so3.irrep_D(2, -1, r)) and torch.equal(shared[2], so3.irrep_D(1, -1, r))


def test_agrees_with_e3nn():
    o3 = require("e3nn.o3")
    r = so3.random_orthogonal(32, seed=9)
    for l, p in ORDERS:  # noqa: E741
        # e3nn builds its generators in the default dtype: float32 here, so agreement to its precision.
        assert (so3.irrep_D(l, p, r) - o3.Irrep(l, p).D_from_matrix(r)).abs().max() < 1e-5
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:  # with float64 generators, e3nn's exponentials of Euler angles meet our intertwiners to rounding
        for l, p in ORDERS:  # noqa: E741
            assert (so3.irrep_D(l, p, r) - o3.Irrep(l, p).D_from_matrix(r)).abs().max() < 1e-12
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: so3.wigner_D(-1, torch.eye(3)), "order is -1"),
    (lambda: so3.wigner_D(1.5, torch.eye(3)), "order is 1.5"),
    (lambda: so3.irrep_D(1, 0, torch.eye(3)), "parity is 0"),
    (lambda: so3.wigner_D(2, torch.eye(2)), r"shape \(2, 2\)"),
    (lambda: so3.axis_angle_to_matrix(torch.zeros(3), 1.0), "zero vector"),
])
def test_usage_errors_name_the_cause(call, match):
    with pytest.raises(EquivarianceUsageError, match=match):
        call()
