"""Detection sets: matched by an optimal assignment, then measured; exact for an exactly equivariant detector.

The detector here is equivariant by construction: circular convolutions to class heatmaps, peaks
found by a circular 3x3 non-maximum suppression above a fixed threshold, and a box of fixed size
centred on each peak's pixel centre. A circular shift moves every peak, so every box, by the shift
exactly (modulo the image); a stride-2 max pool on the heatmap quantises the peaks to 2 pixels, so an
odd shift moves the boxes by one pixel more or less than the image — the figures must say so.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_equivariance import (
    CheckResult,
    EquivarianceUsageError,
    check_rotation_equivariant,
    check_shift_equivariant,
    detections,
)
from pytest_equivariance.check.assignment import linear_sum_assignment
from pytest_equivariance.check.transforms import shift
from pytest_equivariance.report.html import render_html
from pytest_equivariance.report.terminal import quiet_lines
from pytest_equivariance.report.text import format_result

X = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))


def symmetric_kernels(classes: int) -> torch.Tensor:
    """Random 5x5 kernels averaged over the square's eight symmetries (rot90 and flips)."""
    k = torch.randn(classes, 1, 5, 5, generator=torch.Generator().manual_seed(0)) / 5
    turns = [torch.rot90(k, r, (-2, -1)) for r in range(4)]
    return sum(turns + [t.flip(-1) for t in turns]) / 8


class HeatmapDetector(nn.Module):
    """Class heatmaps -> circular 3x3 NMS -> fixed-size boxes (and two keypoints) around each peak."""

    def __init__(self, *, pool: bool = False, threshold: float = 0.6, padding_mode: str = "circular") -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 5, padding=2, padding_mode=padding_mode, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(symmetric_kernels(2))
        self.pool, self.threshold = pool, threshold

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        heat, step = self.conv(x), 1
        if self.pool:
            heat, step = F.max_pool2d(heat, 2), 2
        around = F.max_pool2d(F.pad(heat, (1, 1, 1, 1), mode="circular"), 3, 1)
        peaks = (heat == around) & (heat > self.threshold)
        out = []
        for n in range(x.shape[0]):
            c, i, j = peaks[n].nonzero(as_tuple=True)
            cx, cy = (j.to(x.dtype) + 0.5) * step, (i.to(x.dtype) + 0.5) * step
            # A left and a right keypoint two pixels either side of the centre: a flip swaps them.
            keypoints = torch.stack((torch.stack((cx - 2, cy), -1), torch.stack((cx + 2, cy), -1)), 1)
            out.append({"boxes": torch.stack((cx - 3, cy - 3, cx + 3, cy + 3), -1), "labels": c,
                        "scores": heat[n, c, i, j], "keypoints": keypoints})
        return out


def test_the_test_detector_finds_a_few_dozen_objects_per_image():
    counts = [len(d["boxes"]) for d in HeatmapDetector()(X)]
    assert all(10 <= n <= 100 for n in counts), counts


def test_an_exactly_equivariant_detector_passes_with_zero_displacement_and_nothing_unmatched():
    result = check_shift_equivariant(HeatmapDetector(), inputs=X, mode="circular", output_fields=detections(),
                                     trials=8, max_shift=16)
    assert result.passed
    for t in result.trials:
        assert t.max_abs == 0 and t.appeared == 0 and t.vanished == 0 and t.score_change == 0
        assert t.matched == sum(len(d["boxes"]) for d in HeatmapDetector()(X))
        assert t.min_iou == 1 and t.mean_iou == 1


def test_a_subsampled_heatmap_fails_and_the_figures_say_by_how_many_pixels():
    shifts = [(0, 1), (1, 0), (2, 2), (0, 3)]
    result = check_shift_equivariant(HeatmapDetector(pool=True), inputs=X, mode="circular",
                                     output_fields=detections(), shifts=shifts)
    assert not result.passed
    by_shift = {tuple(t.params["shift"]): t for t in result.trials}
    assert by_shift[(2, 2)].passed and by_shift[(2, 2)].max_abs == 0  # even shifts move the coarse grid exactly
    for odd in [(0, 1), (1, 0), (0, 3)]:
        t = by_shift[odd]
        assert not t.passed
        assert t.max_abs == 1.0  # a box lands one pixel off: on the coarse grid's other phase
        assert t.matched > 0 and t.min_iou == pytest.approx(5 / 7)  # 6x6 boxes one pixel apart
    assert "matched detections moved 1 px beyond the transform" in quiet_lines([result])[0]


def test_quarter_turns_move_boxes_and_a_flip_swaps_keypoints_only_with_flip_pairs():
    rotated = check_rotation_equivariant(HeatmapDetector(), inputs=X, group="D4", output_fields=detections())
    assert rotated.passed and all(t.max_abs == 0 and t.appeared == t.vanished == 0 for t in rotated.trials)
    # The keypoints are "left" and "right" of each box in the image, so a mirror swaps them.
    flipped = dict(inputs=X, group="D1")
    paired = check_rotation_equivariant(HeatmapDetector(), output_fields=detections(points="keypoints",
                                                                                     flip_pairs=[(0, 1)]), **flipped)
    assert paired.passed and all(t.max_abs == 0 and t.appeared == t.vanished == 0 for t in paired.trials)
    unpaired = check_rotation_equivariant(HeatmapDetector(), output_fields=detections(points="keypoints"), **flipped)
    assert not unpaired.passed
    (failed,) = [t for t in unpaired.trials if not t.passed]
    assert "flip" in failed.transform and failed.max_abs == 4.0  # each keypoint lands on its partner, 4 px away


def test_keypoint_only_sets_match_by_distance():
    fields = detections(boxes=None, points="keypoints", match_distance=1.5)
    result = check_shift_equivariant(HeatmapDetector(), inputs=X, mode="circular", output_fields=fields, trials=3)
    assert result.passed and all(t.matched and t.mean_iou is None for t in result.trials)
    coarse = check_shift_equivariant(HeatmapDetector(pool=True), inputs=X, mode="circular", output_fields=fields,
                                     shifts=[(0, 1)])
    assert not coarse.passed and coarse.trials[0].max_abs == 1.0


def test_crop_mode_compares_only_detections_wholly_inside_and_a_zero_padded_detector_passes():
    # Zero padding changes the heatmap two pixels from the border; a box wholly inside the image has its
    # centre three pixels in, whose peak test reads only pixels that every crop holds.
    model = HeatmapDetector(padding_mode="zeros")
    result = check_shift_equivariant(model, inputs=X, mode="crop", max_shift=4, trials=6, output_fields=detections())
    assert result.passed and all(t.matched > 0 for t in result.trials)


def test_tolerances_per_figure_turn_a_failure_into_a_pass():
    loose = detections(max_displacement=1.0, max_unmatched=20, min_iou=0.5)
    result = check_shift_equivariant(HeatmapDetector(pool=True), inputs=X, mode="circular", output_fields=loose,
                                     shifts=[(0, 1), (1, 1)])
    assert result.passed
    strict = detections(max_displacement=0.99, max_unmatched=20)
    assert not check_shift_equivariant(HeatmapDetector(pool=True), inputs=X, mode="circular", output_fields=strict,
                                       shifts=[(0, 1)]).passed


def test_reports_carry_the_matching_figures():
    result = check_shift_equivariant(HeatmapDetector(pool=True), inputs=X, mode="circular",
                                     output_fields=detections(), shifts=[(0, 1)])
    text = format_result(result)
    assert "appeared" in text and "vanished" in text and "IoU (mean / min)" in text
    assert "per-layer localisation skipped: the output is coordinates" in text
    html = render_html([result])
    assert "<th class=\"num\">matched</th>" in html and "min IoU" in html
    carried = CheckResult.from_json(json.loads(json.dumps(result.to_json())))  # xdist workers, --equiv-json
    assert carried.trials == result.trials and carried.trials[0].appeared == result.trials[0].appeared > 0


def test_the_grid_maps_the_displacement_of_every_shift():
    small = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    result = check_shift_equivariant(HeatmapDetector(pool=True), inputs=small, mode="circular",
                                     output_fields=detections(max_unmatched=100), shifts=[(0, 1)], grid=True)
    grid = result.grid
    assert grid.figure == "displacement" and grid.offsets_y == grid.offsets_x == list(range(16))
    for dy, row in zip(grid.offsets_y, grid.errors):
        for dx, error in zip(grid.offsets_x, row):
            assert (error == 0) == (dy % 2 == 0 and dx % 2 == 0), (dy, dx, error)  # the coarse grid's lattice
    assert "displacement of the coordinates (px) for each of 256 shifts; 192 above atol" in render_html([result])


class Raw(nn.Module):
    """Returns whatever it was built with, for the declarations' errors."""

    def __init__(self, output) -> None:
        super().__init__()
        self.output = output

    def forward(self, x):
        return self.output(x) if callable(self.output) else self.output


def one_box(x: torch.Tensor, **extra) -> list[dict[str, torch.Tensor]]:
    return [{"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0]]), "labels": torch.tensor([0]),
             "scores": torch.tensor([0.5]), **extra} for _ in range(x.shape[0])]


@pytest.mark.parametrize("model, fields, message", [
    (Raw(lambda x: x), detections(), "expects the model to return a list with one set of detections per image"),
    (Raw(one_box), detections(scores="score"), "have no entry 'score' for the scores"),
    (Raw(lambda x: one_box(x, boxes=torch.zeros(1, 5))), detections(), "boxes of image 0's detections have shape (1, 5)"),
    (Raw(lambda x: one_box(x, labels=torch.zeros(2))), detections(), "have different lengths ([1, 2])"),
    (Raw(lambda x: [{"boxes": torch.rand(3, 4), "labels": torch.zeros(3), "scores": torch.zeros(3)}] * x.shape[0]),
     detections(max_detections=2), "Image 0 has 3 detections, more than max_detections=2"),
    (Raw(lambda x: [{"boxes": torch.empty(0, 4), "labels": torch.empty(0), "scores": torch.empty(0)}] * x.shape[0]),
     detections(), "No detection lay inside the compared region"),
])
def test_wrong_outputs_get_one_sentence(model, fields, message):
    with pytest.raises(EquivarianceUsageError, match=None) as info:
        check_shift_equivariant(model, input_shape=(1, 1, 8, 8), mode="circular", output_fields=fields, trials=1)
    assert message in str(info.value)
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")


@pytest.mark.parametrize("kwargs, message", [
    (dict(format="yxyx"), "is not a box format"),
    (dict(boxes=None), "has nothing that moves"),
    (dict(min_iou=0), "min_iou=0"),
    (dict(min_iou=1.5), "min_iou=1.5"),
    (dict(max_displacement=-1), "max_displacement=-1"),
    (dict(max_unmatched=-1), "max_unmatched=-1"),
    (dict(max_detections=0), "max_detections=0"),
    (dict(flip_pairs=[(0, 1, 2)]), "is not a pair of keypoint indices"),
])
def test_wrong_declarations_get_one_sentence(kwargs, message):
    with pytest.raises(EquivarianceUsageError, match=None) as info:
        detections(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("entry", ["attribute", "lie_derivative"])
def test_derivatives_of_detection_sets_are_refused_in_one_sentence(entry):
    import pytest_equivariance

    with pytest.raises(EquivarianceUsageError, match=f"{entry}\\(\\) differentiates tensor outputs, but the model "
                                                     "returns a set of detections per image") as info:
        getattr(pytest_equivariance, entry)(HeatmapDetector(), X, "translate_x")
    assert f"{entry}(model.backbone, ...)" in str(info.value)


def test_a_rotation_by_thirty_degrees_of_boxes_is_refused():
    with pytest.raises(EquivarianceUsageError, match="rotated by 30 degrees is not a box"):
        check_rotation_equivariant(HeatmapDetector(), inputs=X, angles=[30.0], mode="interp",
                                   output_fields=detections())


# ------------------------------------------------------------------------------------------------
# The assignment solver


def brute_force(cost: torch.Tensor) -> float:
    n, m = cost.shape
    if n > m:
        return brute_force(cost.T)
    return min(sum(cost[i, j].item() for i, j in zip(range(n), cols)) for cols in itertools.permutations(range(m), n))


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (4, 6), (6, 4), (5, 5)])
def test_the_assignment_is_optimal(shape):
    gen = torch.Generator().manual_seed(sum(shape))
    for _ in range(20):
        cost = torch.randint(0, 6, shape, generator=gen).double()
        pairs = linear_sum_assignment(cost)
        assert len(pairs) == min(shape)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)
        assert sum(cost[i, j].item() for i, j in pairs) == brute_force(cost)


def test_the_assignment_beats_greedy_matching():
    # Greedy takes (0, 0) first (cost 0) and is left with (1, 1) at 10; the optimum pairs across at 2.
    cost = torch.tensor([[0.0, 1.0], [1.0, 10.0]])
    assert linear_sum_assignment(cost) == [(0, 1), (1, 0)]


def test_the_assignment_refuses_infinite_costs():
    with pytest.raises(ValueError, match="finite"):
        linear_sum_assignment(torch.tensor([[math.inf, 1.0]]))


def test_keypoint_only_sets_match_every_pair_within_the_distance():
    # Both right pairs are 3.8 px apart (within match_distance=4); the wrong pairing would leave one out.
    found = torch.tensor([[10.0, 10.0], [17.5, 10.0]])
    expected = torch.tensor([[13.8, 10.0], [21.3, 10.0]])

    def rows(points):
        return torch.cat([torch.ones(2, 1, dtype=torch.float64), points.double()], 1)

    spec = detections(boxes=None, labels=None, scores=None, points="keypoints")
    sums = spec._measure_one(rows(found), rows(expected), spec.columns(1), shift((0, 0), (-2, -1)), (32, 32),
                             1e-5, 1e-4, 0)
    assert (sums.matched, sums.appeared, sums.vanished) == (2, 0, 0)


def test_detections_inside_a_dict_of_fields_are_refused_in_one_sentence():
    with pytest.raises(EquivarianceUsageError, match="detections\\(\\) describes the whole output"):
        check_shift_equivariant(HeatmapDetector(), inputs=X, mode="circular", output_fields={0: detections()},
                                trials=1)


class MaskedDetector(HeatmapDetector):
    """The detector with an instance mask per detection: its class heatmap, squashed to a probability.

    With ``ramp``, a horizontal ramp is added to the mask (a position the image does not carry), so the
    masks stop following the image while the boxes still do.
    """

    def __init__(self, *, ramp: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ramp = ramp

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        out, heat = super().forward(x), self.conv(x)
        ramp = torch.linspace(-1, 1, x.shape[-1]) if self.ramp else torch.zeros(x.shape[-1])
        for n, found in enumerate(out):
            found["masks"] = torch.sigmoid(4 * heat[n, found["labels"]] + ramp)[:, None]  # (k, 1, H, W)
        return out


def test_masks_inside_their_boxes_follow_quarter_turns_flips_and_shifts():
    masked = detections(masks="masks")
    turned = check_rotation_equivariant(MaskedDetector(), inputs=X, group="D4", output_fields=masked)
    assert turned.passed
    for t in turned.trials:
        assert t.mask_change < 1e-6 and t.mask_iou == 1 and t.matched > 0  # the conv's float32 rounding
    # Zero padding changes the heatmap two pixels from the border, and sampling inside a box reads one
    # pixel beyond it: boxes three pixels in have masks every crop agrees on.
    shifted = check_shift_equivariant(MaskedDetector(padding_mode="zeros"), inputs=X, mode="crop", max_shift=4,
                                      trials=6, margin=3, output_fields=masked)
    assert shifted.passed and all(t.mask_change < 1e-6 for t in shifted.trials)
    # A circular detector's boxes cross the image's edges: its masks are read across them, as it wraps.
    wrapped = check_shift_equivariant(MaskedDetector(), inputs=X, mode="circular", trials=8, max_shift=16,
                                      output_fields=masked)
    assert wrapped.passed and all(t.mask_change < 1e-6 and t.mask_iou == 1 for t in wrapped.trials)
    # Non-square images: the box-aligned grids turn with the boxes under a half turn and both flips.
    wide = torch.randn(2, 1, 32, 48, generator=torch.Generator().manual_seed(2))
    assert check_rotation_equivariant(MaskedDetector(), inputs=wide, group="D2", output_fields=masked).passed


def test_masks_at_another_resolution_than_the_image_are_refused():
    class Coarse(MaskedDetector):
        def forward(self, x):
            out = super().forward(x)
            for found in out:
                found["masks"] = F.avg_pool2d(found["masks"], 2)
            return out

    with pytest.raises(EquivarianceUsageError, match=r"masks of image 0's detections are \(16, 16\) pixels but the "
                                                     r"image is \(32, 32\)"):
        check_rotation_equivariant(Coarse(), inputs=X, group="D4", output_fields=detections(masks="masks"))


def test_a_mask_that_does_not_follow_the_image_fails_on_its_masks_alone():
    masked = detections(masks="masks")
    result = check_rotation_equivariant(MaskedDetector(ramp=True), inputs=X, group="D4", output_fields=masked)
    assert not result.passed
    flip = next(t for t in result.trials if "flip" in t.transform and not t.passed)
    assert flip.max_abs == 0 and flip.appeared == flip.vanished == 0  # the boxes are right
    assert flip.mask_change > 0.1 and flip.mask_iou < 1
    loose = detections(masks="masks", max_mask_change=1.0)
    assert check_rotation_equivariant(MaskedDetector(ramp=True), inputs=X, group="D4", output_fields=loose).passed
    text = format_result(result)
    assert "mask IoU (mean)" in text and "mask change (max)" in text


def test_box_aligned_masks_sample_each_box_on_its_grid():
    from pytest_equivariance.check.detections import box_aligned

    masks = torch.zeros(1, 8, 8)
    masks[0, 2:4, 4:8] = 1.0  # rows 2-3, columns 4-7
    boxes = torch.tensor([[4.0, 2.0, 8.0, 4.0]], dtype=torch.float64)  # exactly that block, xyxy
    assert torch.equal(box_aligned(masks, boxes, 2), torch.ones(1, 4, dtype=torch.float64))
    assert box_aligned(masks, torch.tensor([[0.0, 0.0, 4.0, 2.0]], dtype=torch.float64), 2).sum() == 0
    assert box_aligned(torch.zeros(0, 8, 8), boxes[:0], 3).shape == (0, 9)
