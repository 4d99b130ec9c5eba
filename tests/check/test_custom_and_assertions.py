"""Custom transform pairs, the assert_* twins and their plain-text report."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from check_models import circular_net, pooled_classifier, strided_net
from pytest_equivariance import assertions
from pytest_equivariance.check.api import check_equivariant, check_shift_invariant
from pytest_equivariance.check.result import LayerError, Profile
from pytest_equivariance.check.transforms import shift
from pytest_equivariance.report.text import format_result

SHAPE = (2, 3, 16, 16)


def flip_w(x):
    return x.flip(-1)


def test_custom_pairs_check_any_group():
    # Negation: a linear model without bias is odd, model(-x) == -model(x).
    model = nn.Conv2d(3, 2, 3, padding=1, bias=False)
    x = torch.randn(SHAPE)
    result = check_equivariant(model, x, [(torch.neg, torch.neg)])
    assert result.passed and result.kind == "custom"
    assert [t.transform for t in result.trials] == ["neg"]
    biased = check_equivariant(nn.Conv2d(3, 2, 3, padding=1), x, [(torch.neg, torch.neg)], localize=False)
    assert not biased.passed


def test_custom_invariance_pair_and_transform_objects():
    model = pooled_classifier()
    x = torch.randn(SHAPE)
    result = check_equivariant(model, x, [(lambda t: t.roll(3, -1), None), (shift((1, 1), (-2, -1)).on_input, None)])
    assert result.passed
    assert result.trials[0].consistency == 1.0  # invariance of class scores: consistency measured
    assert [t.transform for t in result.trials] == ["custom #0", "shift (dy=+1, dx=+1)"]
    objects = check_equivariant(circular_net(), x, [shift((1, 1), (-2, -1)), shift((0, 3), (-2, -1))])
    assert objects.passed and objects.trials[1].transform == "shift (dy=+0, dx=+3)"


def test_custom_mismatched_output_transform_fails():
    result = check_equivariant(circular_net(), torch.randn(SHAPE), [(flip_w, None)], localize=False)
    assert not result.passed


def test_assert_passes_and_returns_the_result():
    result = assertions.assert_shift_equivariant(circular_net(), input_shape=SHAPE, trials=2)
    assert result.passed and len(result.trials) == 2


def test_assert_raises_with_the_report():
    with pytest.raises(AssertionError) as info:
        assertions.assert_shift_invariant(
            pooled_classifier(aliasing=True), input_shape=SHAPE, shifts=[(0, 1), (0, 2)], seed=3, localize=False
        )
    text = str(info.value)
    assert text.startswith("shift invariance FAILED: 1 of 2 trials failed (circular, dims (-2, -1), float32, cpu)")
    assert "worst transform: shift (dy=+0, dx=+1)" in text
    assert "tolerance: |a - b| <= 1.0e-05 + 1.0e-04·|b|" in text
    assert "seed 3" in text
    assert "top-1 consistency" in text


@pytest.mark.parametrize(
    "name", ["assert_shift_equivariant", "assert_shift_invariant", "assert_rotation_equivariant",
             "assert_rotation_invariant", "assert_equivariant", "assert_lint_clean", "raise_for_result"]
)
def test_assertions_hide_their_frames_from_pytest_tracebacks(name):
    assert getattr(assertions, name).__code__.co_varnames  # exists
    assert "__tracebackhide__" in getattr(assertions, name).__code__.co_varnames


def test_assert_rotation_twins():
    from check_models import c4_net

    assertions.assert_rotation_equivariant(c4_net(), input_shape=SHAPE)
    assertions.assert_rotation_invariant(c4_net(head=True), input_shape=SHAPE, angle=90)
    with pytest.raises(AssertionError, match="rotation equivariance FAILED"):
        assertions.assert_rotation_equivariant(c4_net(symmetric=False), input_shape=SHAPE, localize=False)


def test_assert_equivariant_twin():
    with pytest.raises(AssertionError, match="custom equivariance FAILED"):
        assertions.assert_equivariant(circular_net(), torch.randn(SHAPE), [(flip_w, None)], localize=False)


def test_report_lists_worst_trials_notes_lattice_and_culprit():
    result = check_shift_invariant(pooled_classifier(aliasing=True), input_shape=SHAPE, trials=8, localize=False)
    result.notes.append("a note")
    result.profile = Profile(
        layers=[LayerError("2", "MaxPool2d", 0.3, 1e-7, {"stride": 2})],
        culprit=LayerError("2", "MaxPool2d", 0.3, 1e-7, {"stride": 2}),
        finding_code="EQ001",
        finding_fix="MaxBlurPool2d(kernel_size=2, stride=2)",
    )
    result.reproduce = "pytest 'tests/x.py::test' --equiv-seed 0"
    text = format_result(result, trials=3)
    assert "worst 3 of 8 trials:" in text
    assert text.count("FAIL\n") + text.endswith("FAIL") >= 1
    assert "note: a note" in text
    assert "reproduce: pytest 'tests/x.py::test' --equiv-seed 0" in text
    lines = text.splitlines()
    assert "equivariance first breaks at 2: MaxPool2d(stride=2)" in lines  # the culprit's name is "2"
    assert "EQ001: MaxBlurPool2d(kernel_size=2, stride=2)" in lines
    lattice = format_result(assertions_result_on_lattice())
    assert "stride lattice (2, 2)" in lattice and lattice.startswith("shift equivariance passed")


def assertions_result_on_lattice():
    from pytest_equivariance.check.api import check_shift_equivariant

    return check_shift_equivariant(strided_net(), input_shape=SHAPE, trials=2)


def test_plain_and_rich_reports_lead_with_the_same_trial():
    from pytest_equivariance.check.result import CheckResult, Trial
    from pytest_equivariance.report import terminal

    def trial(label, max_abs, consistency, passed):
        return Trial(label, {}, max_abs, max_abs, 0.1, 0.1, passed, consistency=consistency, prob_change=0.1)

    # The largest error is not the lowest consistency: with min_consistency, consistency decides.
    trials = [trial("shift A", 0.9, 0.75, True), trial("shift B", 0.2, 0.25, False)]
    common = dict(kind="shift_invariant", trials=trials, atol=1e-5, rtol=1e-4, seed=0, device="cpu",
                  dtype="float32", mode="circular", dims=(-2, -1), input_shape=(4, 3, 8, 8))
    judged = CheckResult(passed=False, min_consistency=0.9, **common)
    assert "worst transform: shift B" in format_result(judged)
    assert "under shift B" in terminal.headline(judged)
    # Without it, a failing trial comes before a larger error that passed.
    plain = CheckResult(passed=False, **common)
    assert "worst transform: shift B" in format_result(plain)
    assert "under shift B" in terminal.headline(plain)


def test_assert_lint_clean_lists_findings():
    with pytest.raises(AssertionError, match="EQ001"):
        assertions.assert_lint_clean(pooled_classifier(aliasing=True), (1, 3, 16, 16))
    assertions.assert_lint_clean(circular_net(), (1, 3, 16, 16))
