"""Terminal figures: the shift heatmap and the angle plot, rendered by a rich Console to a string."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from pytest_equivariance.check.result import CheckResult, ShiftGrid, Trial
from pytest_equivariance.report.colormap import VIRIDIS, Scale, format_error, ramp
from pytest_equivariance.report.figures import AnglePoint, angle_series, reduce_grid, worst_shift
from pytest_equivariance.report.heatmap import angle_plot, result_figure, shift_heatmap

from report_samples import lattice_grid, rotation_failure, shift_failure, shift_pass


def render(renderable, *, colour: bool = True, width: int = 100) -> str:
    console = Console(
        file=io.StringIO(),
        width=width,
        force_terminal=colour,
        color_system="truecolor" if colour else None,
        no_color=not colour,
        legacy_windows=False,
    )
    console.print(renderable)
    return console.file.getvalue()


def test_heatmap_fits_a_32_by_32_grid_in_16_lines_with_legend() -> None:
    text = render(shift_heatmap(lattice_grid(32), atol=1e-5))
    lines = text.splitlines()
    cell_lines = [line for line in lines if "▀" in line]
    assert len(cell_lines) == 16
    assert all(line.count("▀") == 32 for line in cell_lines)
    assert "dx →" in text and "dy" in text
    assert "min 0 · max" in text and "at (dy=" in text
    assert "768/1024 shifts above atol=1.0e-05" in text
    # The largest error gets the top of the scale; the scale's ends are labelled.
    top = "{};{};{}".format(*VIRIDIS[-1])
    assert f"38;2;{top}" in text or f"48;2;{top}" in text


def test_heatmap_without_colour_uses_shades_and_keeps_the_lattice() -> None:
    text = render(shift_heatmap(lattice_grid(8), atol=1e-5), colour=False)
    assert "\x1b[" not in text
    rows = [line[6:14] for line in text.splitlines()[2:10]]
    assert rows[0][0::2] == "    "  # dy=0: even dx on the lattice, error ~0, blank
    assert " " not in rows[0][1::2]  # odd dx: aliased
    assert " " not in rows[1]  # odd dy: every shift is aliased
    assert "░" in text and "█" in text  # the legend's shades


def test_large_grids_are_reduced_by_block_maxima() -> None:
    grid = lattice_grid(64)
    view = reduce_grid(grid, 32, 48)
    assert (view.factor_y, view.factor_x) == (2, 2)
    # A block holding an odd shift shows its (large) error: the maximum, not a mean.
    assert min(min(row) for row in view.errors) > 0.01
    text = render(shift_heatmap(grid))
    assert "block max of 2x2 shifts" in text
    assert len([line for line in text.splitlines() if "▀" in line]) == 16


def test_heatmap_survives_nan_errors() -> None:
    grid = ShiftGrid([0, 1], [0, 1], [[0.0, math.nan], [0.5, 0.1]])
    assert worst_shift(grid) == (0, 1, grid.errors[0][1])
    text = render(shift_heatmap(grid, atol=0.2))
    assert "2/4 shifts above atol" in text


def test_angle_plot_marks_failing_angles_and_the_tolerance() -> None:
    points = [AnglePoint(0.0, 0.001, True), AnglePoint(45.0, 0.05, False), AnglePoint(90.0, 0.002, True)]
    text = render(angle_plot(points, atol=0.01), colour=False)
    lines = text.splitlines()
    assert lines[0].startswith("error (max_abs) by rotation angle")
    assert [line.split()[0] for line in lines[1:4]] == ["0°", "45°", "90°"]
    assert "0.05" in lines[2] and "█" * 30 in lines[2]  # the largest error spans the plot
    assert "│" in lines[1]  # the tolerance mark on a short bar
    assert "tolerance atol=0.01" in text
    coloured = render(angle_plot(points, atol=0.01))
    assert "\x1b[31m" in coloured or "\x1b[1;31m" in coloured  # red for the failing angle


def test_result_figure_picks_the_fitting_figure() -> None:
    assert "over shifts (dy, dx)" in render(result_figure(shift_failure()))
    assert "by rotation angle" in render(result_figure(rotation_failure()))
    assert result_figure(shift_pass()) is None


def test_angle_series_reads_trials_and_angle_errors() -> None:
    r = rotation_failure()
    assert [p.angle for p in angle_series(r)] == [0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0]
    quarter = CheckResult(
        "rotation_equivariant", False,
        [Trial("rot90 ×1", {"k": 1}, 0.2, 0, 0, 0, False), Trial("rot90 ×2", {"k": 2}, 0.0, 0, 0, 0, True)],
        1e-5, 1e-4, 0, "cpu", "float32", "exact", (-2, -1), (1, 3, 8, 8),
    )  # fmt: skip
    assert angle_series(quarter) == [AnglePoint(90.0, 0.2, False), AnglePoint(180.0, 0.0, True)]
    quarter.angle_errors = [(270.0, 0.3), (90.0, 0.1)]
    assert angle_series(quarter) == [AnglePoint(90.0, 0.1), AnglePoint(270.0, 0.3)]


def test_angle_point_verdict_wins_over_the_tolerance() -> None:
    assert AnglePoint(45.0, 0.5, True).fails(0.01) is False  # the check's own verdict decides
    assert AnglePoint(45.0, 0.0, False).fails(0.01) is True
    assert AnglePoint(45.0, 0.5).fails(0.01) and not AnglePoint(45.0, 0.005).fails(0.01)
    assert AnglePoint(45.0, math.nan).fails(0.01)  # NaN is the worst error
    assert not AnglePoint(45.0, 0.5).fails(None)  # no verdict and no tolerance: nothing to fail
    assert AnglePoint(22.5, 0.0).label == "22.5°"


def test_colour_scale_starts_at_zero_and_respects_the_tolerance() -> None:
    scale = Scale([1e-7, 2e-7], floor=1e-5)
    assert scale.vmax == 1e-5
    assert scale.colour(2e-7) == ramp(0.02)  # float noise stays dark under the tolerance
    assert ramp(0.0) == VIRIDIS[0] and ramp(1.0) == VIRIDIS[-1] and ramp(math.nan) == VIRIDIS[-1]


@pytest.mark.parametrize(
    ("value", "text"), [(0.0, "0"), (3.1e-7, "3.1e-07"), (0.0421, "0.0421"), (1.25, "1.25"), (math.inf, "inf")]
)
def test_format_error(value: float, text: str) -> None:
    assert format_error(value) == text
