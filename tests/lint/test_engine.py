"""The engine: rule selection, per-module ignores, the public lint API and its report."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pytest_equivariance
from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.lint import lint, lint_model
from pytest_equivariance.lint.engine import select_rules
from pytest_equivariance.lint.findings import Finding, ModelReport, Severity


class Mixed(nn.Module):
    """One site for most rules."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)  # EQ001, EQ010
        self.down = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1))  # EQ002, EQ010
        self.avg = nn.AvgPool2d(3, stride=2, padding=1)  # EQ003, EQ010
        self.up = nn.ConvTranspose2d(4, 4, 3, stride=2)  # EQ007
        self.even = nn.Conv2d(4, 4, 2)  # EQ011

    def forward(self, x):
        x = self.avg(self.down(self.pool(x)))
        x = F.interpolate(x, scale_factor=0.5)  # EQ004
        x = F.pixel_unshuffle(self.even(self.up(x)), 2)  # EQ006
        return x[..., ::2]  # EQ005


SHAPE = (1, 4, 64, 64)


def codes(**options) -> list[str]:
    return sorted({f.code for f in lint(Mixed(), SHAPE, **options)})


def test_default_selection_runs_every_rule_but_eq010():
    assert codes() == ["EQ001", "EQ002", "EQ003", "EQ004", "EQ005", "EQ006", "EQ007", "EQ011"]
    assert [r.code for r in select_rules()] == [f"EQ{i:03d}" for i in range(1, 12) if i != 10]


def test_select_and_ignore_take_codes_and_prefixes():
    assert codes(select=["EQ001", "EQ004"]) == ["EQ001", "EQ004"]
    assert codes(select=["EQ01"]) == ["EQ010", "EQ011"]  # selecting enables off-by-default rules
    assert codes(select=["ALL"], ignore=["EQ00"]) == ["EQ010", "EQ011"]
    assert codes(ignore=["EQ002", "EQ011"]) == ["EQ001", "EQ003", "EQ004", "EQ005", "EQ006", "EQ007"]
    assert codes(select=["eq001"]) == ["EQ001"]


@pytest.mark.parametrize(
    "options", [{"select": ["EQ999"]}, {"ignore": ["EQ1"]}, {"select": "EQ001"}, {"select": ["X"]}]
)
def test_unknown_codes_are_usage_errors_with_a_remedy(options):
    with pytest.raises(EquivarianceUsageError) as info:
        lint(Mixed(), SHAPE, **options)
    assert str(info.value).endswith(".")


def test_per_module_ignores_match_qualname_globs():
    report = lint_model(Mixed(), SHAPE, per_module_ignores={"down.*": ["EQ002"], "pool": ["EQ0"]})
    assert ("EQ002", "down.0") not in {(f.code, f.qualname) for f in report.findings}
    assert not [f for f in report.findings if f.qualname == "pool"]
    assert "EQ001" not in {f.code for f in report.findings}
    everything = lint_model(Mixed(), SHAPE, per_module_ignores={"*": ["ALL"]})
    assert everything.findings == []
    with pytest.raises(EquivarianceUsageError):
        lint_model(Mixed(), SHAPE, per_module_ignores={"pool": ["EQ404"]})


def test_findings_carry_the_stable_fields():
    [finding] = lint(Mixed(), SHAPE, select=["EQ002"])
    assert isinstance(finding, Finding)
    assert finding.code == "EQ002" and finding.severity is Severity.ERROR
    assert finding.qualname == "down.0" and finding.op == "nn.Conv2d" and finding.kind == "module"
    assert finding.file == __file__ and finding.line is not None
    assert "stride=2" in finding.message and "AntialiasedConv2d(" in finding.fix
    assert finding.params["stride"] == (2, 2) and finding.params["in_channels"] == 4
    data = json.loads(json.dumps(finding.to_json()))
    assert data["severity"] == "error" and data["params"]["stride"] == [2, 2]


def test_lint_model_report_and_json():
    report = lint_model(Mixed(), SHAPE, target="tests::Mixed")
    assert isinstance(report, ModelReport)
    assert (report.target, report.trace, report.coverage, report.input_shape) == ("tests::Mixed", "fx", 1.0, SHAPE)
    data = json.loads(json.dumps(report.to_json()))
    assert data["trace"] == "fx" and data["input_shape"] == list(SHAPE)
    assert {f["code"] for f in data["findings"]} >= {"EQ001", "EQ005"}


def test_public_api_is_callable_as_documented():
    found = pytest_equivariance.lint(Mixed(), SHAPE, select=["EQ001"])
    assert [f.code for f in found] == ["EQ001"]
    assert pytest_equivariance.lint_model is lint_model


def test_input_shape_is_inferred_when_not_given():
    report = lint_model(nn.Sequential(nn.Conv1d(2, 4, 3, stride=2)))
    assert report.input_shape == (1, 2, 1024)
    assert [f.code for f in report.findings] == ["EQ002"]


def test_a_model_without_conv_or_linear_needs_a_shape_and_says_so():
    report = lint_model(nn.Sequential(nn.MaxPool2d(2)))
    assert report.errors and "input shape" in report.errors[0].lower()
    assert [f.code for f in report.findings if f.code == "EQ001"] == ["EQ001"]  # still scanned


def test_not_a_module_is_a_usage_error():
    with pytest.raises(EquivarianceUsageError, match="nn.Module"):
        lint(lambda x: x, (1, 3, 8, 8))


def test_severities_order_for_fail_levels():
    found = lint(Mixed(), SHAPE)
    assert {f.severity for f in found} == {Severity.ERROR, Severity.WARNING, Severity.INFO}
    assert all(f.severity.rank >= Severity.WARNING.rank for f in found if f.code not in ("EQ010", "EQ011"))


def test_real_inputs_are_never_run():
    class Spy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, stride=2)
            self.devices: list[str] = []

        def forward(self, x):
            if isinstance(x, torch.Tensor):  # fx traces with proxies first
                self.devices.append(x.device.type)
            return self.conv(x)

    spy = Spy()
    lint(spy, torch.randn(1, 3, 16, 16))
    assert spy.devices == [] or set(spy.devices) == {"meta"}
