"""What the report figures show, read off a CheckResult: shared by the terminal and HTML renderers.

Nothing here measures anything; it selects and arranges figures the check already computed (the
shift grid, the per-angle errors, the trials), so both renderers draw the same picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_equivariance.report.colormap import format_error

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult, ShiftGrid, Trial

#: The check function that reproduces each kind of result, for the "reproduce" hint of API results.
CHECK_FUNCTIONS = {
    "shift_equivariant": "check_shift_equivariant",
    "shift_invariant": "check_shift_invariant",
    "rotation_equivariant": "check_rotation_equivariant",
    "rotation_invariant": "check_rotation_invariant",
    "scale_equivariant": "check_scale_equivariant",
    "scale_invariant": "check_scale_invariant",
    "custom": "check_equivariant",
    "e3_equivariant": "check_e3_equivariant",
    "e3_invariant": "check_e3_invariant",
    "permutation_equivariant": "check_permutation_equivariant",
    "permutation_invariant": "check_permutation_invariant",
}


@dataclass(frozen=True)
class AnglePoint:
    """The error of a check at one rotation angle; ``passed`` is None when only the error is known."""

    angle: float  # the x position: degrees, or pixels for a sub-pixel shift series
    error: float
    passed: bool | None = None
    unit: str = "°"

    def fails(self, atol: float | None) -> bool:
        """Return whether the angle fails: its own verdict, else an error above ``atol`` (NaN fails)."""
        if self.passed is not None:
            return not self.passed
        return atol is not None and not self.error <= atol

    @property
    def label(self) -> str:
        """The position as the figures print it: ``45°``, ``0.5 px``."""
        return f"{self.angle:g}{self.unit}"


@dataclass(frozen=True)
class GridView:
    """A shift grid reduced to at most a given number of rows and columns (block maxima)."""

    offsets_y: list[int]  # the first dy of each block
    offsets_x: list[int]
    errors: list[list[float]]
    factor_y: int
    factor_x: int


def angle_series(result: "CheckResult") -> list[AnglePoint]:
    """Return the error at each rotation angle, sorted by angle; empty for checks without angles.

    Uses ``result.angle_errors`` when the check filled it, else the trials' ``angle`` or rot90 ``k``
    parameters; several trials at one angle show their largest error (and fail if any failed).
    """
    if result.angle_errors:
        points = (AnglePoint(float(a), float(e)) for a, e in result.angle_errors)
        return sorted(points, key=lambda p: p.angle)
    by_angle: dict[float, AnglePoint] = {}
    for trial in result.trials:
        params = trial.params or {}
        if "angle" in params:
            angle = float(params["angle"])
        elif "k" in params and not result.kind.startswith("shift"):
            angle = float(params["k"]) * 90.0 % 360.0
        else:
            continue
        old = by_angle.get(angle)
        if old is None:
            by_angle[angle] = AnglePoint(angle, trial.max_abs, trial.passed)
        else:
            by_angle[angle] = AnglePoint(
                angle, _nanmax(old.error, trial.max_abs), bool(old.passed and trial.passed)
            )
    return [by_angle[a] for a in sorted(by_angle)]


def shift_series(result: "CheckResult") -> list[AnglePoint]:
    """Return the error at each sub-pixel shift, by its length in pixels; empty without such shifts.

    Integer shifts are left out (the heatmap shows those): the curve is the error against
    fractional shifts, where band-limited models are judged (Michaeli & Soudry; StyleGAN3's EQ-T_frac).
    """
    points = []
    for trial in result.trials:
        shift = (trial.params or {}).get("shift")
        if not shift or all(float(d).is_integer() for d in shift):
            continue
        length = math.sqrt(sum(float(d) ** 2 for d in shift))
        points.append(AnglePoint(round(length, 4), trial.max_abs, trial.passed, unit=" px"))
    return sorted(points, key=lambda p: (p.angle, -p.error))


def scale_series(result: "CheckResult") -> list[AnglePoint]:
    """Return the error at each rescaling factor, sorted by factor; empty for checks without rescalings."""
    points = [AnglePoint(float(t.params["scale"]), t.max_abs, t.passed, unit="×")
              for t in result.trials if "scale" in (t.params or {})]
    return sorted(points, key=lambda p: p.angle)


def reduce_grid(grid: "ShiftGrid", max_rows: int, max_cols: int) -> GridView:
    """Return ``grid`` reduced by block maxima to at most ``max_rows`` x ``max_cols`` cells.

    Maxima rather than means, so a single bad shift is never averaged away.
    """
    rows, cols = len(grid.errors), len(grid.errors[0]) if grid.errors else 0
    fy = max(1, math.ceil(rows / max(1, max_rows)))
    fx = max(1, math.ceil(cols / max(1, max_cols)))
    errors = [
        [
            _block_max(grid.errors, i, j, fy, fx)
            for j in range(0, cols, fx)
        ]
        for i in range(0, rows, fy)
    ]
    return GridView(
        offsets_y=list(grid.offsets_y[::fy]),
        offsets_x=list(grid.offsets_x[::fx]),
        errors=errors,
        factor_y=fy,
        factor_x=fx,
    )


def worst_shift(grid: "ShiftGrid") -> tuple[int, int, float] | None:
    """Return ``(dy, dx, error)`` of the grid's largest error (NaN counts as largest), or None."""
    best: tuple[int, int, float] | None = None
    for i, row in enumerate(grid.errors):
        for j, value in enumerate(row):
            if best is None or _bigger(value, best[2]):
                best = (grid.offsets_y[i], grid.offsets_x[j], value)
    return best


def count_above(grid: "ShiftGrid", threshold: float) -> int:
    """Return how many shifts of the grid have an error above ``threshold`` (NaN counts)."""
    return sum(1 for row in grid.errors for v in row if not v <= threshold)


@dataclass(frozen=True)
class Figure:
    """One classifier figure as the reports show it: what, its value, and the limit that judged it."""

    name: str
    value: str
    limit: str = ""


def classifier_figures(result: "CheckResult") -> list[Figure]:
    """Return the figures of a classifier over a data set: images, protocol, accuracies, consistency.

    Empty when the check measured none (not a classifier, no labels, one batch of noise).
    """
    out = []
    if result.protocol:
        out.append(Figure("protocol", result.protocol))
    if result.images and (result.consistency is not None or result.accuracy is not None
                          or result.transformed_accuracy is not None):
        out.append(Figure("images", f"{result.images:,}"))
    if result.accuracy is not None:
        out.append(Figure("accuracy (untransformed)", percent(result.accuracy)))
    moved = result.transformed_accuracy
    if moved is not None:
        limits = []
        if result.min_accuracy is not None:
            limits.append(f"min_accuracy={percent(result.min_accuracy)}")
        if result.max_accuracy_drop is not None:
            limits.append(f"max_accuracy_drop={percent(result.max_accuracy_drop)}")
        out.append(Figure("accuracy under the transforms (mean)", percent(moved), ", ".join(limits)))
    if result.worst_case_accuracy is not None:
        out.append(Figure("accuracy under every transform", percent(result.worst_case_accuracy)))
    if result.consistency is not None:
        limit = f"min_consistency={percent(result.min_consistency)}" if result.min_consistency is not None else ""
        out.append(Figure("top-1 consistency (mean)", percent(result.consistency), limit))
    if result.prob_change is not None:
        out.append(Figure("mean |Δp(top class)|", f"{result.prob_change:.4g}"))
    if result.all_shift_consistency is not None:
        out.append(Figure("consistent under every transform", percent(result.all_shift_consistency)))
    return out


def set_figures(trial: "Trial") -> list[Figure]:
    """Return what matching found for a trial of detection sets (empty for other outputs)."""
    if trial.matched is None:
        return []
    out = [
        Figure("displacement (max, px)", format_error(trial.max_abs)),
        Figure("displacement (mean, px)", format_error(trial.mean_abs)),
        Figure("matched", f"{trial.matched:,}"),
        Figure("appeared", f"{trial.appeared:,}"),
        Figure("vanished", f"{trial.vanished:,}"),
    ]
    if trial.mean_iou is not None:
        out.append(Figure("IoU (mean / min)", f"{trial.mean_iou:.4g} / {trial.min_iou:.4g}"))
    if trial.score_change is not None:
        out.append(Figure("score change (max)", format_error(trial.score_change)))
    if trial.mask_iou is not None:
        out.append(Figure("mask IoU (mean)", f"{trial.mask_iou:.4g}"))
        out.append(Figure("mask change (max)", format_error(trial.mask_change)))
    return out


def set_headline(trial: "Trial") -> str | None:
    """One phrase for a detection-set trial: how far boxes moved and how many detections came or went."""
    if trial.matched is None:
        return None
    return (f"matched detections moved {format_error(trial.max_abs)} px beyond the transform, {trial.appeared} appeared and "
            f"{trial.vanished} vanished ({trial.matched} matched)")


def classifier_verdict(result: "CheckResult") -> str | None:
    """Return the classifier criterion that failed a check (``"top-1 accuracy 81.0% < ..."``), or None."""
    return result.classifier_failure()


def percent(value: float) -> str:
    """A fraction as a percentage with one decimal: ``0.912 -> 91.2%``."""
    return f"{value:.1%}"


def title_of(result: "CheckResult", index: int) -> str:
    """Return the name a report shows for a result: its test id, or its kind and position."""
    return result.test_id or f"{result.kind} #{index}"


def reproduce_hint(result: "CheckResult") -> str:
    """Return the command (or, for API results, the call) that reproduces ``result``."""
    if result.reproduce:
        return result.reproduce
    function = CHECK_FUNCTIONS.get(result.kind, "check_equivariant")
    return f"{function}(model, inputs, seed={result.seed})"


def _block_max(errors: list[list[float]], i: int, j: int, fy: int, fx: int) -> float:
    out = -math.inf
    for row in errors[i : i + fy]:
        for value in row[j : j + fx]:
            out = _nanmax(out, value)
    return out


def _nanmax(a: float, b: float) -> float:
    # NaN is the worst possible error, so it wins.
    if a != a or b != b:
        return math.nan
    return a if a >= b else b


def _bigger(a: float, b: float) -> bool:
    if b != b:
        return False
    return a != a or a > b
