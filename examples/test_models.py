"""An example model test suite: equivariance markers, the `equivariance` fixture, an expected failure.

Run it with ``pytest examples/``: every exact model passes, and the aliasing CNN's shift-invariance
check fails as expected (``xfail(strict=True)``), so the run is green while its report still shows
what the plugin catches. Add ``-rx`` to see that report's headline, or remove the xfail mark to see
the whole report with the reproduce command.
"""

from __future__ import annotations

import pytest
import torch
from models import (
    AliasingCNN, AntialiasedCNN, CircularConvNet, GlobalPoolClassifier, ImageGradient, Rot90SymmetricNet, build,
)

SHAPE = (2, 3, 32, 32)


# A marked test returns the model; the plugin runs the check with seeded random shifts.
@pytest.mark.shift_equivariant(input_shape=SHAPE, max_shift=8, trials=8)
def test_circular_conv_net_is_shift_equivariant():
    return build(CircularConvNet)


# Several markers run several checks; explicit shifts replace the random draw.
@pytest.mark.shift_invariant(input_shape=SHAPE, trials=8)
@pytest.mark.shift_invariant(input_shape=SHAPE, shifts=[(0, 1), (1, 0), (5, -7)])
def test_global_pool_classifier_is_shift_invariant():
    return build(GlobalPoolClassifier)


# Return (model, inputs) to check on your own inputs instead of generated natural-like images.
@pytest.mark.rotation_invariant()
def test_rot90_net_is_rotation_invariant():
    inputs = torch.randn(4, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    return build(Rot90SymmetricNet), inputs


# group= checks every element of a group; output_fields= says how each one acts on the channels.
@pytest.mark.rotation_equivariant(group="D4", output_fields="vector", input_shape=(2, 1, 32, 32))
def test_image_gradient_is_a_d4_equivariant_vector_field():
    return build(ImageGradient)


@pytest.fixture
def model():
    """A fixture named `model` supplies the model to marked tests that return nothing."""
    return build(Rot90SymmetricNet).features


@pytest.mark.rotation_equivariant(input_shape=(2, 3, 24, 24))
def test_rot90_features_are_rotation_equivariant(model):
    pass


# The aliasing CNN: strided max pooling breaks shift invariance under odd shifts. The xfail mark
# keeps the suite green while documenting (strictly: it must keep failing) what the plugin catches.
@pytest.mark.xfail(strict=True, reason="stride-2 max pooling aliases: not shift-invariant")
@pytest.mark.shift_invariant(input_shape=SHAPE, shifts=[(0, 1), (1, 0), (1, 1), (3, -5)])
def test_aliasing_cnn_is_not_shift_invariant():
    return build(AliasingCNN)


# On its stride lattice (shifts that are multiples of the total stride 4) the same CNN is exact:
# the plugin draws shifts on the output lattice by default and says so in the report.
@pytest.mark.shift_equivariant(input_shape=SHAPE, trials=6)
def test_aliasing_cnn_features_are_equivariant_on_their_lattice():
    return build(AliasingCNN).features


# The fixture runs checks inside a test body, with the run's seed and device, and records them in
# the summary table; check_* returns the result, assert_* raises with the report. localize=False
# skips the per-layer profile of a failure the test expects.
def test_fixture_measures_how_far_the_aliasing_cnn_is_off(equivariance):
    result = equivariance.check_shift_invariant(build(AliasingCNN), input_shape=SHAPE, shift=(1, 1), localize=False)
    assert not result.passed
    assert result.worst_error > 1e-3
    equivariance.assert_shift_invariant(build(GlobalPoolClassifier), input_shape=SHAPE, shift=(1, 1))


# The fix the linter suggests: blur before subsampling. check_* returns the figures, so a test can
# compare models; a fixed seed makes the comparison independent of --equiv-seed.
def test_blur_pooling_reduces_the_aliasing_error(equivariance):
    odd_shifts = [(0, 1), (1, 0), (1, 1), (3, -5)]
    figures = dict(input_shape=SHAPE, shifts=odd_shifts, seed=0, localize=False)
    aliasing = equivariance.check_shift_invariant(build(AliasingCNN), **figures)
    blurred = equivariance.check_shift_invariant(build(AntialiasedCNN), **figures)
    assert blurred.worst_error < aliasing.worst_error / 2


# The exact fix for a circular-padded model: keep the polyphase component of largest norm
# (Chaman & Dokmanić 2021) instead of blurring. Every circular shift now leaves the logits unchanged.
@pytest.mark.shift_invariant(input_shape=SHAPE, max_shift=8, trials=16, atol=1e-5, rtol=1e-5)
def test_polyphase_sampling_makes_the_aliasing_cnn_exactly_invariant():
    from pytest_equivariance import antialias

    return antialias(build(AliasingCNN), method="polyphase")
