"""The rotation markers and the fixture take group= and fields."""

from __future__ import annotations


def test_the_rotation_marker_takes_group_and_fields(inner) -> None:
    inner.write(
        """
        import pytest, torch
        import torch.nn.functional as F
        from torch import nn

        class Gradient(nn.Module):
            def forward(self, x):
                p = F.pad(x, (1, 1, 1, 1), mode="circular")
                return torch.cat([(p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2,
                                  (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2], 1)

        @pytest.mark.rotation_equivariant(group="D4", output_fields="vector", input_shape=(2, 1, 16, 16))
        def test_vectors():
            return Gradient()

        def test_fixture(equivariance):
            equivariance.assert_rotation_equivariant(Gradient(), input_shape=(2, 1, 16, 16), group="C4",
                                                     output_fields="vector")
        """
    )
    result = inner.run("--equiv-trials=3")
    result.assert_outcomes(passed=2)
