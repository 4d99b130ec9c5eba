"""The shift_equivariant marker takes output_fields for coordinates; shift_invariant refuses them."""

from __future__ import annotations

SOURCE = """
import math

import pytest
import torch
from torch import nn

from pytest_equivariance import points


class CentreOfMass(nn.Module):
    # The circular mean of each image's intensity along x and y: moves exactly with circular shifts.
    def forward(self, x):
        n, _, h, w = x.shape
        p = torch.softmax(x.flatten(1), -1).view(n, h, w)
        out = []
        for size, marginal in ((w, p.sum(-2)), (h, p.sum(-1))):
            phase = 2 * math.pi * (torch.arange(size) + 0.5) / size
            angle = torch.atan2((marginal * phase.sin()).sum(-1), (marginal * phase.cos()).sum(-1))
            out.append(torch.remainder(angle * size / (2 * math.pi), size))
        return torch.stack(out, -1).unsqueeze(1)


@pytest.mark.shift_equivariant(input_shape=(2, 1, 12, 12), output_fields=points(), max_shift=6)
def test_points_move():
    return CentreOfMass()


@pytest.mark.shift_invariant(input_shape=(2, 1, 12, 12), output_fields=points())
def test_invariant_refuses():
    return CentreOfMass()
"""


def test_shift_equivariant_marker_moves_points_and_invariant_refuses_them(inner):
    inner.write(SOURCE)
    result = inner.run("-rE")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*test_invariant_refuses*unknown argument 'output_fields' (output_fields applies to "
                                 "equivariance checks only)*"])
