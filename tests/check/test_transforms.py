"""Group actions on tensors."""

from __future__ import annotations

import pytest
import torch

from pytest_equivariance.check import transforms as T


def test_circular_shift_is_torch_roll_and_labelled():
    x = torch.arange(2 * 3 * 5 * 7.0).view(2, 3, 5, 7)
    g = T.shift((1, -3), (-2, -1))
    assert g.label == "shift (dy=+1, dx=-3)"
    assert torch.equal(g.on_input(x), torch.roll(x, (1, -3), (-2, -1)))
    assert g.reference(x) is x
    assert g.mask((2, 3, 5, 7)) is None


def test_shift_on_a_coarser_output_divides_by_the_stride():
    y = torch.randn(1, 2, 4, 4)
    g = T.shift((2, -4), (-2, -1))
    assert torch.equal(g.on_output(y, (2, 2)), torch.roll(y, (1, -2), (-2, -1)))
    assert T.output_shift((2, -4), (2, 4)) == (1, -1)
    with pytest.raises(ValueError, match="not a multiple"):
        T.output_shift((1, 0), (2, 2))


def test_zero_shift_fills_with_zeros_and_masks_what_came_in():
    x = torch.arange(1, 17.0).view(1, 1, 4, 4)
    g = T.shift((1, -2), (-2, -1), "zero")
    out = g.on_input(x)
    assert out[0, 0, 0].abs().sum() == 0 and out[0, 0, :, 2:].abs().sum() == 0
    assert torch.equal(out[0, 0, 1:, :2], x[0, 0, :3, 2:])
    mask = g.mask((1, 1, 4, 4))
    assert mask[0, 0].tolist() == [[False] * 4] + [[True, True, False, False]] * 3
    # A margin of 1 more at every border: rows 2..4 and columns 1..2 of a 6x6 output.
    with_margin = g.mask((1, 1, 6, 6), margin=1)[0, 0]
    assert with_margin.nonzero().tolist() == [[r, c] for r in (2, 3, 4) for c in (1, 2)]


def test_crop_shift_moves_the_window_over_the_canvas():
    canvas = torch.randn(1, 1, 10, 12)
    g = T.shift((2, -1), (-2, -1), "crop", canvas=(3, 3))
    ref, moved = g.reference(canvas), g.on_input(canvas)
    assert ref.shape == moved.shape == (1, 1, 4, 6)
    assert torch.equal(ref, canvas[..., 3:7, 3:9])
    # Content moves by +2 rows and -1 column: where both crops see it, it agrees with a roll.
    assert torch.equal(moved[..., 2:, :-1], ref[..., :-2, 1:])


def test_quarter_turns_and_flips():
    x = torch.randn(1, 2, 5, 5)
    assert torch.equal(T.rot90(1).on_input(x), torch.rot90(x, 1, (-2, -1)))
    assert T.rot90(5).params == {"k": 1} and T.rot90(-1).label == "rot90 ×3"
    assert torch.equal(T.flip(-1).on_input(x), x.flip(-1))
    assert T.flip(-2).label == "flip H"


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_by_interpolation_matches_rot90_on_quarter_turns(k):
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    assert torch.allclose(T.rotate(x, 90.0 * k), torch.rot90(x, k, (-2, -1)), atol=1e-12)


def test_rotation_then_inverse_rotation_is_close_inside_the_disk_for_smooth_images():
    from pytest_equivariance.inputs import natural_images

    x = natural_images((1, 1, 32, 32), seed=0, exponent=2.0, dtype=torch.float64)
    back = T.rotate(T.rotate(x, 30.0), -30.0)
    disk = T.disk_mask(x.shape, margin=3) > 0
    assert (back - x)[disk.expand_as(x)].abs().max() < 0.25


def test_disk_mask_is_symmetric_under_quarter_turns_and_flips():
    for n in (8, 9):
        m = T.disk_mask((1, 1, n, n))
        assert torch.equal(m, torch.rot90(m, 1, (-2, -1)))
        assert torch.equal(m, m.flip(-1))
        assert m[0, 0, 0, 0] == 0 and m[0, 0, n // 2, n // 2] == 1
    assert T.disk_mask((1, 1, 8, 8), margin=2).sum() < T.disk_mask((1, 1, 8, 8)).sum()


def test_interp_transform_masks_its_reference_and_compares_the_disk():
    x = torch.ones(1, 1, 10, 10)
    g = T.rotation(30)
    assert g.reference(x)[0, 0, 0, 0] == 0
    mask = g.mask((1, 1, 10, 10))
    assert mask.dtype == torch.bool and mask.shape == (1, 1, 10, 10)
    # Pixel centres sit at i - 4.5; the inscribed disk keeps y**2 + x**2 <= 5**2. Row 0 (y**2 = 20.25)
    # keeps |x| <= 2.2, four pixels; rows 1-2 keep |x| <= 3.6 and 4.3, eight; rows 3-6 keep all ten.
    corner, edge, full = [0, 0, 0, 1, 1, 1, 1, 0, 0, 0], [0] + [1] * 8 + [0], [1] * 10
    expected = [corner, edge, edge, full, full, full, full, edge, edge, corner]
    assert mask[0, 0].int().tolist() == expected


def test_custom_transform_uses_the_given_functions():
    g = T.custom(lambda x: x * 2, None)
    assert g.label == "custom"
    x = torch.ones(2)
    assert torch.equal(g.on_input(x), x * 2) and g.on_output(x) is x
    named = T.custom(torch.neg, torch.neg)
    assert named.label == "neg" and torch.equal(named.on_output(x), -x)


def test_transforms_are_frozen_and_comparable():
    assert T.shift((1, 0), (-2, -1)) == T.shift((1, 0), (-2, -1))
    with pytest.raises(AttributeError):
        T.rot90(1).label = "x"  # type: ignore[misc]


def test_transforms_hash_by_what_they_are():
    assert len({T.shift((1, 0), (-2, -1)), T.shift((1, 0), (-2, -1)), T.rot90(1)}) == 2
