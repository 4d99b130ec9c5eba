"""Checks of outputs that say where things are: keypoints and detection sets (docs/geometry.md).

``points()`` and ``detections()`` tell the markers how the outputs move: keypoints by the shift (and
trade places under a flip, with ``flip_pairs``), detections matched to the moved reference before
they are compared. The coarse detector's failure is measured with the fixture and asserted: its
boxes land exactly one pixel off under an odd shift.
"""

from __future__ import annotations

import pytest
import torch
from locating import KeypointNet, PeakDetector

from pytest_equivariance import detections, points

IMAGES = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.shift_equivariant(mode="circular", trials=8, output_fields=points())
@pytest.mark.rotation_equivariant(group="D1", output_fields=points(flip_pairs=[(0, 1)]))
def test_keypoints_move_with_the_image_and_swap_under_a_flip():
    return KeypointNet(), IMAGES


@pytest.mark.shift_equivariant(mode="circular", trials=8, output_fields=detections())
@pytest.mark.rotation_equivariant(group="D4", output_fields=detections())
def test_detections_move_with_the_image():
    return PeakDetector(), IMAGES


def test_a_coarse_detector_misplaces_boxes_by_a_pixel(equivariance):
    result = equivariance.check_shift_equivariant(PeakDetector(stride=2), IMAGES, mode="circular",
                                                  shifts=[(0, 1), (2, 2)], output_fields=detections())
    odd, even = result.trials
    assert not odd.passed and odd.max_abs == 1.0  # pixels beyond the shift
    assert even.passed and even.appeared == even.vanished == 0
