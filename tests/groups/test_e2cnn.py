"""e2cnn models pass when passed directly: the group and the fields are read from the model."""

from __future__ import annotations

import pytest

from optional import require
import pytest_equivariance as pe
from pytest_equivariance.seeding import seeded


@pytest.mark.filterwarnings("ignore:indexing with dtype torch.uint8:UserWarning", "ignore::DeprecationWarning")  # inside e2cnn
def test_e2cnn_modules() -> None:
    e2cnn = require("e2cnn")
    for gspace, name in ((e2cnn.gspaces.Rot2dOnR2(8), "C8"), (e2cnn.gspaces.FlipRot2dOnR2(4), "D4")):
        with seeded(0):
            t_in = e2cnn.nn.FieldType(gspace, [gspace.trivial_repr])
            t_h = e2cnn.nn.FieldType(gspace, 2 * [gspace.regular_repr])
            model = e2cnn.nn.SequentialModule(
                e2cnn.nn.R2Conv(t_in, t_h, 5, padding=2), e2cnn.nn.ReLU(t_h), e2cnn.nn.R2Conv(t_h, t_h, 5, padding=2)
            ).eval()
        result = pe.check_rotation_equivariant(model)
        assert result.passed and result.group == name
