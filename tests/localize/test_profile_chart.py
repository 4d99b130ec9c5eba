"""The per-layer bar chart: culprit marked, noise floor drawn, clean runs collapsed, tail summarised."""

from __future__ import annotations

from rich.console import Console

from pytest_equivariance.check.result import LayerError, Profile
from pytest_equivariance.report.profile import (
    AFTER_CULPRIT,
    bar_cells,
    chart_rows,
    profile_renderable,
    profile_text,
)

NOISE = 1e-5


def clean(name: str) -> LayerError:
    return LayerError(name, "Conv2d", 1e-16, NOISE)


def broken(name: str, error: float = 0.2, op: str = "Conv2d") -> LayerError:
    return LayerError(name, op, error, NOISE)


def make_profile(n_clean: int = 8, n_after: int = 10) -> Profile:
    culprit = LayerError("features.pool", "MaxPool2d", 0.31, NOISE, params={"kernel_size": 2, "stride": 2})
    layers = [clean(f"features.{i}") for i in range(n_clean)] + [culprit]
    layers += [broken(f"head.{i}", 0.1 + i / 100) for i in range(n_after)]
    return Profile(
        layers=layers,
        culprit=culprit,
        finding_code="EQ001",
        finding_fix="Take the max with stride 1, then blur-subsample.\n\nself.pool = MaxBlurPool2d(2, stride=2)",
        method="relative change of |DFT| over the spatial dims",
        transform="shift (dy=+1, dx=-3)",
    )


def test_text_names_culprit_finding_and_fix() -> None:
    text = profile_text(make_profile())

    culprit_line = next(line for line in text.splitlines() if "▶" in line)
    assert "features.pool" in culprit_line and "MaxPool2d" in culprit_line and "first break" in culprit_line
    assert "equivariance first breaks at features.pool: MaxPool2d(kernel_size=2, stride=2)" in text
    assert "EQ001: Take the max with stride 1" in text
    assert "self.pool = MaxBlurPool2d(2, stride=2)" in text
    assert "shift (dy=+1, dx=-3)" in text.splitlines()[0]


def test_clean_runs_collapse_and_tail_is_summarised() -> None:
    profile = make_profile(n_clean=8, n_after=10)
    text = profile_text(profile)

    assert "⋯ 6 clean layers ⋯" in text
    assert "features.0" in text and "features.7" in text and "features.3 " not in text
    assert f"⋯ {10 - AFTER_CULPRIT} more layers, largest error 0.19 at head.9 ⋯" in text
    assert len(text.splitlines()) < len(profile.layers)


def test_short_profiles_are_shown_whole() -> None:
    profile = make_profile(n_clean=3, n_after=2)
    rows = chart_rows(profile)
    assert [row.layer.qualname for row in rows if row.layer] == [layer.qualname for layer in profile.layers]


def test_bar_shades_below_floor_and_marks_it() -> None:
    lo, hi = -8.0, 0.0
    below = bar_cells(1e-7, 1e-5, lo, hi, width=16)
    above = bar_cells(0.1, 1e-5, lo, hi, width=16)

    assert [c for c, _ in below].count("┊") == 1 and "█" not in [c for c, _ in below]
    assert "░" in [c for c, _ in above] and [c for c, _ in above].count("█") > 4
    # the shading changes where the floor is
    first_solid = [c for c, _ in above].index("█")
    assert first_solid == [c for c, _ in below].index("┊")


def test_clean_profile_says_so() -> None:
    profile = Profile(layers=[clean(f"l{i}") for i in range(3)], method="m")
    text = profile_text(profile)
    assert "no layer rises above its noise floor" in text and "▶" not in text


def test_rich_chart_matches_the_text() -> None:
    console = Console(record=True, width=120, color_system=None)
    console.print(profile_renderable(make_profile()))
    shown = console.export_text()
    assert "▶ features.pool" in shown and "EQ001" in shown and "⋯ 6 clean layers ⋯" in shown


def test_empty_profile_renders() -> None:
    profile = Profile(layers=[], method="not localised: a custom transform has no defined action")
    assert "no layer could be measured" in profile_text(profile)
    Console(record=True, width=80).print(profile_renderable(profile))


def test_rich_chart_fits_a_narrow_console() -> None:
    profile = make_profile()
    console = Console(record=True, width=72, color_system=None)
    console.print(profile_renderable(profile))
    rows = [line for line in console.export_text().splitlines() if "│" in line]
    assert rows and all(len(line) <= 72 for line in rows)
    assert "▶ features.pool" in next(line for line in rows if "▶" in line)
