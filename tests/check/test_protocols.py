"""The field's evaluation protocols give their reference loops' figures on a classifier trained here.

Each reference (``zhang2019_reference.py``, ported with its licence; ``protocol_loops.py``, written
anew where the source has no licence) runs on the same model, loader and seed as the check. Figures
are fractions of images or pairs, so equal counts mean equal figures: they are compared to float
rounding (the references average percentages in float32).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from protocol_loops import (
    azulay_weiss,
    azulay_weiss_embedded,
    chaman_dokmanic,
    ideal_half_pixel_shift,
    michaeli_soudry,
    pil_bilinear,
)
from torch.utils.data import DataLoader, TensorDataset
from trained_classifier import CROP, validation
from zhang2019_reference import validate_shift

from pytest_equivariance import EquivarianceUsageError, check_scale_invariant, check_shift_invariant
from pytest_equivariance.check import protocols
from pytest_equivariance.check.arguments import PROTOCOL_NAMES, SCALE_PROTOCOL_NAMES
from pytest_equivariance.check.resample import fourier_shift
from pytest_equivariance.inputs import labelled_shapes

SHAPE = (1, 1, CROP, CROP)


@pytest.fixture
def model(trained_model):
    return trained_model


def test_zhang2019_is_the_reference_validate_shift(model):
    loader = validation(96, 32, batch_size=16)
    result = check_shift_invariant(model, loader, protocol="zhang2019", input_shape=SHAPE, seed=3)
    reference = validate_shift(loader, model, seed=3, crop=CROP, offsets=32 - CROP) / 100
    assert 0.2 < result.consistency < 0.99  # the model is neither invariant nor random
    assert result.consistency == pytest.approx(reference, abs=1e-6)
    assert [t.params for t in result.trials] == [{"pass": p} for p in range(1, 6)]
    assert result.images == 96 and result.protocol == "zhang2019"
    assert result.accuracy is None  # the protocol never shows the model the untransformed image


def test_zhang2019_draws_the_references_offsets_in_its_order():
    plan = protocols.zhang2019(passes=2).plan((1, 1, 40, 40), (1, 1, 32, 32), (-2, -1), seed=0)
    rng = np.random.RandomState(0)
    for p in range(2):
        for batch in range(3):
            off0, off1 = rng.randint(8, size=2), rng.randint(8, size=2)
            (pair,) = plan.pairs(p, batch)
            assert pair.a.params["offset"] == tuple(off0) and pair.b.params["offset"] == tuple(off1)
            assert pair.slot == p


def test_azulay2019_is_the_reference_jaggedness(model):
    loader = validation(64, CROP + 10, batch_size=8)
    result = check_shift_invariant(model, loader, protocol="azulay2019", input_shape=SHAPE)
    change, mac = azulay_weiss(model, loader, CROP)
    assert 0.02 < change < 0.9
    assert 1 - result.consistency == pytest.approx(change, abs=1e-12)
    assert result.prob_change == pytest.approx(mac, rel=1e-6)
    assert len(result.trials) == 8
    assert result.trials[0].params == {"offset": [0, 0]}  # (34 - 24 - 1) // 2 - 4


def test_chaman2021_is_the_reference_validate(model):
    loader = validation(96, CROP, batch_size=16)
    result = check_shift_invariant(model, loader, protocol=protocols.chaman2021(max_shift=8))
    consistency, accuracy = chaman_dokmanic(model, loader, seed=0, max_shift=8)
    assert 0.2 < consistency < 0.99
    assert result.consistency == pytest.approx(consistency, abs=1e-12)
    assert result.accuracy == pytest.approx(accuracy, abs=1e-12)


def test_michaeli2023_is_the_reference_adversarial_accuracy(model):
    loader = validation(64, CROP, batch_size=16)
    result = check_shift_invariant(model, loader, protocol=protocols.michaeli2023(max_shift=3))
    reference = michaeli_soudry(model, loader, max_shift=3)
    assert 0.05 < reference < result.accuracy  # some images survive every shift, not all that are right
    assert result.worst_case_accuracy == pytest.approx(reference, abs=1e-12)
    assert len(result.trials) == 8  # 4 rolls and 4 half-pixel shifts
    assert {tuple(t.params["shift"]) for t in result.trials[4:]} == {(-0.5, -0.5), (-0.5, -1.5), (-1.5, -0.5),
                                                                     (-1.5, -1.5)}


def test_the_ideal_half_pixel_shift_is_the_band_limited_shift():
    images = torch.randn(2, 1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for fine in [(1, 1), (3, -5), (2, 7)]:
        expected = ideal_half_pixel_shift(images, fine)
        assert torch.allclose(fourier_shift(images, (-fine[0] / 2, -fine[1] / 2), (-2, -1)), expected, atol=1e-12)


def test_every_protocol_name_resolves():
    assert tuple(protocols.PROTOCOLS) == PROTOCOL_NAMES
    for name in PROTOCOL_NAMES:
        assert protocols.resolve(name).name == name


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"protocol": "zhang2019"}, r"input_shape= with the model's input size"),
        ({"protocol": "azulay2019", "input_shape": (1, 1, 30, 30)}, r"at least 9 pixels larger than the crop"),
        ({"protocol": "zhang2019", "input_shape": (1, 1, 40, 40)}, r"does not fit inside them"),
        ({"protocol": "chaman2021", "shifts": [(0, 1)]}, r"chooses its own shifts, so shifts= does not apply"),
        ({"protocol": "chaman2021", "input_shape": (1, 1, 20, 20)}, r"drop input_shape="),
        ({"protocol": "madeup2020"}, r"protocol='madeup2020' is not a protocol"),
    ],
)
def test_protocol_misuse_is_one_sentence(model, arguments, message):
    loader = validation(8, 32, batch_size=4)
    with pytest.raises(EquivarianceUsageError, match=message):
        check_shift_invariant(model, loader, **arguments)


def test_a_protocol_needs_data_and_a_classifier(model):
    with pytest.raises(EquivarianceUsageError, match="measures a classifier on your data; pass inputs="):
        check_shift_invariant(model, protocol="chaman2021")
    features = model.features  # feature maps, no class scores
    images = torch.randn(4, 1, CROP, CROP)
    with pytest.raises(EquivarianceUsageError, match=r"protocol='chaman2021' needs classifier outputs"):
        check_shift_invariant(features, images, protocol="chaman2021")


def test_a_protocol_of_several_passes_reads_the_loader_again_but_not_a_generator(model):
    images, labels = next(iter(validation(16, 32, batch_size=16)))
    reads = []

    class Counting:
        def __iter__(self):
            reads.append(1)
            yield images, labels

    check_shift_invariant(model, Counting(), protocol=protocols.zhang2019(passes=3), input_shape=SHAPE)
    assert len(reads) == 3
    once = iter([(images, labels)])
    with pytest.raises(EquivarianceUsageError, match="reads its inputs 2 times but got a one-shot"):
        check_shift_invariant(model, once, protocol=protocols.zhang2019(passes=2), input_shape=SHAPE)


def test_a_tensor_is_a_one_batch_loader(model):
    images, labels = next(iter(validation(32, CROP, batch_size=32)))
    as_tensor = check_shift_invariant(model, images, protocol=protocols.chaman2021(max_shift=8))
    as_loader = check_shift_invariant(model, DataLoader(TensorDataset(images), batch_size=32),
                                      protocol=protocols.chaman2021(max_shift=8))
    assert as_tensor.consistency == as_loader.consistency


def test_a_protocol_without_an_untransformed_image_refuses_an_accuracy_drop(model):
    with pytest.raises(EquivarianceUsageError, match="protocol='zhang2019' compares two moved copies and has no "
                                                     "untransformed accuracy"):
        check_shift_invariant(model, validation(20, CROP + 4, batch_size=10), protocol="zhang2019",
                              input_shape=(1, 1, CROP, CROP), max_accuracy_drop=0.05)


def small_images(count, size, *, batch_size=8):
    """Held-out shapes on ``size``-pixel images, smaller than the model's input: what the embedding
    settings paste into a black canvas."""
    images, labels = labelled_shapes(count, size, seed=1, margin=size // 2 - 3)
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)


def test_azulay2019_black_is_the_references_black_background_branch(model):
    loader = small_images(48, 15)
    result = check_shift_invariant(model, loader, protocol=protocols.azulay2019(setting="black"), input_shape=SHAPE)
    change, mac = azulay_weiss_embedded(model, loader, CROP)
    assert 0.02 < change < 0.9
    assert 1 - result.consistency == pytest.approx(change, abs=1e-12)
    assert result.prob_change == pytest.approx(mac, rel=1e-6)
    assert result.mode == "zero" and len(result.trials) == 8
    assert result.trials[0].params == {"offset": [0, 0]}  # (24 - 15 - 1) // 2 - 4
    assert result.trials[0].transform == "image at (0, 0) vs (1, 1)"


def test_azulay2019_scale_is_the_papers_one_pixel_growth(model):
    loader = small_images(48, 15)
    result = check_scale_invariant(model, loader, protocol="azulay2019", input_shape=SHAPE)
    change, mac = azulay_weiss_embedded(model, loader, CROP, grow=True)
    assert 0.02 < change < 0.9
    assert 1 - result.consistency == pytest.approx(change, abs=1e-12)
    assert result.prob_change == pytest.approx(mac, rel=1e-4)  # PIL and torch resize agree to 4e-7
    assert result.protocol == "azulay2019" and result.mode == "antialias"
    assert [t.transform for t in result.trials[:2]] == ["15x15 vs 16x16 image at (0, 0)", "15x15 vs 16x16 image at (1, 1)"]
    assert any("pasted into 24x24 zero canvases" in note for note in result.notes)


def test_the_scale_setting_resizes_to_size_first(model):
    images, labels = next(iter(small_images(16, 30, batch_size=16)))
    result = check_scale_invariant(model, images, protocol=protocols.azulay2019(setting="scale", size=12),
                                   input_shape=SHAPE)
    change, mac = azulay_weiss_embedded(model, [(images, labels)], CROP, grow=True, size=12)
    assert 1 - result.consistency == pytest.approx(change, abs=1e-12)
    assert result.prob_change == pytest.approx(mac, rel=1e-4)
    assert result.trials[0].transform == "12x12 vs 13x13 image at (1, 1)"  # (24 - 12 - 1) // 2 - 4
    assert any("resized to 12x12" in note for note in result.notes)


def test_a_pasted_image_is_the_image_on_zeros():
    from pytest_equivariance.check.transforms import embed_at

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    out = embed_at((1, 2), (4, 5), (8, 9), (-2, -1)).on_input(x)
    assert out.shape == (2, 3, 8, 9)
    assert torch.equal(out[:, :, 1:5, 2:7], x) and out.sum() == x.sum()
    grown = embed_at((0, 0), (5, 5), (8, 9), (-2, -1)).on_input(x[..., :4])
    assert torch.allclose(grown[:, :, :5, :5], pil_bilinear(x[..., :4].reshape(6, 1, 4, 4), 5).reshape(2, 3, 5, 5),
                          atol=1e-4)
    assert grown[:, :, 5:].abs().sum() == 0 and grown[..., 5:].abs().sum() == 0


def test_every_scale_protocol_name_resolves_and_a_family_is_kept():
    assert tuple(protocols.SCALE_PROTOCOLS) == SCALE_PROTOCOL_NAMES
    assert protocols.resolve("azulay2019", "scale").options == {"setting": "scale"}
    with pytest.raises(EquivarianceUsageError, match=r"is run by check_scale_invariant, not check_shift_invariant"):
        protocols.resolve(protocols.azulay2019(setting="scale"), "shift")
    with pytest.raises(EquivarianceUsageError, match=r"is run by check_shift_invariant, not check_scale_invariant"):
        protocols.resolve(protocols.zhang2019(), "scale")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: protocols.azulay2019(setting="inpaint"), r"setting='inpaint' is not one of Azulay & Weiss's settings"),
        (lambda: protocols.azulay2019(size=20), r"setting='crop' embeds none"),
        (lambda: protocols.azulay2019(setting="scale", size=0), r"size=0 is not accepted"),
    ],
)
def test_azulay2019_settings_misuse_is_one_sentence(make, message):
    with pytest.raises(EquivarianceUsageError, match=message):
        make()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"protocol": "azulay2019"}, r"shows the model a canvas holding the inputs' \(15, 15\) images; pass input_shape="),
        ({"protocol": "azulay2019", "input_shape": (1, 1, 20, 20)}, r"needs the input at least 9 pixels larger"),
        ({"protocol": "azulay2019", "input_shape": (1, 3, 24, 24)}, r"has other channels or dims"),
        ({"protocol": "azulay2019", "input_shape": SHAPE, "scales": [2.0]},
         r"chooses its own rescalings, so scales= does not apply"),
        ({"protocol": "zhang2019", "input_shape": SHAPE}, r"protocol='zhang2019' is not a protocol of check_scale_invariant"),
    ],
)
def test_scale_protocol_misuse_is_one_sentence(model, arguments, message):
    with pytest.raises(EquivarianceUsageError, match=message):
        check_scale_invariant(model, small_images(8, 15), **arguments)


@pytest.mark.parametrize(
    ("inputs", "arguments", "message"),
    [
        (torch.randn(8, 1, 10, 10), {"protocol": protocols.azulay2019(setting="black"), "input_shape": (1, 1, 8, 8)},
         r"pastes 10x10 images into the model's 8x8 input at 8 diagonal positions"),
        (torch.randn(4, 1, 12), {"protocol": protocols.azulay2019(setting="black", size=8), "input_shape": (1, 1, 30),
                                 "dims": (-1,)}, r"resizes images on their plane \(2 spatial dims\), not on 1"),
    ],
)
def test_embedding_misfits_are_refused_before_any_image_is_pasted(inputs, arguments, message):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))
    with pytest.raises(EquivarianceUsageError, match=message):
        check_shift_invariant(net, inputs, **arguments)


def test_a_protocol_of_unknown_layout_or_family_is_refused():
    with pytest.raises(EquivarianceUsageError, match=r"layout=True; pass one of 'crop', 'embed', 'own'"):
        protocols.Protocol("mine", "pairs", True, planner=lambda frame: None)
    with pytest.raises(EquivarianceUsageError, match=r"family='rotation'; pass 'shift'"):
        protocols.Protocol("mine", "pairs", "own", planner=lambda frame: None, family="rotation")
