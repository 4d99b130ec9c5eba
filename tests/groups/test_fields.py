"""group= and fields on plain models: hand-built exact fields pass, wrong claims fail, bad layouts explain themselves."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pytest_equivariance as pe
from pytest_equivariance.check import fields, groups, libraries
from pytest_equivariance.check.result import CheckResult

# -- hand-built fields ---------------------------------------------------------------------------------


class Gradient(nn.Module):
    """Central-difference image gradient (u along W, v along H), circular padding: exactly D4-equivariant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = F.pad(x, (1, 1, 1, 1), mode="circular")
        return torch.cat([(p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2, (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2], 1)


def test_an_exact_vector_field_passes_as_vectors_and_fails_as_scalars() -> None:
    model = Gradient().eval()
    vectors = pe.check_rotation_equivariant(model, input_shape=(2, 1, 32, 32), group="D4", output_fields="vector")
    assert vectors.passed and vectors.worst_error == 0.0 and len(vectors.trials) == 7
    scalars = pe.check_rotation_equivariant(model, input_shape=(2, 1, 32, 32), group="D4")
    assert not scalars.passed


def test_sign_fields_flip_with_reflections() -> None:
    # The x-derivative alone is a sign field under the flips of D1 (mirror of W), scalar under none.
    model = nn.Sequential(Gradient()).eval()
    dx = lambda x: model(x)[:, :1]  # noqa: E731

    class Dx(nn.Module):
        def forward(self, x):
            return dx(x)

    assert pe.check_rotation_equivariant(Dx(), input_shape=(2, 1, 16, 16), group="D1", output_fields="sign").passed
    assert not pe.check_rotation_equivariant(Dx(), input_shape=(2, 1, 16, 16), group="D1").passed


def test_callable_fields_and_dict_outputs() -> None:
    class Two(nn.Module):
        def forward(self, x):
            return {"image": x, "flow": Gradient()(x)}

    def vector(element, y):
        return fields.Fields(groups.Group("C", 4), blocks=(fields.Block("vector", 2),)).act(element, y)

    result = pe.check_rotation_equivariant(
        Two(), input_shape=(2, 1, 16, 16), group="C4", output_fields={"flow": vector}
    )
    assert result.passed and set(result.fields) == {"input", "output['image']", "output['flow']"}
    assert not pe.check_rotation_equivariant(Two(), input_shape=(2, 1, 16, 16), group="C4").passed


def test_groups_with_flips_name_their_elements() -> None:
    labels = [e.label for e in groups.parse_group("D4").elements()]
    assert labels[:3] == ["rotation 90° (2π·1/4)", "rotation 180° (2π·2/4)", "rotation 270° (2π·3/4)"]
    assert labels[3] == "flip" and labels[4] == "rotation 90° (2π·1/4) ∘ flip"
    assert [e.label for e in groups.parse_group("C8").elements()][0] == "rotation 45° (2π·1/8)"


def test_results_carry_the_group_and_fields_through_json_and_into_the_baseline_key() -> None:
    from pytest_equivariance.gates.baseline import check_kind

    result = pe.check_rotation_equivariant(Gradient(), input_shape=(2, 1, 16, 16), group="D4", output_fields="vector")
    back = CheckResult.from_json(json.loads(json.dumps(result.to_json())))
    assert back.group == "D4" and back.fields == result.fields
    assert check_kind(result) == "rotation_equivariant[D4; input: 1 scalar; output: 1 vector]"
    plain = pe.check_rotation_equivariant(Gradient(), input_shape=(2, 1, 16, 16))
    assert check_kind(plain) == "rotation_equivariant"


def test_reports_name_the_group_fields_and_worst_element() -> None:
    from pytest_equivariance.report.html import check_card
    from pytest_equivariance.report.terminal import failure_report, headline
    from rich.console import Console

    result = pe.check_rotation_equivariant(Gradient(), input_shape=(2, 1, 16, 16), group="D4")
    console = Console(width=120, record=True)
    console.print(failure_report(result))
    text = console.export_text()
    assert "FAILED rotation_equivariant (D4, exact)" in text and "fields: input 1 scalar · output 2 scalar" in text
    assert "rotation 180° (2π·2/4)" in headline(result)
    html = check_card(result)
    assert "group D4, exact" in html and "output: 2 scalar" in html


# -- errors a user can cause -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(group="C4", output_fields="regular"), r"6 output channels cannot hold regular fields of C4 \(4 channels each\)"),
        (dict(group="C4", output_fields="spinor"), r"Unknown field 'spinor' in the output fields; use one of scalar, regular, vector, irrep\(k\), sign\."),
        (dict(group="C5x"), r"Unknown group 'C5x'; use 'C<N>'"),
        (dict(group="C1"), r"group='C1' is the trivial group: its one element is the identity, so there is nothing "
                           r"to check; drop group= \(pass angles= to choose the rotations\)"),
        (dict(group="SO2", output_fields="regular"), r"regular fields need a finite group, and SO2 is continuous"),
        (dict(group="C4", output_fields="sign"), r"sign fields change sign under reflections, which C4 does not have"),
        (dict(group="C4", output_fields=["vector", "vector"]), r"take 4 channels but the output has 6"),
        (dict(output_fields="vector"), r"need group=; pass e\.g\. group='C4'"),
        (dict(group="C4", angles=[90]), r"Both group and angles were given"),
        (dict(group="C8", mode="exact"), r"C8 has rotations that are not multiples of 90 degrees"),
    ],
)
def test_bad_groups_and_fields_are_usage_errors(kwargs: dict, message: str) -> None:
    model = nn.Conv2d(2, 6, 3, padding=1)
    with pytest.raises(pe.EquivarianceUsageError, match=message):
        pe.check_rotation_equivariant(model, input_shape=(1, 2, 16, 16), **kwargs)


def test_vector_fields_on_a_volume_are_a_usage_error() -> None:
    with pytest.raises(pe.EquivarianceUsageError, match="vector fields are 2-D vectors on an image plane, but the input has 3 spatial dims"):
        pe.check_rotation_equivariant(nn.Conv3d(2, 2, 1), input_shape=(1, 2, 8, 8, 8), dims=(-2, -1), group="C4",
                                      input_fields="vector")


def test_invariant_checks_refuse_output_fields() -> None:
    with pytest.raises(pe.EquivarianceUsageError, match="An invariant check's output must not change"):
        pe.check_rotation_invariant(nn.Conv2d(1, 2, 1), input_shape=(1, 1, 8, 8), group="C4", output_fields="vector")


