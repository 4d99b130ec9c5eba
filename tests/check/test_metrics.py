"""Error figures, the allclose pass rule, tolerances and classifier consistency."""

from __future__ import annotations

import math

import pytest
import torch

from pytest_equivariance.check.metrics import (
    INTERP_TOLERANCE,
    TOLERANCES,
    compare,
    default_tolerances,
    is_classifier_output,
    psnr,
    worst,
)


def test_figures_on_a_known_difference():
    b = torch.tensor([[3.0, 4.0]])
    a = torch.tensor([[3.0, 5.0]])
    c = compare(a, b, atol=0.0, rtol=0.0)
    assert c.max_abs == 1.0 and c.mean_abs == 0.5
    assert c.rel_l2 == pytest.approx(1 / 5)
    assert c.cosine == pytest.approx(1 - (9 + 20) / (5 * math.sqrt(34)))
    assert not c.passed


def test_pass_rule_is_allclose():
    b = torch.tensor([10.0, -10.0, 0.0])
    a = b + torch.tensor([1.0, -1.0, 0.5])
    assert compare(a, b, atol=0.5, rtol=0.05).passed  # 1 <= 0.5 + 0.05*10, 0.5 <= 0.5
    assert not compare(a, b, atol=0.49, rtol=0.05).passed
    assert compare(a, b, atol=0.5, rtol=0.05).passed == torch.allclose(a, b, atol=0.5, rtol=0.05)


def test_mask_excludes_elements():
    b = torch.zeros(1, 1, 2, 2)
    a = b.clone()
    a[..., 0, 0] = 100.0
    mask = torch.tensor([[False, True], [True, True]]).view(1, 1, 2, 2)
    c = compare(a, b, atol=1e-6, rtol=0.0, mask=mask)
    assert c.passed and c.max_abs == 0.0


def test_mean_abs_averages_over_the_masked_elements_only():
    b = torch.zeros(1, 1, 2, 2)
    a = torch.tensor([[1.0, 3.0], [100.0, 5.0]]).view(1, 1, 2, 2)
    mask = torch.tensor([[True, True], [False, False]]).view(1, 1, 2, 2)
    c = compare(a, b, atol=0.0, rtol=0.0, mask=mask)
    assert c.max_abs == 3.0 and c.mean_abs == 2.0  # (1 + 3) / 2: the masked-out 100 and 5 count nowhere
    assert compare(a, b, atol=0.0, rtol=0.0).mean_abs == 27.25  # unmasked: (1 + 3 + 100 + 5) / 4


def test_tolerances_loosen_with_precision():
    order = ["float64", "float32", "float16", "bfloat16"]
    atols = [TOLERANCES[k][0] for k in order]
    rtols = [TOLERANCES[k][1] for k in order]
    assert atols == sorted(atols) and rtols == sorted(rtols)
    assert default_tolerances(torch.float64) == TOLERANCES["float64"]
    assert default_tolerances("torch.float16") == TOLERANCES["float16"]
    assert default_tolerances(torch.float32, "interp")[0] > TOLERANCES["float32"][0]
    # interp raises each tolerance to its floor, never lowers one; unknown dtypes get float32's.
    assert default_tolerances(torch.float32, "interp") == INTERP_TOLERANCE == (0.05, 0.05)
    assert default_tolerances(torch.float64, "interp") == INTERP_TOLERANCE
    assert default_tolerances("int8") == TOLERANCES["float32"]


def test_psnr_of_known_errors():
    assert psnr(1.0, 1, 10.0) == 20.0  # 10·log10(10² / 1)
    assert psnr(4.0, 1, 2.0) == 0.0  # MSE 4 = peak²
    assert psnr(1.0, 1, 2.0) == pytest.approx(10 * math.log10(4))
    assert psnr(4.0, 4, 2.0) == pytest.approx(10 * math.log10(4))  # MSE is the mean over count
    assert psnr(1.0, 0, 2.0) == pytest.approx(10 * math.log10(4))  # no element counted: one
    assert psnr(0.0, 5, 2.0) == math.inf  # identical outputs
    assert psnr(1.0, 1, 0.0) == -math.inf  # a constant reference: no range to measure against


def test_class_scores_are_batch_by_classes_of_floats():
    assert is_classifier_output(torch.zeros(1, 3))  # one image, three classes
    assert is_classifier_output(torch.zeros(4, 2))
    assert not is_classifier_output(torch.zeros(4, 1))  # one score is not a choice of class
    assert not is_classifier_output(torch.zeros(4, 3, 2))
    assert not is_classifier_output(torch.zeros(4, 3, dtype=torch.long))
    scores = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert compare(scores.flip(1), scores, atol=0, rtol=0).consistency is None  # only when asked: classifier=True


def test_classifier_consistency_and_probability_change():
    b = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]])
    a = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 1.0], [0.0, 1.0]])
    c = compare(a, b, atol=0.0, rtol=0.0, classifier=True)
    assert c.consistency == 0.75
    p_top = torch.softmax(torch.tensor([1.0, 0.0]), 0)[0].item()
    assert c.prob_change == pytest.approx(abs(p_top - (1 - p_top)) / 4)
    assert not c.passed
    assert compare(a, b, atol=0.0, rtol=0.0, classifier=True, min_consistency=0.75).passed
    assert not compare(a, b, atol=0.0, rtol=0.0, classifier=True, min_consistency=0.8).passed


def test_consistency_only_for_class_scores():
    x = torch.randn(2, 3, 4, 4)
    assert compare(x, x, atol=0, rtol=0, classifier=True).consistency is None


def test_figures_are_computed_in_float64_for_half_precision():
    b = torch.full((4,), 1000.0, dtype=torch.float16)
    a = b + 1
    c = compare(a, b, atol=0.0, rtol=0.0)
    assert c.max_abs == 1.0 and c.rel_l2 == pytest.approx(1 / 1000)


def test_worst_is_furthest_from_passing():
    small = compare(torch.ones(2), torch.zeros(2), atol=1.0, rtol=0.0, leaf="[0]")
    large = compare(torch.ones(2) * 3, torch.zeros(2), atol=1.0, rtol=0.0, leaf="[1]")
    assert worst([small, large]).leaf == "[1]"


def test_relative_error_against_a_zero_or_small_reference():
    zero = torch.zeros(2)
    assert compare(zero, zero, atol=0, rtol=0).rel_l2 == 0.0
    assert compare(torch.ones(2), zero, atol=0, rtol=0).rel_l2 == math.inf
    small = torch.tensor([0.3, 0.4])  # norm 0.5: small, but a reference all the same
    assert compare(small + torch.tensor([0.0, 0.25]), small, atol=0, rtol=0).rel_l2 == pytest.approx(0.5)


def test_the_exact_rule_and_the_relative_rule():
    x = torch.tensor([2.0, -1.0])
    assert compare(x, x, atol=0, rtol=0).passed  # identical passes the exact rule
    assert not compare(x + 1e-6, x, atol=0, rtol=0).passed
    b = torch.tensor([10.0])
    assert compare(torch.tensor([10.5]), b, atol=0, rtol=0.1).passed  # 0.5 <= 0.1·10: rtol alone
    assert not compare(torch.tensor([11.5]), b, atol=0, rtol=0.1).passed
    assert not compare(torch.tensor([1.0]), torch.tensor([0.0]), atol=0.5, rtol=0).passed  # one element is judged


def test_empty_and_fully_masked_outputs_compare_as_equal():
    empty = compare(torch.zeros(2, 0), torch.zeros(2, 0), atol=0, rtol=0)  # a leaf with no features
    assert empty.passed and empty.max_abs == 0.0 and empty.mean_abs == 0.0
    assert compare(torch.zeros(2, 0), torch.zeros(2, 0), atol=1e-5, rtol=1e-4).passed  # the allclose rule too
    b = torch.zeros(1, 1, 2, 2)
    none = compare(b + 1, b, atol=0, rtol=0, mask=torch.zeros(1, 1, 2, 2, dtype=torch.bool))
    assert none.passed and none.mean_abs == 0.0


def test_psnr_under_a_mask_takes_the_peak_inside_it():
    b = torch.tensor([[1.0, 3.0], [-100.0, 5.0]]).view(1, 1, 2, 2)
    a = b + torch.tensor([[1.0, 1.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    mask = torch.tensor([[True, True], [False, False]]).view(1, 1, 2, 2)
    # Inside: squared errors 1 + 1 over 2 elements, peak 3 - 1 = 2: 10·log10(4 / 1).
    assert compare(a, b, atol=0, rtol=0, mask=mask).psnr == pytest.approx(10 * math.log10(4))
    assert psnr(0.01, 1, 1.0) == pytest.approx(20.0)  # a peak below 1 is still a peak


def test_cosine_distance_of_scalars_and_zero_rows():
    one = torch.tensor(1.0)
    assert compare(one, one, atol=0, rtol=0).cosine == 0.0  # a 0-d output is a batch of one
    assert compare(-one, one, atol=0, rtol=0).cosine == 2.0
    rows = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert compare(rows, rows, atol=0, rtol=0).cosine == 0.0  # a zero row equal to its reference: distance 0
    other = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert compare(other, rows, atol=0, rtol=0).cosine == 0.5  # (0 + 1) / 2



def test_worst_by_consistency_is_the_least_consistent():
    b = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]])
    three = compare(torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 1.0], [0.0, 1.0]]), b, atol=0, rtol=0,
                    classifier=True, leaf="[0]")  # consistency 0.75
    two = compare(torch.tensor([[0.0, 2.0], [0.0, 2.0], [0.0, 1.0], [0.0, 1.0]]), b, atol=0, rtol=0,
                  classifier=True, leaf="[1]")  # consistency 0.5
    features = compare(torch.ones(4, 2, 3), torch.zeros(4, 2, 3), atol=0, rtol=0, leaf="[2]")  # no consistency: 1.0
    assert (three.consistency, two.consistency, features.consistency) == (0.75, 0.5, None)
    assert worst([three, two, features], by_consistency=True).leaf == "[1]"
    assert worst([features, three], by_consistency=True).leaf == "[0]"
