"""Checks on real torchvision models (slower: run with -m zoo)."""

from __future__ import annotations

import pytest

from optional import require
from pytest_equivariance.check.api import check_shift_equivariant, check_shift_invariant

torchvision = require("torchvision")
pytestmark = pytest.mark.zoo


def resnet18():
    from check_models import seeded

    return seeded(lambda: torchvision.models.resnet18(weights=None))


def test_resnet18_is_not_shift_invariant_under_a_one_pixel_shift():
    result = check_shift_invariant(resnet18(), input_shape=(2, 3, 64, 64), shifts=[(0, 1), (1, 0)], localize=False)
    assert not result.passed
    assert result.worst.rel_l2 > 1e-2  # aliasing, far above rounding
    assert result.consistency is not None and result.prob_change is not None


def test_resnet18_stride1_block_is_shift_equivariant_away_from_the_zero_padded_border():
    block = resnet18().layer1[0]
    result = check_shift_equivariant(block, input_shape=(2, 64, 32, 32), mode="zero", trials=6, max_shift=4)
    assert result.passed
    assert any("from the border" in note for note in result.notes)
    circular = check_shift_equivariant(block, input_shape=(2, 64, 32, 32), trials=2, localize=False)
    assert not circular.passed  # zero padding does not wrap around


def test_resnet18_strided_block_is_equivariant_on_its_stride_lattice():
    block = resnet18().layer2[0]
    result = check_shift_equivariant(block, input_shape=(2, 64, 32, 32), mode="zero", trials=6, max_shift=4)
    assert result.lattice == (2, 2)
    assert result.passed
