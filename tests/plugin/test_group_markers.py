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


def test_the_rotation_marker_and_fixture_take_groups_of_space(inner) -> None:
    inner.write(
        """
        import pytest, torch
        from torch import nn

        class Gradient3d(nn.Module):
            def forward(self, x):
                return torch.cat([(x.roll(-1, d) - x.roll(1, d)) / 2 for d in (-1, -2, -3)], 1)

        @pytest.mark.rotation_equivariant(group="Oh", output_fields="vector", input_shape=(2, 1, 7, 7, 7))
        def test_vectors():
            return Gradient3d()

        @pytest.mark.rotation_equivariant(group="O", input_shape=(2, 1, 7, 7, 7))
        def test_claimed_scalar():
            return Gradient3d()

        def test_fixture(equivariance):
            equivariance.assert_rotation_equivariant(Gradient3d(), input_shape=(2, 1, 7, 7, 7), group="O",
                                                     output_fields="vector")
        """
    )
    result = inner.run("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*FAILED rotation_equivariant (O, exact)*"])
