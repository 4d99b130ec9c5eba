"""Outputs that are coordinates: points and boxes move with the input, by the stated convention.

The keypoint models end in a *circular* soft-argmax (the circular mean of each heatmap's softmax
along x and along y), which a circular shift moves exactly, modulo the image size; with
circular-padded convolutions the whole model is then exactly shift-equivariant in coordinates.
Mirror-symmetric and rot90-symmetric kernels make it flip- and rot90-equivariant; a pair of
mirrored kernels makes two keypoints trade places under a flip (``flip_pairs``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_equivariance import (
    EquivarianceUsageError,
    boxes,
    check_rotation_equivariant,
    check_shift_equivariant,
    points,
)
from pytest_equivariance.check import geometry
from pytest_equivariance.check.transforms import flip, rot90, rotation, shift

SHAPE = (3, 1, 16, 16)


def _example(name: str):
    """A module of the example suite (``examples/``), loaded by path: the models it documents are tested here."""
    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The circular mean of each heatmap's softmax along x and y: exact under circular shifts.
circular_soft_argmax = _example("locating").circular_soft_argmax


class Keypoints(nn.Module):
    """Circular 3x3 convolutions to ``K`` heatmaps, then the circular soft-argmax; ``pool`` subsamples first."""

    def __init__(self, kernels: torch.Tensor, pool: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, len(kernels), 3, padding=1, padding_mode="circular", bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(kernels.unsqueeze(1))
        self.pool = nn.MaxPool2d(2) if pool else None

    def forward(self, x):
        heat = self.conv(x)
        if self.pool is None:
            return circular_soft_argmax(heat)
        return 2 * circular_soft_argmax(self.pool(heat))  # coordinates of the coarse grid, in input pixels


def kernels() -> torch.Tensor:
    """A mirror- and rot90-symmetric kernel, then a kernel and its mirror image (a left/right pair)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 3, generator=g)
    symmetric = sum(torch.rot90(a, k) for k in range(4)) + sum(torch.rot90(a.flip(-1), k) for k in range(4))
    left = torch.randn(3, 3, generator=g)
    return torch.stack([symmetric / 8, left, left.flip(-1)])


class BoxAround(nn.Module):
    """A box of half-size 2 around each keypoint, in ``format``."""

    def __init__(self, format: str) -> None:
        super().__init__()
        self.points = Keypoints(kernels()[:1])
        self.format = format

    def forward(self, x):
        c = self.points(x)[:, 0]
        if self.format == "cxcywh":
            return torch.cat([c, torch.full_like(c, 4.0)], -1)
        return torch.cat([c - 2, c + 2], -1)


def test_circular_shifts_move_points_exactly_modulo_the_image():
    model = Keypoints(kernels())
    result = check_shift_equivariant(model, input_shape=SHAPE, output_fields=points(), trials=12, max_shift=15)
    assert result.passed, result.worst
    assert result.worst_error < 1e-3  # pixels
    assert any("moved as points" in note for note in result.notes)


def test_a_flip_swaps_the_keypoints_of_a_left_right_pair():
    model = Keypoints(kernels())
    paired = check_rotation_equivariant(model, input_shape=SHAPE, angles=["hflip"], output_fields=points(flip_pairs=[(1, 2)]))
    assert paired.passed, paired.worst
    unpaired = check_rotation_equivariant(model, input_shape=SHAPE, angles=["hflip"], output_fields=points())
    assert not unpaired.passed and unpaired.worst_error > 0.5  # keypoints 1 and 2 land on each other's places


def test_quarter_turns_move_points_about_the_centre():
    model = Keypoints(kernels()[:1])
    result = check_rotation_equivariant(model, input_shape=SHAPE, output_fields=points())
    assert result.passed, result.worst
    assert [t.transform for t in result.trials] == ["rot90 ×1", "rot90 ×2", "rot90 ×3"]


def test_subsampled_heatmaps_miss_odd_shifts_by_a_pixel():
    model = Keypoints(kernels()[:1], pool=True)
    even = check_shift_equivariant(model, input_shape=SHAPE, output_fields=points(), shifts=[(2, 0), (0, 4)])
    odd = check_shift_equivariant(model, input_shape=SHAPE, output_fields=points(), shifts=[(1, 0), (0, 1)])
    assert even.passed, even.worst
    assert not odd.passed and 0.05 < odd.worst_error < 2.0  # pixels off, as the report says


@pytest.mark.parametrize("format", ["xyxy", "cxcywh"])
def test_boxes_follow_shifts_flips_and_quarter_turns(format):
    model = BoxAround(format)
    assert check_shift_equivariant(model, input_shape=SHAPE, output_fields=boxes(format), max_shift=7).passed
    rotated = check_rotation_equivariant(model, input_shape=SHAPE, angles=[90, 180, "hflip", "vflip"],
                                         output_fields=boxes(format))
    assert rotated.passed, rotated.worst


def test_the_convention_on_hand_made_coordinates():
    frame = (8, 6)  # W, H
    pt = torch.tensor([[[1.5, 0.5]]])  # the centre of pixel (row 0, column 1)
    move = lambda t: geometry.move(points(), t, pt, frame)[0, 0].tolist()  # noqa: E731
    assert move(shift((2, -1), (-2, -1), "circular")) == [0.5, 2.5]
    assert move(flip(-1, (-2, -1))) == [6.5, 0.5]
    assert move(flip(-2, (-2, -1))) == [1.5, 5.5]
    assert move(rot90(1, (-2, -1))) == pytest.approx([0.5, 6.5])  # (x, y) -> (y, W - x)
    assert move(rotation(180.0, (-2, -1))) == pytest.approx([6.5, 5.5])
    image = torch.zeros(1, 1, 6, 8)
    image[..., 0, 1] = 1.0
    turned = torch.rot90(image, 1, (-2, -1))  # where torch.rot90 puts that pixel: the same place
    row, col = (turned[0, 0] == 1).nonzero()[0].tolist()
    assert [col + 0.5, row + 0.5] == pytest.approx(move(rot90(1, (-2, -1))))
    box = torch.tensor([[1.0, 0.0, 3.0, 2.0]])
    assert geometry.move(boxes(), flip(-1, (-2, -1)), box, frame).tolist() == [[5.0, 0.0, 7.0, 2.0]]


def test_crop_and_zero_modes_compare_only_points_that_stay_inside():
    frame = (8, 8)
    pts = torch.tensor([[[0.5, 4.0], [6.0, 4.0]]])
    moved = geometry.move(points(), shift((0, 3), (-2, -1), "zero"), pts, frame)
    keep = geometry.mask(points(), shift((0, 3), (-2, -1), "zero"), moved, frame)
    assert keep.tolist() == [[[True, True], [False, False]]]


def test_wrong_declarations_get_one_sentence():
    model = Keypoints(kernels())
    with pytest.raises(EquivarianceUsageError, match=r"declared as boxes but has shape \(3, 3, 2\)"):
        check_shift_equivariant(model, input_shape=SHAPE, output_fields=boxes())
    with pytest.raises(EquivarianceUsageError, match="rotated by 30 degrees is not a box"):
        check_rotation_equivariant(BoxAround("xyxy"), input_shape=SHAPE, angles=[30], mode="interp",
                                   output_fields=boxes())
    with pytest.raises(EquivarianceUsageError, match=r"flip_pairs entry \(1, 5\) names a keypoint outside"):
        check_rotation_equivariant(model, input_shape=SHAPE, angles=["hflip"], output_fields=points(flip_pairs=[(1, 5)]))
    with pytest.raises(EquivarianceUsageError, match="not a box format"):
        boxes("xy")
    with pytest.raises(EquivarianceUsageError, match="not a geometric field"):
        check_shift_equivariant(model, input_shape=SHAPE, output_fields="vector")


class BoxesAndHeatmap(nn.Module):
    """A dict output: boxes, and the heatmap they came from (an image-shaped map)."""

    def __init__(self) -> None:
        super().__init__()
        self.boxes = BoxAround("xyxy")

    def forward(self, x):
        return {"boxes": self.boxes(x), "heatmap": self.boxes.points.conv(x)}


def test_a_dict_output_moves_its_boxes_as_boxes_and_its_map_as_a_grid():
    result = check_shift_equivariant(BoxesAndHeatmap(), input_shape=SHAPE,
                                     output_fields={"boxes": boxes(), "heatmap": "scalar"})
    assert result.passed, result.worst
    assert "output['boxes'] moved as boxes(xyxy) (x, y in input pixels; docs/geometry.md)" in result.notes
    with pytest.raises(EquivarianceUsageError, match="output_fields names the output 'scores'"):
        check_shift_equivariant(BoxesAndHeatmap(), input_shape=SHAPE, output_fields={"scores": points()})


class Brightest3d(nn.Module):
    """``(N, 1, D, H, W)`` volumes -> ``(N, 1, 3)``: the centre (x, y, z) of the brightest voxel; ``order``
    permutes the coordinates (a wrong convention)."""

    def __init__(self, order=(0, 1, 2)) -> None:
        super().__init__()
        self.order = list(order)

    def forward(self, x):
        _, _, d, h, w = x.shape
        index = x.flatten(1).argmax(1)
        k, rest = index // (h * w), index % (h * w)
        xyz = torch.stack([rest % w + 0.5, rest // w + 0.5, k + 0.5], -1).to(x.dtype)
        return xyz[:, self.order].unsqueeze(1)


VOLUMES = torch.randn(3, 1, 6, 7, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_points_in_volumes_follow_shifts_and_all_48_symmetries_of_the_cube():
    assert check_shift_equivariant(Brightest3d(), VOLUMES, mode="circular", output_fields=points(), trials=6).passed
    # A box of 6 x 7 x 8 voxels: its sides trade places under the turns, and the centre moves with them.
    result = check_rotation_equivariant(Brightest3d(), VOLUMES, group="Oh", output_fields=points())
    assert result.passed and len(result.trials) == 47 and result.worst.max_abs == 0
    swapped = check_rotation_equivariant(Brightest3d(order=(1, 0, 2)), VOLUMES, group="O", output_fields=points())
    assert not swapped.passed


class Doubled(Brightest3d):
    def forward(self, x):
        return 2 * super().forward(x)  # a shift by d moves these by 2d


def test_points_in_volumes_compare_only_what_both_crops_show():
    shifts = [(0, 0, 2), (1, -1, 0)]
    result = check_shift_equivariant(Brightest3d(), VOLUMES, mode="zero", shifts=shifts, output_fields=points(),
                                     margin=0)
    assert result.passed and all(t.max_abs == 0 for t in result.trials)
    # Something inside the strip is compared: coordinates that move twice as far fail there.
    wrong = check_shift_equivariant(Doubled(), VOLUMES, mode="zero", shifts=shifts, output_fields=points(), margin=0)
    assert all(not t.passed for t in wrong.trials)


def test_points_on_the_plane_of_a_video_and_a_signal_are_judged_by_the_dims_the_check_moves():
    class Centre(nn.Module):  # the brightest pixel of each frame's last two dims, frames averaged
        def forward(self, x):
            frames = x.mean(2)  # (N, 1, H, W)
            index = frames.flatten(1).argmax(1)
            row, col = index // frames.shape[-1], index % frames.shape[-1]
            return torch.stack([col + 0.5, row + 0.5], -1).unsqueeze(1).to(x.dtype)

    video = torch.randn(2, 1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    assert check_rotation_equivariant(Centre(), video, group="C4", output_fields=points()).passed
    with pytest.raises(EquivarianceUsageError, match="moves 1 dim"):
        check_shift_equivariant(nn.Flatten(), torch.randn(2, 1, 8), mode="circular", output_fields=points(), trials=1)


@pytest.mark.parametrize("fields, message", [
    (points(), "need a last dim of 3 (x, y, z)"),
    (boxes(), "declare 3-D coordinates as points()"),
])
def test_wrong_declarations_on_volumes_get_one_sentence(fields, message):
    class Plane(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 1, 2 if isinstance(fields, geometry.Points) else 4, dtype=x.dtype)

    with pytest.raises(EquivarianceUsageError, match=None) as info:
        check_shift_equivariant(Plane(), VOLUMES, mode="circular", output_fields=fields, trials=1)
    assert message in str(info.value)
