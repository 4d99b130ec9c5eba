"""Data sets as inputs: a stream of batches gives the figures of its concatenation, read once.

Every check, ``lie_derivative`` and ``attribute`` take a DataLoader (or any iterable of batches)
where they take a tensor. The figures are sums and counts aggregated over batches, so they equal
those of one concatenated tensor to float rounding; labels add accuracy figures, which equal a
hand-written loop's.
"""

from __future__ import annotations

import math

import pytest
import torch
from check_models import circular_net, pooled_classifier, strided_net
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from trained_classifier import CROP, validation

from pytest_equivariance import (
    Batches,
    EquivarianceUsageError,
    attribute,
    check_rotation_invariant,
    check_shift_equivariant,
    check_shift_invariant,
    lie_derivative,
)
from pytest_equivariance.inputs import natural_images

FIGURES = ("max_abs", "mean_abs", "rel_l2", "cosine", "psnr", "consistency", "prob_change", "accuracy")


def same_figures(streamed, whole):
    assert streamed.passed == whole.passed
    assert [t.transform for t in streamed.trials] == [t.transform for t in whole.trials]
    for a, b in zip(streamed.trials, whole.trials):
        for name in FIGURES:
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), name
            if x is not None:
                assert x == pytest.approx(y, rel=1e-9, abs=1e-12), name
    for name in ("all_shift_consistency", "accuracy", "worst_case_accuracy"):
        assert getattr(streamed, name) == pytest.approx(getattr(whole, name)), name
    if streamed.images is not None and whole.images is not None:  # one tensor is not a sample: no count
        assert streamed.images == whole.images


@pytest.fixture
def images():
    return natural_images((10, 3, 16, 16), seed=4)


@pytest.mark.parametrize("mode", ["circular", "crop", "zero"])
def test_a_loader_of_images_gives_the_figures_of_the_concatenated_tensor(images, mode):
    model = pooled_classifier(aliasing=True)
    loader = DataLoader(TensorDataset(images), batch_size=3)  # batches of 3, 3, 3, 1
    streamed = check_shift_invariant(model, loader, mode=mode, max_shift=3, seed=1)
    whole = check_shift_invariant(model, images, mode=mode, max_shift=3, seed=1)
    assert 0 < whole.worst_error and whole.consistency is not None
    same_figures(streamed, whole)
    assert streamed.images == 10


def test_equivariance_and_rotation_checks_stream_too(images):
    loader = [images[:4], images[4:]]  # a list of batches is a stream
    same_figures(check_shift_equivariant(strided_net(), loader, seed=2),
                 check_shift_equivariant(strided_net(), images, seed=2))
    same_figures(check_rotation_invariant(pooled_classifier(aliasing=True), loader), check_rotation_invariant(pooled_classifier(aliasing=True), images))
    assert check_shift_equivariant(circular_net(), loader).passed


def test_labels_give_accuracy_under_each_transform_and_the_worst_case(trained_model):
    loader = validation(40, CROP, batch_size=16)
    result = check_shift_invariant(trained_model, loader, shifts=[(0, 1), (1, 1), (3, -2)])
    clean, moved, every = 0, [0, 0, 0], 0
    with torch.no_grad():
        for x, y in loader:
            right = trained_model(x).argmax(1) == y
            clean += right.sum().item()
            all_right = right.clone()
            for i, shift in enumerate([(0, 1), (1, 1), (3, -2)]):
                hit = trained_model(torch.roll(x, shift, (-2, -1))).argmax(1) == y
                moved[i] += hit.sum().item()
                all_right &= hit
            every += all_right.sum().item()
    assert result.accuracy == clean / 40
    assert [t.accuracy for t in result.trials] == [m / 40 for m in moved]
    assert result.transformed_accuracy == pytest.approx(sum(moved) / 120)
    assert result.worst_case_accuracy == every / 40
    assert every < clean  # shifts cost this model some images: the worst case is a figure of its own
    assert result.figures()["worst_case_accuracy"] == every / 40
    assert result.samples() == {name: 40 for name in ("consistency", "accuracy", "transformed_accuracy",
                                                       "worst_case_accuracy")}


def test_accuracy_criteria_decide_the_verdict(trained_model):
    loader = validation(40, CROP, batch_size=16)
    shifts = [(0, 1), (1, 1)]
    base = check_shift_invariant(trained_model, loader, shifts=shifts)
    moved, clean = base.transformed_accuracy, base.accuracy
    assert 0 < moved < 1
    assert check_shift_invariant(trained_model, loader, shifts=shifts, min_accuracy=moved).passed
    failed = check_shift_invariant(trained_model, loader, shifts=shifts, min_accuracy=moved + 0.01)
    assert not failed.passed
    drop = clean - moved
    assert drop > 0.01  # shifts cost this model accuracy
    assert check_shift_invariant(trained_model, loader, shifts=shifts, max_accuracy_drop=drop + 1e-9).passed
    assert not check_shift_invariant(trained_model, loader, shifts=shifts, max_accuracy_drop=drop - 0.01).passed
    with pytest.raises(EquivarianceUsageError, match="min_accuracy judges accuracy, which needs labels"):
        check_shift_invariant(trained_model, torch.zeros(2, 1, CROP, CROP), min_accuracy=0.5)


def test_limit_caps_the_images_read(images):
    reads = []

    def batches():
        for start in range(0, 10, 4):
            reads.append(start)
            yield images[start:start + 4]

    limited = check_shift_invariant(pooled_classifier(aliasing=True), batches(), limit=6, seed=1)
    assert limited.images == 6 and reads == [0, 4]  # the third batch is never read
    same_figures(limited, check_shift_invariant(pooled_classifier(aliasing=True), images[:6], seed=1))


def test_a_limit_inside_the_first_batch_cuts_it_images_and_labels(images):
    labels = torch.arange(10) % 4
    limited = check_shift_invariant(pooled_classifier(aliasing=True), [(images, labels)], limit=3, seed=1)
    assert limited.images == 3
    same_figures(limited, check_shift_invariant(pooled_classifier(aliasing=True), [(images[:3], labels[:3])], seed=1))
    same_figures(check_shift_invariant(pooled_classifier(aliasing=True), images, limit=3, seed=1),
                 check_shift_invariant(pooled_classifier(aliasing=True), images[:3], seed=1))


def test_mappings_and_named_keys(images):
    labels = torch.arange(10) % 4
    rows = [{"id": "a", "pixels": images[:5], "target": labels[:5]}, {"id": "b", "pixels": images[5:],
                                                                      "target": labels[5:]}]
    model = pooled_classifier(classes=4)
    named = check_shift_invariant(model, Batches(rows, image_key="pixels", label_key="target"), seed=0)
    found = check_shift_invariant(model, rows, seed=0)  # the first float tensor; labels under "target"
    whole = check_shift_invariant(model, DataLoader(TensorDataset(images, labels), batch_size=10), seed=0)
    same_figures(named, whole)
    same_figures(found, whole)


def test_lie_derivative_and_attribute_of_a_stream_are_those_of_the_concatenation(images):
    model = pooled_classifier(aliasing=True)
    loader = DataLoader(TensorDataset(images), batch_size=4)
    streamed = lie_derivative(model, loader, ["translate_x", "rotate"])
    whole = lie_derivative(model, images, ["translate_x", "rotate"])
    for name in whole:
        assert torch.allclose(streamed[name], whole[name], atol=1e-6)
    profile, reference = attribute(model, loader), attribute(model, images)
    assert profile.culprit.qualname == reference.culprit.qualname
    assert profile.end_to_end == pytest.approx(reference.end_to_end, rel=1e-5)
    for a, b in zip(profile.layers, reference.layers):
        assert (a.share or 0) == pytest.approx(b.share or 0, abs=1e-6)
    lie = check_shift_invariant(model, loader, measure="lie")
    same_figures(lie, check_shift_invariant(model, images, measure="lie"))


def test_the_profile_of_a_failing_stream_is_measured_on_its_first_batch(images):
    result = check_shift_invariant(pooled_classifier(aliasing=True), DataLoader(TensorDataset(images), batch_size=4), shifts=[(0, 1)])
    assert not result.passed and result.profile is not None
    assert result.profile.culprit.qualname == "2"  # the stride-2 max pool


class _Yields:
    """An iterable of the given items, one batch each."""

    def __init__(self, *items):
        self.items = items

    def __iter__(self):
        return iter(self.items)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (_Yields("a", "b"), r"got batch 0 of the inputs as a str \('a'\); yield tensors of images"),
        (_Yields(), r"yielded no batch"),
        (_Yields(torch.zeros(0, 3, 8, 8)), r"an empty batch"),
        (_Yields((torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, 2]))), r"got 3 labels shaped \(3,\) for 4 images"),
        (_Yields({"label": torch.zeros(2, dtype=torch.long)}), r"mapping with no floating-point tensor \(keys 'label'\)"),
        (Batches(_Yields({"x": torch.zeros(2, 3, 8, 8)}), image_key="image"),
         r"without the key 'image' \(it has 'x'\); pass image_key= one of those"),
        (_Yields(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 9, 9)),
         r"batch 1 of the inputs with images of shape \(3, 9, 9\) after \(3, 8, 8\) in batch 0"),
        (_Yields((torch.zeros(2, 3, 8, 8), torch.tensor([0, 1])), torch.zeros(2, 3, 8, 8)),
         r"batch 1 of the inputs without labels, unlike batch 0"),
        (_Yields((torch.zeros(2, 3, 8, 8), torch.tensor([0, 7]))), r"A label of the inputs is 7, but the model "
                                                                   r"scores 5 classes"),
        (_Yields(torch.zeros(2, 8)), r"images of shape \(2, 8\); yield batches shaped \(batch, channels"),
        (42, r"needs inputs as a tensor or an iterable of batches, got a int"),
    ],
)
def test_bad_batches_are_one_sentence(source, message):
    with pytest.raises(EquivarianceUsageError, match=message) as info:
        check_shift_invariant(pooled_classifier(classes=5), source)
    assert "\n" not in str(info.value)


def test_a_bad_limit_is_one_sentence(images):
    with pytest.raises(EquivarianceUsageError, match=r"limit=0 is not accepted; pass a positive number"):
        check_shift_invariant(pooled_classifier(aliasing=True), [images], limit=0)
    with pytest.raises(EquivarianceUsageError, match=r"limit= caps the images of inputs, but no inputs"):
        check_shift_invariant(pooled_classifier(aliasing=True), input_shape=(1, 3, 16, 16), limit=5)


def test_the_inputs_fingerprint_follows_the_data(images):
    model = pooled_classifier(aliasing=True)
    a = check_shift_invariant(model, [images[:5], images[5:]], shifts=[(0, 1)], localize=False)
    b = check_shift_invariant(model, [images[:5], images[5:]], shifts=[(0, 1)], localize=False)
    c = check_shift_invariant(model, [images[:5], images[5:].flip(-1)], shifts=[(0, 1)], localize=False)
    assert a.inputs_fingerprint == b.inputs_fingerprint != c.inputs_fingerprint
    assert math.isfinite(a.worst_error)


def test_figures_reach_the_reports(trained_model):
    from pytest_equivariance.report import text
    from pytest_equivariance.report.html import check_card

    result = check_shift_invariant(trained_model, validation(20, CROP, batch_size=8), shifts=[(0, 1)],
                                   min_accuracy=0.99)
    plain = text.format_result(result)
    assert f"accuracy (untransformed) {result.accuracy:.1%}" in plain
    assert f"accuracy under every transform {result.worst_case_accuracy:.1%}" in plain
    assert "images 20" in plain
    assert "min_accuracy=99.0%" in plain
    assert "accuracy under every transform" in check_card(result)
    data = result.to_json()
    assert data["figures"]["accuracy"] == result.accuracy and data["images"] == 20
    assert type(result).from_json(data).trials[0].accuracy == result.trials[0].accuracy


def test_models_without_class_scores_have_no_accuracy(images):
    result = check_shift_invariant(nn.Identity(), DataLoader(TensorDataset(images, torch.zeros(10, dtype=torch.long)),
                                                             batch_size=5))
    assert result.accuracy is None and result.worst_case_accuracy is None and result.images == 10
