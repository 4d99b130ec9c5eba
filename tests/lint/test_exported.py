"""The linter reads an exported model's ATen graph: the same codes and counts as its eager source, at file:line."""

import collections

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_equivariance import lint_model
from pytest_equivariance.lint.ops import aten_ops, function_table


class EveryDownsampler(nn.Module):
    """One of each op family the rules read, as layers and as functional calls."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.box = nn.AvgPool2d(2)
        self.fold = nn.PixelUnshuffle(2)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = x[:, :, ::2, ::2]
        x = F.interpolate(x, scale_factor=0.5, mode="nearest")
        x = F.max_pool2d(x, 2)
        x = self.fold(x)[:, :8]
        x = self.box(self.up(x))
        return self.head(x.mean((2, 3)))


X = torch.randn(1, 3, 128, 128)


@pytest.fixture(scope="module")
def program():
    return torch.export.export(EveryDownsampler().eval(), (X,))


def codes(report) -> collections.Counter:
    return collections.Counter(f.code for f in report.findings)


@pytest.mark.parametrize("form", ["program", "module"])
def test_an_exported_model_gets_its_eager_findings(program, form):
    eager = lint_model(EveryDownsampler(), X, select=["EQ"])
    exported = lint_model(program if form == "program" else program.module(), X, select=["EQ"])
    assert eager.trace == "fx" and exported.trace == "export"
    assert codes(exported) == codes(eager)
    assert {"EQ001", "EQ002", "EQ003", "EQ004", "EQ005", "EQ006"} <= set(codes(exported))
    # Layers read as the same nn.* op; functional calls show their ATen name (aten.max_pool2d).
    assert sorted((f.code, f.qualname, f.op if f.qualname else "") for f in exported.findings) == \
        sorted((f.code, f.qualname, f.op if f.qualname else "") for f in eager.findings)


def test_exported_findings_carry_the_line_that_called_the_op(program):
    report = lint_model(program, select=["EQ"])
    source = open(__file__).read().splitlines()
    called = {(f.code, f.qualname): source[f.line - 1] for f in report.findings if f.file == __file__}
    assert "self.pool(self.stem(x))" in called["EQ001", "pool"]
    assert "F.max_pool2d(x, 2)" in called["EQ001", ""]
    assert "x[:, :, ::2, ::2]" in called["EQ005", ""]
    assert "F.interpolate" in called["EQ004", ""]


def test_aten_ops_have_their_canonical_parameters(program):
    report = lint_model(program, select=["EQ"])
    found = {(f.code, f.qualname): f for f in report.findings}
    assert found["EQ002", "stem"].op == "nn.Conv2d" and found["EQ002", "stem"].params["stride"] == (2, 2)
    assert found["EQ001", "pool"].params["kernel_size"] == (2, 2)
    assert found["EQ004", ""].params["mode"] == "nearest"
    assert found["EQ006", "fold"].params["downscale_factor"] == 2
    assert "x[:, :, ::2]" in found["EQ005", ""].message


def test_every_aten_op_of_the_table_is_a_known_family():
    table = function_table()
    for name, (family, _) in aten_ops().items():
        packet = getattr(torch.ops.aten, name, None)
        if packet is not None:
            assert table[packet.default if "default" in packet.overloads() else
                         getattr(packet, packet.overloads()[0])][0] == family


def test_an_exactly_equivariant_exported_model_has_no_finding():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), nn.ReLU()).eval()
    report = lint_model(torch.export.export(model, (X,)), select=["EQ"])
    assert report.findings == [] and report.errors == []
