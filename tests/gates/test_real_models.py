"""The gate on real (tiny) models and real checks: a model change that aliases more fails the run."""

from __future__ import annotations

import json

import pytest

import torch

# Load torch and the check modules once, here: pytester forgets what an in-process run imported,
# and torch refuses to register its operator libraries twice.
from pytest_equivariance.check.api import check_shift_invariant  # noqa: E402

check_shift_invariant(torch.nn.Conv2d(1, 1, 3), torch.zeros(1, 1, 8, 8), shift=(1, 1), localize=False)

INNER = '''
import pathlib
import pytest
import torch
from torch import nn

def build():
    # "exact": circular stride-1 conv then global pooling, exactly shift-invariant;
    # "strided": the same conv with stride 2, which aliases.
    stride = 2 if (pathlib.Path(__file__).parent / "variant.txt").read_text() == "strided" else 1
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=stride, padding=1, padding_mode="circular"),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()

# The check's own tolerance is loose: both variants pass it.
@pytest.mark.shift_invariant(input_shape=(2, 3, 16, 16), trials=3, atol=10.0)
def test_classifier():
    return build()

@pytest.mark.equiv_regression_tol(1e9)
@pytest.mark.shift_invariant(input_shape=(2, 3, 16, 16), trials=3, atol=10.0)
def test_tolerant_classifier():
    return build()

def test_fixture(equivariance):
    equivariance.check_shift_invariant(build(), input_shape=(1, 3, 12, 12), trials=2, atol=10.0)
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_net=INNER)
    (pytester.path / "variant.txt").write_text("exact")
    return pytester


def test_an_aliasing_change_fails_the_run_while_its_checks_pass(project, quiet_plugins):
    def run(*args):
        return project.runpytest(*quiet_plugins, "--equiv-baseline", "base.json", *args)

    assert run("--equiv-baseline-update").ret == 0
    assert run().ret == 0
    (project.path / "variant.txt").write_text("strided")
    result = run()
    result.assert_outcomes(passed=3)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*Robustness regressions against base.json*",
                                 "*test_net.py::test_classifier*worst_error*", "*#0 shift_invariant cpu/float32*"])
    regressed = result.stdout.str().split("Robustness regressions")[1].split("baseline base.json")[0]
    assert "test_tolerant_classifier" not in regressed  # its marker allows any change
    assert "test_fixture" in regressed  # the fixture's checks are gated too


def test_two_workers_give_the_same_figures_and_baseline_as_a_serial_run(project, quiet_plugins):
    (project.path / "variant.txt").write_text("strided")  # non-zero figures that depend on the seeds
    args = ("--equiv-baseline-update", "--equiv-seed", "7")
    assert project.runpytest(*quiet_plugins, "--equiv-baseline", "serial.json", "--equiv-json", "serial-out.json",
                             *args).ret == 0
    assert project.runpytest(*quiet_plugins, "-n", "2", "--equiv-baseline", "xdist.json", "--equiv-json",
                             "xdist-out.json", *args).ret == 0
    serial, xdist = (project.path / "serial.json").read_text(), (project.path / "xdist.json").read_text()
    assert serial == xdist
    assert json.loads(serial)["checks"][0]["figures"]["worst_error"] > 1e-3

    def checks(name):
        return sorted(json.loads((project.path / name).read_text())["checks"], key=lambda c: (c["test_id"], c["index"]))

    assert checks("serial-out.json") == checks("xdist-out.json")
