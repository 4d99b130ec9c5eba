"""escnn's 3-D models: octaOnR3 and rot3dOnR3 networks pass with their own field types, the same
architectures as plain convolutions fail, and our 3-D convention is escnn's own action.

Models are tiny (a few fields, 9³–15³ volumes) and built once per module: escnn's 3-D layers are
slow to build.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optional import require
import pytest_equivariance as pe
from pytest_equivariance.check import fields, groups, libraries, volume_groups
from pytest_equivariance.seeding import seeded

escnn = require("escnn")
from escnn import gspaces  # noqa: E402
from escnn import nn as enn  # noqa: E402

VOLUME = (-3, -2, -1)


@pytest.fixture(scope="module")
def octa():
    """trivial -> 2 regular fields of O -> ReLU -> 1 regular field, 3³ filters."""
    with seeded(0):
        g = gspaces.octaOnR3()
        t_in, t_mid = enn.FieldType(g, [g.trivial_repr]), enn.FieldType(g, [g.regular_repr] * 2)
        t_out = enn.FieldType(g, [g.regular_repr])
        return enn.SequentialModule(enn.R3Conv(t_in, t_mid, 3, padding=1), enn.ReLU(t_mid),
                                    enn.R3Conv(t_mid, t_out, 3, padding=1)).eval()


@pytest.fixture(scope="module")
def so3():
    """trivial -> irreps 0, 1, 2 of SO(3) -> norm nonlinearity -> irreps 0, 1, 5³ filters."""
    with seeded(0):
        g = gspaces.rot3dOnR3(maximum_frequency=2)
        t_in = enn.FieldType(g, [g.trivial_repr])
        t_mid = enn.FieldType(g, [g.irrep(0), g.irrep(1), g.irrep(2)])
        t_out = enn.FieldType(g, [g.irrep(0), g.irrep(1)])
        return enn.SequentialModule(enn.R3Conv(t_in, t_mid, 5, padding=2), enn.NormNonLinearity(t_mid),
                                    enn.R3Conv(t_mid, t_out, 5, padding=2)).eval()


def plain(channels: int, out: int, kernel: int) -> nn.Module:
    with seeded(0):
        return nn.Sequential(nn.Conv3d(1, channels, kernel, padding=kernel // 2), nn.ReLU(),
                             nn.Conv3d(channels, out, kernel, padding=kernel // 2))


def test_our_3d_convention_is_escnns_own_action() -> None:
    """Every element of Oh moves a scalar volume as escnn's ``GeometricTensor.transform`` does, and
    ``irrep(1)`` fields (e3nn's x, y, z) turn as escnn's standard representation of O(3)."""
    g = gspaces.fullOctaOnR3()
    scalar = enn.FieldType(g, [g.trivial_repr])
    x = torch.randn(1, 1, 5, 6, 7)
    for e in volume_groups.cube_elements(True):
        theirs = enn.GeometricTensor(x, scalar).transform(libraries.library_element(scalar, e)).tensor
        assert torch.equal(theirs, e.spatial(x, VOLUME)), e.label
    o3 = gspaces.flipRot3dOnR3()
    standard = enn.FieldType(o3, [o3.fibergroup.standard_representation()])
    ours = fields.parse_fields("irrep(1)", groups.Group("O3"), 3, where="output", ndim=5)
    y = torch.randn(1, 3, 5, 5, 5)
    for e in volume_groups.cube_elements(True):
        theirs = enn.GeometricTensor(y, standard).transform(libraries.library_element(standard, e)).tensor
        assert torch.allclose(theirs, ours.act(e, e.spatial(y, VOLUME)), atol=1e-6), e.label


def test_an_octahedral_network_passes_with_its_field_types_and_plain_convolutions_fail(octa) -> None:
    result = pe.check_rotation_equivariant(octa, input_shape=(2, 1, 9, 9, 9))
    assert result.passed and result.group == "O" and result.mode == "exact" and len(result.trials) == 23
    assert max(t.max_abs for t in result.trials) < 1e-4
    assert result.fields == {"input": "1 irrep_0", "output": "1 regular"}
    claimed = pe.check_rotation_equivariant(plain(48, 24, 3), input_shape=(2, 1, 9, 9, 9), group="O",
                                            input_fields=octa.in_type, output_fields=octa.out_type, localize=False)
    assert not claimed.passed and min(t.rel_l2 for t in claimed.trials) > 0.3


def test_a_rot3d_network_passes_every_element_with_exact_and_resampled_ones_apart(so3) -> None:
    result = pe.check_rotation_equivariant(so3, input_shape=(2, 1, 15, 15, 15))
    assert result.passed and result.group == "SO3" and result.mode == "interp"
    exact = [t for t in result.trials if t.params["exact"]]
    resampled = [t for t in result.trials if not t.params["exact"]]
    assert len(exact) == 23 and len(resampled) == volume_groups.DEFAULT_DRAWS
    assert max(t.rel_l2 for t in exact) < 1e-5 and max(t.rel_l2 for t in resampled) < 0.05
    assert any(n.startswith("exact elements (23") for n in result.notes)
    claimed = pe.check_rotation_equivariant(plain(9, 4, 5), input_shape=(2, 1, 15, 15, 15), group="SO3", trials=2,
                                            input_fields=so3.in_type, output_fields=so3.out_type, localize=False)
    assert not claimed.passed and min(t.rel_l2 for t in claimed.trials) > 0.3


def test_a_subgroup_is_checked_and_elements_outside_the_model_group_are_refused(so3, octa) -> None:
    cube = pe.check_rotation_equivariant(so3, input_shape=(2, 1, 15, 15, 15), group="O")
    assert cube.passed and len(cube.trials) == 23 and max(t.rel_l2 for t in cube.trials) < 1e-5
    with pytest.raises(pe.EquivarianceUsageError, match="holds the cube's rotations only"):
        pe.check_rotation_equivariant(octa, input_shape=(2, 1, 9, 9, 9), group="SO3")


def test_the_escnn_layer_that_breaks_it_is_named(octa) -> None:
    """A stride-2 R3Conv on an even grid samples a lattice the cube's rotations do not keep."""
    with seeded(0):
        t_mid = octa.out_type
        strided = enn.SequentialModule(octa, enn.R3Conv(t_mid, t_mid, 3, stride=2, padding=1)).eval()
    result = pe.check_rotation_equivariant(strided, input_shape=(2, 1, 10, 10, 10))
    assert not result.passed
    assert result.profile.culprit is not None and result.profile.culprit.op == "R3Conv"
    assert result.profile.culprit.qualname == "1"
