"""escnn models pass when passed directly; the same architectures as plain convolutions fail.

e2cnn's models are in test_e2cnn.py, so they need e2cnn only.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optional import require
import pytest_equivariance as pe
from pytest_equivariance.check import fields, groups, libraries
from pytest_equivariance.check.result import CheckResult
from pytest_equivariance.seeding import seeded

escnn = require("escnn")
from escnn import gspaces  # noqa: E402
from escnn import nn as enn  # noqa: E402


def escnn_net(gspace, hidden, out=None, nonlinear=True):
    """trivial input -> hidden fields -> (ReLU) -> hidden (or ``out``) fields, 5x5 filters."""
    with seeded(0):
        t_in = enn.FieldType(gspace, [gspace.trivial_repr])
        t_hidden = enn.FieldType(gspace, hidden)
        t_out = enn.FieldType(gspace, out) if out is not None else t_hidden
        layers = [enn.R2Conv(t_in, t_hidden, 5, padding=2)]
        if nonlinear:
            layers.append(enn.ReLU(t_hidden))
        layers.append(enn.R2Conv(t_hidden, t_out, 5, padding=2))
        return enn.SequentialModule(*layers).eval()


def plain_net(channels: int, out: int | None = None) -> nn.Module:
    """The same architecture with unconstrained nn.Conv2d filters."""
    with seeded(0):
        return nn.Sequential(
            nn.Conv2d(1, channels, 5, padding=2), nn.ReLU(), nn.Conv2d(channels, out or channels, 5, padding=2)
        ).eval()


def worst_rel_l2(result: CheckResult) -> float:
    return max(t.rel_l2 for t in result.trials)


@pytest.mark.parametrize("name, gspace", [
    ("C4", lambda: gspaces.rot2dOnR2(4)),
    ("D4", lambda: gspaces.flipRot2dOnR2(4)),
    ("C8", lambda: gspaces.rot2dOnR2(8)),
    ("C16", lambda: gspaces.rot2dOnR2(16)),
])
def test_regular_fields(name: str, gspace) -> None:
    gs = gspace()
    model = escnn_net(gs, 2 * [gs.regular_repr])
    result = pe.check_rotation_equivariant(model)
    order = gs.fibergroup.order()
    assert result.passed, result.trials
    assert result.group == name and len(result.trials) == order - 1
    assert result.fields == {"input": "1 irrep_0" if name.startswith("C") else "1 irrep_0,0", "output": "2 regular"}
    plain = pe.check_rotation_equivariant(
        plain_net(2 * order), input_shape=(4, 1, 33, 33), group=name, output_fields="regular"
    )
    assert not plain.passed
    if name in ("C8", "C16"):
        assert result.mode == "interp" and result.max_rel_l2 == pytest.approx(0.1)
        assert worst_rel_l2(plain) >= 10 * worst_rel_l2(result)
    else:
        assert result.mode == "exact" and result.worst_error < 1e-4


def test_c4_to_irrep1_output() -> None:
    gs = gspaces.rot2dOnR2(4)
    model = escnn_net(gs, 2 * [gs.regular_repr], out=2 * [gs.irrep(1)])
    result = pe.check_rotation_equivariant(model)
    assert result.passed and result.fields["output"] == "2 irrep_1"


def test_so2_with_irreps_zero_to_two() -> None:
    gs = gspaces.rot2dOnR2(-1, maximum_frequency=4)
    irreps = [gs.irrep(k) for k in (0, 1, 2)]
    model = escnn_net(gs, 2 * irreps, nonlinear=False)
    result = pe.check_rotation_equivariant(model)
    assert result.passed and result.group == "SO2" and len(result.trials) == len(groups.CONTINUOUS_SWEEP)
    plain = pe.check_rotation_equivariant(
        plain_net(10), input_shape=(4, 1, 33, 33), group="SO2",
        output_fields=["irrep(0)", "irrep(1)", "irrep(2)"] * 2,
    )
    assert not plain.passed and worst_rel_l2(plain) >= 10 * worst_rel_l2(result)
    drawn = pe.check_rotation_equivariant(model, trials=5)
    assert drawn.passed and len(drawn.trials) == 5


def test_plain_fields_match_escnn_conventions() -> None:
    # Our regular, irrep and sign layouts act exactly as escnn's own representations.
    x = torch.randn(2, 16, 9, 9)
    for gs, group in ((gspaces.rot2dOnR2(4), groups.Group("C", 4)), (gspaces.flipRot2dOnR2(4), groups.Group("D", 4))):
        order = gs.fibergroup.order()
        ours = fields.parse_fields("regular", group, 2 * order, where="output", ndim=4)
        theirs = enn.FieldType(gs, 2 * [gs.regular_repr])
        for element in group.elements():
            expected = enn.GeometricTensor(x[:, : 2 * order], theirs).transform(
                libraries.library_element(theirs, element)).tensor
            assert torch.allclose(ours.act(element, element.spatial(x[:, : 2 * order], (-2, -1))), expected, atol=1e-6)


def test_shift_checks_accept_escnn_modules() -> None:
    gs = gspaces.rot2dOnR2(4)
    with seeded(0):
        t_in = enn.FieldType(gs, [gs.trivial_repr])
        t_out = enn.FieldType(gs, 2 * [gs.regular_repr])
        model = enn.R2Conv(t_in, t_out, 5, padding=2, padding_mode="circular").eval()
    result = pe.check_shift_equivariant(model, input_shape=(2, 1, 32, 32))
    assert result.passed


def test_an_escnn_module_given_the_wrong_channels_is_a_usage_error() -> None:
    gs = gspaces.rot2dOnR2(4)
    model = escnn_net(gs, [gs.regular_repr])
    with pytest.raises(pe.EquivarianceUsageError, match=r"takes 1 input channels \(its in_type\), got inputs of shape \(4, 3, 33, 33\)"):
        pe.check_rotation_equivariant(model, input_shape=(4, 3, 33, 33))
    with pytest.raises(pe.EquivarianceUsageError, match="read from its in_type and out_type; drop input_fields"):
        pe.check_rotation_equivariant(model, output_fields="regular")
    with pytest.raises(pe.EquivarianceUsageError, match="is not an element of the model's group C4"):
        pe.check_rotation_equivariant(model, group="C8")
    with pytest.raises(pe.EquivarianceUsageError, match="checked over the elements of its group; drop angles="):
        pe.check_rotation_equivariant(model, angles=[90])


def test_a_subgroup_of_the_models_group() -> None:
    gs = gspaces.rot2dOnR2(8)
    model = escnn_net(gs, 2 * [gs.regular_repr])
    result = pe.check_rotation_equivariant(model, group="C4")
    assert result.passed and result.group == "C4" and result.mode == "exact" and len(result.trials) == 3
    assert result.worst_error < 1e-4  # quarter turns are exact for a C8 model too


def test_o2_with_irreps() -> None:
    gs = gspaces.flipRot2dOnR2(-1, maximum_frequency=4)
    model = escnn_net(gs, [gs.irrep(0, 0), gs.irrep(1, 0), gs.irrep(1, 1), gs.irrep(1, 2)], nonlinear=False)
    result = pe.check_rotation_equivariant(model)
    assert result.passed and result.group == "O2" and len(result.trials) == 2 * len(groups.CONTINUOUS_SWEEP) + 1


def test_a_plain_export_checked_with_the_field_type_or_its_name() -> None:
    # escnn exports its modules as plain nn.Conv2d layers: the fields must then be given.
    gs = gspaces.rot2dOnR2(4)
    model = escnn_net(gs, 2 * [gs.regular_repr])
    plain = model.export().eval()
    assert not libraries.is_equivariant_module(plain)
    for fields in (model.out_type, "regular"):
        result = pe.check_rotation_equivariant(plain, input_shape=(2, 1, 33, 33), group="C4", output_fields=fields)
        assert result.passed and result.fields["output"] == "2 regular"


def test_a_failing_escnn_model_is_localised_with_each_layers_own_fields() -> None:
    # A stride-2 pool on an odd grid moves the rotation centre off the sample grid: the only
    # layer that breaks C4 equivariance. The layers before it, judged with their regular fields, are exact.
    gs = gspaces.rot2dOnR2(4)
    with seeded(0):
        t_in = enn.FieldType(gs, [gs.trivial_repr])
        t_h = enn.FieldType(gs, 2 * [gs.regular_repr])
        model = enn.SequentialModule(
            enn.R2Conv(t_in, t_h, 5, padding=2), enn.ReLU(t_h), enn.PointwiseAvgPool2D(t_h, 2, stride=2),
            enn.R2Conv(t_h, t_h, 5, padding=2),
        ).eval()
    result = pe.check_rotation_equivariant(model)
    profile = result.profile
    assert not result.passed and profile is not None
    assert [layer.qualname for layer in profile.layers] == ["0", "1", "2", "3"]
    assert profile.culprit is not None and profile.culprit.qualname == "2" and profile.culprit.op == "PointwiseAvgPool2D"
    assert all(layer.error < 1e-5 for layer in profile.layers[:2])
    assert "its own field type" in profile.method


def test_escnns_own_check_fails_a_correct_c8_network_that_ours_passes() -> None:
    # escnn checks on white noise, elementwise: the 45-degree elements of a correct C8 network fail it.
    gs = gspaces.rot2dOnR2(8)
    model = escnn_net(gs, 2 * [gs.regular_repr])
    with seeded(0), pytest.raises(AssertionError, match="is too high"):
        model.check_equivariance()
    assert pe.check_rotation_equivariant(model).passed
