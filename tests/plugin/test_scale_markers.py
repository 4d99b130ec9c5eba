"""The scale markers and the fixture's scale twins: exact models pass, a 3×3 kernel fails, misuse is refused."""

from __future__ import annotations

import pytest

from pytest_equivariance.plugin.markers import allowed_keywords, marker_usage_error


def test_scale_markers_and_fixture_twins_run_checks(inner) -> None:
    inner.write(
        """
        import pytest
        from torch import nn

        def pointwise():
            return nn.Sequential(nn.Conv2d(1, 2, 1), nn.Conv2d(2, 2, 1))

        @pytest.mark.scale_equivariant(input_shape=(1, 1, 16, 16), scales=[0.5, 2], localize=False)
        def test_pointwise():
            return pointwise()

        @pytest.mark.scale_invariant(input_shape=(2, 1, 16, 16), localize=False)
        def test_pooled():
            return nn.Sequential(pointwise(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

        @pytest.mark.scale_equivariant(input_shape=(1, 1, 16, 16), scale=2)
        def test_kernel():
            return nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular")

        def test_fixture(equivariance):
            equivariance.assert_scale_equivariant(pointwise(), input_shape=(1, 1, 16, 16), scale=2, localize=False)
            result = equivariance.check_scale_equivariant(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"),
                                                          input_shape=(1, 1, 16, 16), localize=False)
            assert not result.passed and result.trials[0].transform == "scale ×0.5"
        """
    )
    result = inner.run("--equiv-trials=3")  # the run's trials draw factors; explicit scales keep theirs
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*scale_equivariant failed under scale ×2: max_abs * exceeds atol=1e-05*",
                                 "*equivariance report*"])


@pytest.mark.parametrize(
    "name, kwargs, phrase",
    [
        ("scale_invariant", {"scales": [0.5, -2]}, "positive factors"),
        ("scale_invariant", {"grid": True}, "unknown argument 'grid'"),
        ("scale_invariant", {"max_channel_error": 1e-5}, "unknown argument 'max_channel_error'"),
        ("scale_equivariant", {"mode": "circular"}, "'fourier' or 'antialias'"),
        ("shift_invariant", {"scales": [0.5]}, "other family"),
    ],
)
def test_scale_marker_arguments_are_judged_at_collection(name, kwargs, phrase) -> None:
    mark = getattr(pytest.mark, name)(**kwargs).mark
    assert phrase in marker_usage_error(mark, "t.py::t")


def test_scale_equivariant_marker_takes_fields_and_the_channel_verdict() -> None:
    assert {"output_fields", "max_channel_error", "margin", "scale_range"} <= set(allowed_keywords("scale_equivariant"))
    assert marker_usage_error(pytest.mark.scale_equivariant(scale_range=(0.5, 2), trials=3).mark, "t.py::t") is None
