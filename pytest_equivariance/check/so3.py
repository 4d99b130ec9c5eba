"""Rotations of 3-D space and their real irreducible representations, exact in float64.

Everything here is float64 and batched: a batch of rotations is a ``(n, 3, 3)`` tensor, and the real
Wigner D-matrices of order ``l`` for it a ``(n, 2l+1, 2l+1)`` tensor. The basis is e3nn's real basis, in
which order 1 is Cartesian ``(x, y, z)``, so :func:`wigner_D` of order 1 is the rotation matrix itself
and orders ``l >= 2`` agree with e3nn's ``Irrep(l, p).D_from_matrix``.

Why our own: e3nn builds its generators in float32, so its ``D_from_matrix`` of order 1 differs from the
matrix by ~3e-7 even in float64, and an exactly equivariant float64 model measured through it shows a
relative error near 1e-6. Here no angles and no matrix exponentials are involved: order ``l`` is the
unique copy of the irrep inside ``1 ⊗ (l-1)``, so ``D_l(R) = Cᵀ (R ⊗ D_{l-1}(R)) C`` with ``C`` an
isometric intertwiner solved once, in float64, from the generators (Schur's lemma makes ``C`` unique up
to sign, and the sign cancels). The result is a homomorphism to float64 rounding (~1e-15).

Parity follows e3nn: an irrep ``(l, p)`` of O(3) sends a rotation ``R`` to ``D_l(R)`` and an improper
``R`` (det -1) to ``p · D_l(-R)``. So ``1o`` is the vector (``D = R``), ``1e`` the pseudovector, ``0o``
the pseudoscalar (``det R``).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    from torch import Tensor


def random_rotations(n: int, seed: int = 0) -> Tensor:
    """Return ``n`` rotations drawn from the Haar measure of SO(3), as a float64 ``(n, 3, 3)`` tensor.

    Uniform unit quaternions map to Haar-distributed rotations; the draw depends on ``seed`` alone
    (a private generator), never on torch's global state.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, dtype=torch.float64, generator=generator)
    return quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True))


def random_orthogonal(n: int, seed: int = 0) -> Tensor:
    """Return ``n`` elements drawn from the Haar measure of O(3): rotations, each inverted with probability 1/2.

    The rotations are those of :func:`random_rotations` with the same seed, so ``random_orthogonal(n, s)``
    differs from ``random_rotations(n, s)`` only by the sign of some elements.
    """
    import torch

    rotations = random_rotations(n, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    signs = torch.randint(0, 2, (n,), generator=generator).to(torch.float64) * -2 + 1
    return rotations * signs[:, None, None]


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Return the rotation matrices ``(..., 3, 3)`` of unit quaternions ``(..., 4)`` written ``(w, x, y, z)``."""
    import torch

    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def axis_angle_to_matrix(axis: Tensor, angle: Tensor | float) -> Tensor:
    """Return the rotations by ``angle`` (radians, right hand) about ``axis`` ``(..., 3)``, as ``(..., 3, 3)``.

    Rodrigues' formula, in float64; the axis need not be normalised, but must not be zero.
    """
    import torch

    axis = torch.as_tensor(axis, dtype=torch.float64)
    angle = torch.as_tensor(angle, dtype=torch.float64)
    axis, angle = torch.broadcast_tensors(axis, angle[..., None])
    angle = angle[..., 0]
    norm = axis.norm(dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise EquivarianceUsageError("A rotation axis is the zero vector; give each rotation a nonzero axis.")
    u = axis / norm
    zero = torch.zeros_like(u[..., 0])
    cross = torch.stack([zero, -u[..., 2], u[..., 1],
                         u[..., 2], zero, -u[..., 0],
                         -u[..., 1], u[..., 0], zero], dim=-1).reshape(*u.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=torch.float64).expand_as(cross)
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    return eye + s * cross + (1 - c) * (cross @ cross)


def so3_generators(l: int) -> Tensor:  # noqa: E741 (l is the order's name in every text on the subject)
    """Return the three real generators ``(3, 2l+1, 2l+1)`` of order ``l`` about x, y and z, in float64.

    Order 1 gives the Cartesian generators, ``exp(t·X[0])`` being the rotation by ``t`` about x. The
    complex generators and the real-to-complex change of basis are e3nn's, computed in complex128.
    """
    return _generators(_order(l)).clone()


def wigner_D(l: int, R: Tensor) -> Tensor:  # noqa: E741, N802, N803 (the names of the field)
    """Return the real Wigner D-matrices ``(..., 2l+1, 2l+1)`` of order ``l`` for rotations ``R`` ``(..., 3, 3)``.

    ``wigner_D(1, R)`` is ``R`` and ``wigner_D(0, R)`` is 1. ``R`` must be proper (det +1); for elements of
    O(3) use :func:`irrep_D`, which says how each parity sees an inversion.
    """
    return _harmonic_actions(_order(l), R)[-1]


def irrep_D(l: int, p: int, R: Tensor) -> Tensor:  # noqa: E741, N802, N803
    """Return the matrices ``(..., 2l+1, 2l+1)`` of the O(3) irrep ``(l, p)`` for ``R`` ``(..., 3, 3)`` in O(3).

    e3nn's convention: ``D_l(R)`` for a rotation, ``p · D_l(-R)`` for an improper ``R``. ``p`` is +1
    (even, ``"e"``) or -1 (odd, ``"o"``).
    """
    if p not in (1, -1):
        raise EquivarianceUsageError(f"An irrep's parity is {p!r}; give +1 (even, 'e') or -1 (odd, 'o').")
    return _signed(_harmonic_actions(_order(l), R)[-1], l, p, R)


def irreps_D(orders: list[tuple[int, int]], R: Tensor) -> list[Tensor]:
    """Return :func:`irrep_D` for each ``(l, p)`` in ``orders``, sharing the work of the common lower orders."""
    orders = [(_order(l), p) for l, p in orders]
    for _, p in orders:
        if p not in (1, -1):
            raise EquivarianceUsageError(f"An irrep's parity is {p!r}; give +1 (even, 'e') or -1 (odd, 'o').")
    actions = _harmonic_actions(max((l for l, _ in orders), default=0), R)
    return [_signed(actions[l], l, p, R) for l, p in orders]


def _order(l: object) -> int:  # noqa: E741
    if isinstance(l, bool) or not isinstance(l, int) or l < 0:
        raise EquivarianceUsageError(f"An irrep's order is {l!r}; give a whole number l >= 0.")
    return l


def _signed(action: Tensor, l: int, p: int, R: Tensor) -> Tensor:  # noqa: E741, N803
    """``action`` is ``det(R)^l D_l(det(R) R)`` (the harmonic polynomials' action); make it e3nn's ``(l, p)``."""
    import torch

    if p == (-1) ** l:
        return action  # the parity of degree-l polynomials: the action already has it
    det = torch.linalg.det(R).sign()
    return action * det[..., None, None]


def _harmonic_actions(lmax: int, R: Tensor) -> list[Tensor]:  # noqa: N803
    """Orders ``0..lmax`` of ``R``'s action on harmonic polynomials: ``D_l = Cᵀ (R ⊗ D_{l-1}) C``.

    For a rotation this is ``D_l(R)``; an inversion multiplies order ``l`` by ``(-1)^l``.
    """
    import torch

    R = torch.as_tensor(R)
    if R.shape[-2:] != (3, 3):
        raise EquivarianceUsageError(f"Rotation matrices have shape {tuple(R.shape)}; give (..., 3, 3).")
    R = R.to(torch.float64)
    actions = [torch.ones(*R.shape[:-2], 1, 1, dtype=torch.float64, device=R.device), R]
    for l in range(2, lmax + 1):  # noqa: E741
        C = _intertwiner(l).to(R.device)  # noqa: N806
        actions.append(torch.einsum("aim,...ab,...ij,bjn->...mn", C, R, actions[-1], C))
    return actions[: lmax + 1]


@functools.lru_cache(maxsize=None)
def _generators(l: int) -> Tensor:  # noqa: E741
    import torch

    m = torch.arange(-l, l, dtype=torch.float64)
    raising = torch.diag(-torch.sqrt(l * (l + 1) - m * (m + 1)), diagonal=-1)
    m = torch.arange(-l + 1, l + 1, dtype=torch.float64)
    lowering = torch.diag(torch.sqrt(l * (l + 1) - m * (m - 1)), diagonal=1)
    m = torch.arange(-l, l + 1, dtype=torch.float64)
    complex_generators = torch.stack([
        0.5 * (raising + lowering),
        torch.diag(1j * m),
        -0.5j * (raising - lowering),
    ]).to(torch.complex128)
    q = _real_to_complex(l)
    real = q.conj().T @ complex_generators @ q
    return real.real.contiguous()


def _real_to_complex(l: int) -> Tensor:  # noqa: E741
    """e3nn's change of basis from real to complex spherical harmonics (with its ``(-i)^l``, which makes CG real)."""
    import torch

    q = torch.zeros(2 * l + 1, 2 * l + 1, dtype=torch.complex128)
    r = 1 / math.sqrt(2)
    for m in range(-l, 0):
        q[l + m, l + abs(m)] = r
        q[l + m, l - abs(m)] = -1j * r
    q[l, l] = 1
    for m in range(1, l + 1):
        q[l + m, l + m] = (-1) ** m * r
        q[l + m, l - m] = 1j * (-1) ** m * r
    return (-1j) ** l * q


@functools.lru_cache(maxsize=None)
def _intertwiner(l: int) -> Tensor:  # noqa: E741
    """The isometry ``C`` ``(3, 2l-1, 2l+1)`` embedding order ``l`` into ``1 ⊗ (l-1)``, solved in float64.

    ``C`` satisfies ``(X₁ ⊗ 1 + 1 ⊗ X_{l-1}) C = C X_l`` for the three generators; its solutions form a
    line (order ``l`` occurs once in ``1 ⊗ (l-1)``), the null space of one stacked linear system.
    """
    import torch

    x1, x0, xl = _generators(1), _generators(l - 1), _generators(l)
    d0, dl = 2 * l - 1, 2 * l + 1
    i3, i0, il = (torch.eye(n, dtype=torch.float64) for n in (3, d0, dl))
    # vec(C) with C indexed (a, i, m), row-major: kron(A, B, D) acts as A on a, B on i, D on m.
    system = torch.cat([
        torch.kron(torch.kron(x1[k], i0), il) + torch.kron(torch.kron(i3, x0[k]), il)
        - torch.kron(torch.kron(i3, i0), xl[k].T.contiguous())
        for k in range(3)
    ])
    _, singular, vh = torch.linalg.svd(system)
    assert singular[-2] > 1e-3 and singular[-1] < 1e-10, "order l occurs exactly once in 1 ⊗ (l-1)"
    return (vh[-1] * math.sqrt(dl)).reshape(3, d0, dl).contiguous()
