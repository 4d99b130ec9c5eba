"""antialias(model): rewrites exactly what EQ001-EQ003 flag, keeps weights, leaves the rest alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import pytest

from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.fix import AntialiasedConv2d, BlurPool1d, BlurPool2d, BlurPool3d, MaxBlurPool2d, antialias
from pytest_equivariance.fix.antialias import AntialiasReport
from pytest_equivariance.layers.filters import blur_pool1d
from pytest_equivariance.lint import lint

CODES = ["EQ001", "EQ002", "EQ003"]
SHAPE_2D = (1, 3, 32, 32)


def aliasing(model: nn.Module, shape: tuple[int, ...]) -> list[tuple[str, str]]:
    return [(f.code, f.qualname) for f in lint(model, shape, select=CODES)]


class Net2d(nn.Module):
    """A strided conv, a strided max pool and a nested block with a strided conv and avg pool."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.body = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1),
            nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16)),
            nn.AvgPool2d(2),
        )
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.pool(self.stem(x)))
        return self.head(x.mean((-2, -1)))


def test_rewrites_every_flagged_module_and_lint_is_clean_after() -> None:
    torch.manual_seed(0)
    model = Net2d().eval()
    before = aliasing(model, SHAPE_2D)
    assert sorted(q for _, q in before) == ["body.1.0", "body.2", "pool", "stem.0"]
    fixed = antialias(model, example_input=SHAPE_2D)
    report = fixed.antialias_report
    assert isinstance(report, AntialiasReport)
    assert sorted(report.changed_qualnames) == ["body.1.0", "body.2", "pool", "stem.0"]
    assert {c.code for c in report.changes} == {"EQ001", "EQ002", "EQ003"}
    assert report.skipped == []
    assert aliasing(fixed, SHAPE_2D) == []
    assert isinstance(fixed.stem[0], AntialiasedConv2d)
    assert isinstance(fixed.pool, MaxBlurPool2d)
    x = torch.randn(2, 3, 32, 32)
    assert fixed(x).shape == model(x).shape


def test_weights_are_kept_under_the_same_names() -> None:
    model = Net2d()
    fixed = antialias(model, example_input=SHAPE_2D)
    assert [n for n, _ in fixed.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert list(fixed.state_dict()) == list(model.state_dict())
    fixed.load_state_dict(model.state_dict(), strict=True)
    other = Net2d()
    result = antialias(other, example_input=SHAPE_2D).load_state_dict(model.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for (_, a), (_, b) in zip(fixed.named_parameters(), model.named_parameters()):
        assert torch.equal(a, b)


def test_the_original_is_untouched_unless_inplace() -> None:
    model = Net2d()
    fixed = antialias(model, example_input=SHAPE_2D)
    assert fixed is not model
    assert type(model.pool) is nn.MaxPool2d and type(model.stem[0]) is nn.Conv2d
    assert model.stem[0].weight is not fixed.stem[0].weight
    same = antialias(model, example_input=SHAPE_2D, inplace=True)
    assert same is model and isinstance(model.pool, MaxBlurPool2d)
    assert aliasing(model, SHAPE_2D) == []


def test_subnetwork_without_strided_ops_is_bitwise_unchanged() -> None:
    torch.manual_seed(0)
    model = Net2d().eval()
    fixed = antialias(model, example_input=SHAPE_2D).eval()
    x = torch.randn(2, 8, 16, 16)
    assert torch.equal(fixed.body[0](x), model.body[0](x))
    z = torch.randn(2, 16)
    assert torch.equal(fixed.head(z), model.head(z))
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    untouched = antialias(plain, example_input=SHAPE_2D)
    assert untouched.antialias_report.changes == []
    y = torch.randn(1, 3, 32, 32)
    assert torch.equal(untouched(y), plain(y))


def test_skip_globs_leave_modules_and_report_them() -> None:
    model = Net2d()
    fixed = antialias(model, example_input=SHAPE_2D, skip=["body.*"])
    report = fixed.antialias_report
    assert sorted(report.changed_qualnames) == ["pool", "stem.0"]
    assert sorted(s.qualname for s in report.skipped) == ["body.1.0", "body.2"]
    assert all("skip pattern 'body.*'" in s.reason for s in report.skipped)
    assert sorted(q for _, q in aliasing(fixed, SHAPE_2D)) == ["body.1.0", "body.2"]


def test_conv_then_blur_moves_the_stride_to_the_blur() -> None:
    model = Net2d()
    fixed = antialias(model, example_input=SHAPE_2D, conv="conv_then_blur")
    conv = fixed.stem[0]
    assert conv.stride == (1, 1) and conv.blur.stride == 2 and conv.blur_position == "after"
    assert aliasing(fixed, SHAPE_2D) == []
    x = torch.randn(1, 3, 32, 32)
    assert fixed(x).shape == model(x).shape


class FunctionalPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(self.conv(x), 2)


def test_functional_calls_are_skipped_with_their_location() -> None:
    fixed = antialias(FunctionalPool(), example_input=SHAPE_2D)
    (skipped,) = fixed.antialias_report.skipped
    assert skipped.code == "EQ001" and skipped.file is not None
    assert skipped.file.endswith("test_antialias.py")
    assert "max_pool2d" in skipped.reason and "source" in skipped.reason
    assert fixed.antialias_report.changes == []
    # Lint after the fix reports nothing beyond what was skipped.
    assert [(f.code, f.line) for f in lint(fixed, SHAPE_2D, select=CODES)] == [("EQ001", skipped.line)]


class SharedPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.alias = self.pool  # the same module under a second name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alias(self.conv2(self.pool(self.conv1(x))))


def test_a_module_called_twice_is_replaced_once_everywhere() -> None:
    fixed = antialias(SharedPool(), example_input=SHAPE_2D)
    assert len(fixed.antialias_report.changes) == 1
    assert fixed.pool is fixed.alias and isinstance(fixed.pool, MaxBlurPool2d)
    assert aliasing(fixed, SHAPE_2D) == []


def test_1d_and_3d_models() -> None:
    net1 = nn.Sequential(nn.Conv1d(2, 4, 5, stride=2, padding=2), nn.MaxPool1d(2), nn.AvgPool1d(3, 2, 1))
    fixed1 = antialias(net1, example_input=(1, 2, 64))
    assert len(fixed1.antialias_report.changes) == 3
    assert aliasing(fixed1, (1, 2, 64)) == []
    x1 = torch.randn(2, 2, 61)
    assert fixed1(x1).shape == net1(x1).shape
    net3 = nn.Sequential(nn.Conv3d(1, 2, 3, stride=2, padding=1), nn.MaxPool3d(2), nn.AvgPool3d(2))
    fixed3 = antialias(net3, example_input=(1, 1, 16, 16, 16))
    assert len(fixed3.antialias_report.changes) == 3
    assert aliasing(fixed3, (1, 1, 16, 16, 16)) == []
    x3 = torch.randn(1, 1, 15, 16, 17)
    assert fixed3(x3).shape == net3(x3).shape
    fixed3.load_state_dict(net3.state_dict(), strict=True)


def test_avg_pools_become_blur_avg_pools_that_keep_the_box_and_the_arguments() -> None:
    model = nn.Sequential(nn.AvgPool2d(2), nn.AvgPool2d(1, 2), nn.AvgPool2d(3, 2, 1, count_include_pad=False))
    fixed = antialias(model, example_input=(1, 1, 16, 16))
    assert [type(m).__name__ for m in fixed] == ["BlurAvgPool2d"] * 3
    assert (fixed[2].kernel_size, fixed[2].stride, fixed[2].padding, fixed[2].count_include_pad) == (3, 2, 1, False)
    x = torch.randn(1, 1, 17, 17)
    assert fixed(x).shape == model(x).shape
    # The box runs at stride 1, then BlurPool subsamples; a 1x1 box is no box at all.
    box = nn.AvgPool2d(2, stride=1)(x)
    assert torch.allclose(fixed[0](x), BlurPool2d(stride=2)(box))
    assert torch.allclose(fixed[1](x), BlurPool2d(stride=2)(x))


def test_box_then_binomial_3_is_binomial_4() -> None:
    # AvgPool1d(2) becomes box(2) at stride 1, then binomial(3) with stride 2: away from the
    # border that is exactly BlurPool with the binomial filter of size 4, [1, 3, 3, 1] / 8.
    fixed = antialias(nn.Sequential(nn.Conv1d(1, 1, 1), nn.AvgPool1d(2)), example_input=(1, 1, 32))
    x = torch.randn(1, 1, 32, dtype=torch.float64)
    out = fixed[1].double()(x)
    assert out.shape == (1, 1, 16)
    assert torch.allclose(out[..., 1:-1], blur_pool1d(x, 2, 4)[..., 1:-1], atol=1e-12)


@pytest.mark.parametrize("n", [16, 17])
def test_ceil_mode_pools_keep_their_output_size(n: int) -> None:
    model = nn.Sequential(
        nn.MaxPool2d(3, 2, ceil_mode=True), nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
        nn.AvgPool2d(1, 2, ceil_mode=True),
    )  # fmt: skip
    fixed = antialias(model, example_input=(1, 1, n, n))
    assert fixed.antialias_report.changed_qualnames == ["0", "1", "2"]
    assert aliasing(fixed, (1, 1, n, n)) == []
    x = torch.randn(1, 1, n, n)
    for a, b in zip(fixed, model):
        assert a(x).shape == b(x).shape
        x = b(x)


def test_pools_without_a_drop_in_are_skipped_with_a_reason() -> None:
    class Unpooling(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = nn.MaxPool2d(2, return_indices=True)
            self.unpool = nn.MaxUnpool2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y, indices = self.pool(x)
            return self.unpool(y, indices)

    fixed = antialias(Unpooling(), example_input=(1, 1, 16, 16))
    assert fixed.antialias_report.changes == []
    (skipped,) = fixed.antialias_report.skipped
    assert skipped.qualname == "pool" and "indices" in skipped.reason


def test_the_model_itself_can_be_the_flagged_layer() -> None:
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    fixed = antialias(conv, example_input=SHAPE_2D)
    assert isinstance(fixed, AntialiasedConv2d)
    assert fixed.antialias_report.changed_qualnames == [""]
    fixed.load_state_dict(conv.state_dict(), strict=True)


def test_circular_convs_get_circular_blurs_and_stay_exactly_equivariant() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1, padding_mode="circular"), nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, padding_mode="circular"),
    ).double()  # fmt: skip
    fixed = antialias(model, example_input=(1, 2, 16, 16))
    assert aliasing(fixed, (1, 2, 16, 16)) == []
    x = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    y = fixed(torch.roll(x, (4, -4), dims=(-2, -1)))
    assert torch.allclose(y, torch.roll(fixed(x), (1, -1), dims=(-2, -1)), atol=1e-10)


def test_training_mode_dtype_and_meta_device_follow_the_model() -> None:
    model = Net2d().double().train()
    fixed = antialias(model, example_input=SHAPE_2D)
    assert fixed.pool.training and fixed.pool.blur.filter.dtype == torch.float64
    with torch.device("meta"):
        meta = Net2d()
    fixed_meta = antialias(meta, example_input=SHAPE_2D)
    assert fixed_meta.pool.blur.filter.is_meta
    assert len(fixed_meta.antialias_report.changes) == 4


def test_report_renders_and_serialises() -> None:
    report = antialias(Net2d(), example_input=SHAPE_2D, skip=["pool"]).antialias_report
    text = str(report)
    assert "3 layer(s) replaced, 1 skipped" in text and "stem.0" in text
    data = report.to_json()
    assert data["skipped"][0]["qualname"] == "pool"
    assert {c["code"] for c in data["changes"]} == {"EQ002", "EQ003"}


@pytest.mark.parametrize(
    "kwargs,match",
    [({"conv": "blur_last"}, "conv_then_blur"), ({"filter_size": 9}, "1 to 7"), ({"padding_mode": "edge"}, "reflect")],
)
def test_bad_arguments_are_usage_errors(kwargs, match) -> None:
    with pytest.raises(EquivarianceUsageError, match=match):
        antialias(Net2d(), example_input=SHAPE_2D, **kwargs)


def test_a_non_module_is_a_usage_error() -> None:
    with pytest.raises(EquivarianceUsageError, match="nn.Module"):
        antialias(lambda x: x)  # type: ignore[arg-type]


def test_blur_kernels_are_not_in_the_state_dict() -> None:
    fixed = antialias(
        nn.Sequential(nn.Conv1d(1, 1, 3, stride=2), nn.Conv3d(1, 1, 1)), example_input=(1, 1, 32)
    )
    assert list(fixed.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert isinstance(fixed[0].blur, BlurPool1d) and not isinstance(fixed[0].blur, BlurPool3d)


def test_recipe_names_layers_that_exist() -> None:
    import pytest_equivariance.fix as fix
    from pytest_equivariance.fix.antialias import RECIPE

    for name in ("antialias", "MaxBlurPool", "AntialiasedConv", "BlurPool", "blur_pool2d", "conv_then_blur"):
        assert name in RECIPE
    assert all(hasattr(fix, n) for n in ("antialias", "MaxBlurPool2d", "AntialiasedConv2d", "blur_pool2d"))


def test_an_uncopyable_model_asks_for_inplace() -> None:
    import threading

    model = Net2d()
    model.lock = threading.Lock()
    with pytest.raises(EquivarianceUsageError, match="inplace=True"):
        antialias(model, example_input=SHAPE_2D)
    assert isinstance(antialias(model, example_input=SHAPE_2D, inplace=True).pool, MaxBlurPool2d)
