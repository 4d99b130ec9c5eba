"""Gate a trained classifier on a validation loader: its predictions should survive a move of the crop.

Both classifiers are trained here, in the test run (a few seconds), from the same initial weights on
the same batches; one has ``antialias`` applied before training. The markers stream the
``equiv_inputs`` loader (``(images, labels)`` batches) through Zhang 2019's protocol: two random
crops of each validation canvas, and the fraction of images whose top-1 class agrees (consistency).
The labels add accuracy, and the worst-case accuracy over the crops tried.
"""

import copy

import pytest
import torch

from trained import INPUT, ShapesCNN, embedded_loader, train, validation_loader

from pytest_equivariance import antialias
from pytest_equivariance.check.protocols import azulay2019

CROP = (1, 1, INPUT, INPUT)  # the model's input: crops of the validation canvases


@pytest.fixture(scope="module")
def classifiers():
    torch.manual_seed(0)
    baseline = ShapesCNN()
    antialiased = antialias(copy.deepcopy(baseline), example_input=CROP)
    return {"baseline": train(baseline, steps=300), "antialiased": train(antialiased, steps=300)}


@pytest.fixture(scope="module")
def equiv_inputs():
    return validation_loader()  # 500 held-out canvases, in batches of 100


@pytest.mark.shift_invariant(protocol="zhang2019", input_shape=CROP, min_consistency=0.7, min_accuracy=0.5)
def test_trained_cnn_keeps_most_predictions(classifiers):
    return classifiers["baseline"]


@pytest.mark.shift_invariant(protocol="zhang2019", input_shape=CROP, min_consistency=0.8, min_accuracy=0.5)
def test_antialiased_cnn_keeps_more_predictions(classifiers):
    return classifiers["antialiased"]


def test_antialiasing_halves_the_chance_that_a_one_pixel_move_changes_the_class(
    classifiers, equiv_inputs, equivariance
):
    # Azulay & Weiss 2019: crops at (c, c) and (c+1, c+1) at eight diagonal positions.
    baseline, antialiased = (
        equivariance.check_shift_invariant(classifiers[name], equiv_inputs, protocol="azulay2019", input_shape=CROP)
        for name in ("baseline", "antialiased")
    )
    assert 1 - antialiased.consistency < (1 - baseline.consistency) / 2


def test_antialiasing_helps_a_one_pixel_move_but_not_a_one_pixel_growth(classifiers, equivariance):
    # Azulay & Weiss's embedding settings: 15x15 shapes pasted into the black 24x24 input, then moved
    # by one pixel diagonally, or grown by one pixel. Blurring before subsampling restores shifts, not scale.
    images = embedded_loader()
    moved, grown = {}, {}
    for name in ("baseline", "antialiased"):
        moved[name] = equivariance.check_shift_invariant(
            classifiers[name], images, protocol=azulay2019(setting="black"), input_shape=CROP
        )
        grown[name] = equivariance.check_scale_invariant(classifiers[name], images, protocol="azulay2019",
                                                         input_shape=CROP)
    assert 1 - moved["antialiased"].consistency < (1 - moved["baseline"].consistency) / 2
    assert 1 - grown["antialiased"].consistency > (1 - grown["baseline"].consistency) / 2
