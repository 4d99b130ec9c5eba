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
from protocol_loops import azulay_weiss, chaman_dokmanic, ideal_half_pixel_shift, michaeli_soudry
from torch.utils.data import DataLoader, TensorDataset
from trained_classifier import CROP, validation
from zhang2019_reference import validate_shift

from pytest_equivariance import EquivarianceUsageError, check_shift_invariant
from pytest_equivariance.check import protocols
from pytest_equivariance.check.arguments import PROTOCOL_NAMES
from pytest_equivariance.check.resample import fourier_shift

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
