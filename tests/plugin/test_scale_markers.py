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
        ("scale_invariant", {"protocol": "zhang2019"}, "pass one of 'azulay2019', or a Protocol"),
        ("scale_equivariant", {"protocol": "azulay2019"}, "applies to shift_invariant and scale_invariant only"),
    ],
)
def test_scale_marker_arguments_are_judged_at_collection(name, kwargs, phrase) -> None:
    mark = getattr(pytest.mark, name)(**kwargs).mark
    assert phrase in marker_usage_error(mark, "t.py::t")


def test_scale_equivariant_marker_takes_fields_and_the_channel_verdict() -> None:
    assert {"output_fields", "max_channel_error", "margin", "scale_range"} <= set(allowed_keywords("scale_equivariant"))
    assert marker_usage_error(pytest.mark.scale_equivariant(scale_range=(0.5, 2), trials=3).mark, "t.py::t") is None


def test_the_scale_invariant_marker_runs_azulay_and_weiss_scaling_setting(inner) -> None:
    inner.write(
        """
        import pytest
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset

        @pytest.fixture
        def equiv_inputs():
            images = torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(0))
            return DataLoader(TensorDataset(images, torch.zeros(8, dtype=torch.long)), batch_size=4)

        def by_brightness(threshold):
            # Class 0 when the canvas's mean is above the threshold: a 12x12 image of mean 0.5 in a 24x24
            # canvas gives 0.125, the same image one pixel larger 0.147.
            head = nn.Linear(1, 2)
            with torch.no_grad():
                head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
                head.bias.copy_(torch.tensor([-threshold, threshold]))
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)

        @pytest.mark.scale_invariant(protocol="azulay2019", input_shape=(1, 1, 24, 24), min_consistency=0.9)
        def test_a_threshold_outside_the_growth_keeps_every_class():
            return by_brightness(0.3)

        @pytest.mark.scale_invariant(protocol="azulay2019", input_shape=(1, 1, 24, 24), min_consistency=0.9)
        def test_a_threshold_inside_the_growth_changes_most_classes():
            return by_brightness(0.136)
        """
    )
    result = inner.run("-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["top-1 consistency (mean)*12.5%*min_consistency=90.0%",
                                 "*pasted into 24x24 zero canvases*"])
