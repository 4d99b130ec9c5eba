"""Each rule, EQ001..EQ011: a positive and a negative case, in module, functional and method forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_equivariance.lint import lint, lint_model
from pytest_equivariance.lint.findings import Severity
from pytest_equivariance.lint.rules import RULES


class Fn(nn.Module):
    """Wraps a function of the input as a model, so functional forms are traced like user code."""

    def __init__(self, fn, *layers: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        return self.fn(x, *self.layers)


def codes(model: nn.Module, shape, select=None) -> list[str]:
    """Codes found, leaving out EQ011 (even kernels), which most pooling examples also trigger."""
    return [f.code for f in lint(model, shape, select=select, ignore=None if select else ["EQ011"])]


def only(model: nn.Module, shape, code: str) -> list:
    return [f for f in lint(model, shape, select=[code])]


S1, S2, S3 = (1, 4, 32), (1, 4, 16, 16), (1, 4, 8, 8, 8)


# ------------------------------------------------------------------------------------- table


def test_rule_table_is_complete_and_ordered():
    assert list(RULES) == [f"EQ{i:03d}" for i in range(1, 12)]
    for code, rule in RULES.items():
        assert rule.code == code
        assert rule.name == rule.name.lower() and " " not in rule.name
        assert rule.summary and "\n" not in rule.summary
        assert rule.why and rule.example and rule.fix
        assert rule.check is not None
    errors = {c for c, r in RULES.items() if r.severity is Severity.ERROR}
    infos = {c for c, r in RULES.items() if r.severity is Severity.INFO}
    assert errors == {"EQ001", "EQ002", "EQ004", "EQ005"}
    assert infos == {"EQ010", "EQ011"}
    assert [c for c, r in RULES.items() if not r.enabled_by_default] == ["EQ010"]


def test_fix_texts_name_this_projects_layers():
    assert "pytest_equivariance.MaxBlurPool2d" in RULES["EQ001"].fix
    assert "pytest_equivariance.AntialiasedConv2d(" in RULES["EQ002"].fix
    assert "pytest_equivariance.antialias(model)" in RULES["EQ003"].fix


# ------------------------------------------------------------------------------------- EQ001


@pytest.mark.parametrize(
    "model, shape",
    [
        (nn.MaxPool1d(2), S1),
        (nn.MaxPool2d(3, stride=2, padding=1), S2),
        (nn.MaxPool3d(2), S3),
        (Fn(lambda x: F.max_pool1d(x, 2)), S1),
        (Fn(lambda x: F.max_pool2d(x, 2)), S2),
        (Fn(lambda x: torch.max_pool2d(x, 2, 2)), S2),
        (Fn(lambda x: F.max_pool3d(x, kernel_size=2, stride=2)), S3),
        (Fn(lambda x: F.max_pool2d(x, 2, return_indices=True)[0]), S2),
        (Fn(lambda x: F.adaptive_max_pool2d(x, 4)), S2),
        (nn.LPPool2d(2, 2), S2),
    ],
    ids=["module-1d", "module-2d", "module-3d", "F-1d", "F-2d", "torch-2d", "F-3d", "indices", "adaptive",
         "lp-pool"],
)
def test_eq001_flags_strided_max_pooling(model, shape):
    assert codes(model, shape) == ["EQ001"]


@pytest.mark.parametrize(
    "model, shape",
    [
        (nn.MaxPool2d(3, stride=1, padding=1), S2),
        (Fn(lambda x: F.max_pool2d(x, 3, 1, 1)), S2),
        (Fn(lambda x: F.max_pool1d(x, 3, stride=1, padding=1)), S1),
        (nn.AdaptiveMaxPool2d(1), S2),
        (Fn(lambda x: F.adaptive_max_pool3d(x, (1, 1, 1))), S3),
        (Fn(lambda x: F.max_pool2d(x, kernel_size=x.shape[-2:])), S2),  # global, kernel from shape
    ],
    ids=["stride1-module", "stride1-F", "stride1-1d", "global-adaptive", "global-adaptive-3d", "global-kernel"],
)
def test_eq001_ignores_dense_and_global_max_pooling(model, shape):
    assert codes(model, shape) == []


def test_eq001_message_names_op_and_parameters_and_fix_is_concrete():
    [finding] = lint(nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1)), S2)
    assert finding.severity is Severity.ERROR
    assert finding.op == "nn.MaxPool2d"
    assert "kernel_size=3" in finding.message and "stride=2" in finding.message
    assert "padding=1" in finding.message
    assert finding.fix == "pytest_equivariance.MaxBlurPool2d(kernel_size=3, stride=2, padding=1)"
    assert finding.params["stride"] == (2, 2) and finding.params["kernel_size"] == (3, 3)
    assert finding.kind == "module" and finding.qualname == "0"


def test_eq001_functional_fix_uses_functional_blur():
    [finding] = lint(Fn(lambda x: F.max_pool3d(x, 2)), S3, select=["EQ001"])
    assert finding.kind == "function" and finding.op == "F.max_pool3d"
    assert "blur_pool3d(F.max_pool3d(x, 2, stride=1), stride=2)" in finding.fix


# ------------------------------------------------------------------------------------- EQ002


class Blurred(nn.Module):
    """A stride-1 blur directly before a strided conv: the blur-first pattern."""

    def __init__(self, blur: nn.Module) -> None:
        super().__init__()
        self.blur = blur
        self.conv = nn.Conv2d(4, 8, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(self.blur(x))


class FunctionalBlurPool(nn.Module):
    """A hand-written BlurPool: a fixed binomial filter buffer and a strided depthwise F.conv2d."""

    def __init__(self, channels: int = 4, learned: bool = False, filt=None) -> None:
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        kernel = (a[:, None] * a[None, :]) / 16 if filt is None else filt
        kernel = kernel.expand(channels, 1, 3, 3).clone()
        if learned:
            self.filt = nn.Parameter(kernel)
        else:
            self.register_buffer("filt", kernel)
        self.channels = channels

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=self.channels)


@pytest.mark.parametrize(
    "model, shape",
    [
        (nn.Conv1d(4, 8, 3, stride=2), S1),
        (nn.Conv2d(4, 8, 3, stride=2, padding=1), S2),
        (nn.Conv3d(4, 8, 3, stride=(1, 2, 2)), S3),
        (nn.Conv2d(4, 8, 1, stride=2), S2),
        (nn.Conv2d(4, 8, 4, stride=4), S2),
        (Fn(lambda x, c: F.conv2d(x, c.weight, stride=2), nn.Conv2d(4, 8, 3)), S2),
        (Fn(lambda x, c: torch.conv1d(x, c.weight, None, 2), nn.Conv1d(4, 8, 3)), S1),
        (FunctionalBlurPool(learned=True), S2),
    ],
    ids=["module-1d", "module-2d", "module-3d", "1x1", "patchify", "F-2d", "torch-1d", "learned-kernel"],
)
def test_eq002_flags_strided_convolution(model, shape):
    assert codes(model, shape) == ["EQ002"]


def test_eq002_names_shortcuts_and_patchify_stems():
    [shortcut] = lint(nn.Conv2d(4, 8, 1, stride=2), S2)
    assert "pure subsampling" in shortcut.message
    [stem] = lint(nn.Conv2d(4, 8, 4, stride=4), S2, select=["EQ002"])
    assert "patchify" in stem.message


def test_eq002_fix_is_a_drop_in_that_keeps_the_conv_arguments_and_weights():
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
    [finding] = lint(nn.Sequential(conv), S2)
    assert finding.fix == "pytest_equivariance.AntialiasedConv2d(4, 8, kernel_size=3, stride=2, padding=1, bias=False)"
    import pytest_equivariance

    replacement = eval(finding.fix, {"pytest_equivariance": pytest_equivariance})
    replacement.load_state_dict(conv.state_dict(), strict=True)  # a checkpoint of the original loads
    assert lint(nn.Sequential(replacement), S2) == []


def test_eq002_ignores_stride_one_and_the_blur_first_pattern():
    import antialiased_cnns
    import kornia
    from timm.layers import BlurPool2d

    assert codes(nn.Conv2d(4, 8, 3, padding=1), S2) == []
    assert codes(Blurred(BlurPool2d(4, stride=1)), S2) == []
    assert codes(Blurred(antialiased_cnns.BlurPool(4, filt_size=3, stride=1)), S2) == []
    assert codes(Blurred(kornia.filters.GaussianBlur2d((3, 3), (1.0, 1.0))), S2) == []
    # The blur must come directly before: an activation in between re-creates high frequencies.
    assert codes(Blurred(nn.Sequential(BlurPool2d(4, stride=1), nn.ReLU())), S2) == ["EQ002"]


def test_eq002_ignores_a_functional_blurpool_with_a_fixed_lowpass_buffer():
    assert codes(FunctionalBlurPool(), S2) == []


def test_eq002_flags_a_fixed_kernel_that_is_not_lowpass():
    edge = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
    assert codes(FunctionalBlurPool(filt=edge), S2) == ["EQ002"]


# ------------------------------------------------------------------------------------- EQ003


@pytest.mark.parametrize(
    "model, shape",
    [
        (nn.AvgPool1d(2), S1),
        (nn.AvgPool2d(2, stride=2), S2),
        (nn.AvgPool3d(2), S3),
        (Fn(lambda x: F.avg_pool2d(x, 3, stride=2, padding=1)), S2),
        (Fn(lambda x: torch.avg_pool1d(x, 2, 2)), S1),
        (nn.AdaptiveAvgPool2d(4), S2),
    ],
    ids=["module-1d", "module-2d", "module-3d", "F-2d", "torch-1d", "adaptive-downsampling"],
)
def test_eq003_flags_strided_average_pooling(model, shape):
    found = lint(model, shape, ignore=["EQ011"])
    assert [f.code for f in found] == ["EQ003"]
    assert found[0].severity is Severity.WARNING


@pytest.mark.parametrize(
    "model, shape",
    [
        (nn.AdaptiveAvgPool2d(1), S2),
        (nn.AdaptiveAvgPool2d(16), S2),  # same size: an identity
        (nn.AvgPool2d(16), S2),  # the kernel covers the whole map: global
        (Fn(lambda x: F.adaptive_avg_pool1d(x, 1)), S1),
        (Fn(lambda x: F.avg_pool2d(x, 3, stride=1, padding=1)), S2),
        (Fn(lambda x: x.mean((2, 3))), S2),
    ],
    ids=["global-adaptive", "identity", "global-kernel", "global-1d", "stride1", "mean"],
)
def test_eq003_never_flags_global_or_dense_average_pooling(model, shape):
    assert codes(model, shape) == []


# ------------------------------------------------------------------------------------- EQ004


@pytest.mark.parametrize(
    "model, shape",
    [
        (Fn(lambda x: F.interpolate(x, scale_factor=0.5)), S2),
        (Fn(lambda x: F.interpolate(x, size=(8, 8), mode="bilinear")), S2),
        (Fn(lambda x: F.interpolate(x, size=16, mode="linear")), S1),
        (Fn(lambda x: F.interpolate(x, scale_factor=0.5, mode="trilinear")), S3),
        (nn.Upsample(scale_factor=0.5, mode="nearest"), S2),
        (Fn(lambda x: F.interpolate(x, size=(5, 5), mode="bicubic", antialias=False)), S2),
    ],
    ids=["nearest", "bilinear", "linear-1d", "trilinear-3d", "upsample-module", "bicubic"],
)
def test_eq004_flags_downscaling_without_antialiasing(model, shape):
    [finding] = lint(model, shape, ignore=["EQ011"])
    assert finding.code == "EQ004" and "downscales" in finding.message


@pytest.mark.parametrize(
    "model, shape",
    [
        (Fn(lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True)), S2),
        (Fn(lambda x: F.interpolate(x, size=(8, 8), mode="area")), S2),
        (Fn(lambda x: F.interpolate(x, scale_factor=2.0)), S2),
        (nn.Upsample(scale_factor=2, mode="bilinear"), S2),
        (Fn(lambda x: F.interpolate(x, size=64, mode="linear")), S1),
    ],
    ids=["antialias", "area", "upscale", "upsample-up", "upscale-1d"],
)
def test_eq004_ignores_upscaling_and_antialiased_resizing(model, shape):
    assert codes(model, shape) == []


# ------------------------------------------------------------------------------------- EQ005


@pytest.mark.parametrize(
    "model, shape",
    [
        (Fn(lambda x: x[:, :, ::2, ::2]), S2),
        (Fn(lambda x: x[..., 1::2]), S1),
        (Fn(lambda x: x[:, :, ::2]), S3),
        (Fn(lambda x: x[..., ::3, :]), S2),
    ],
    ids=["2d", "1d-ellipsis", "3d-depth", "rows"],
)
def test_eq005_flags_strided_spatial_slicing(model, shape):
    [finding] = lint(model, shape)
    assert finding.code == "EQ005" and finding.kind == "method"
    assert finding.message.startswith("x[")


@pytest.mark.parametrize(
    "model, shape",
    [
        (Fn(lambda x: x[:, ::2]), S2),  # channels, not space
        (Fn(lambda x: x[:, :, 1:-1, 1:-1]), S2),  # a crop
        (Fn(lambda x: torch.stack(list(x.unbind(1))[::2], 1)), S2),  # a Python list
        (Fn(lambda x: x.view(*x.shape[::2])), S2),  # a torch.Size
    ],
    ids=["channels", "crop", "list", "size"],
)
def test_eq005_ignores_channel_slices_crops_and_non_tensors(model, shape):
    assert [c for c in codes(model, shape) if c == "EQ005"] == []


def test_eq005_ignores_a_slice_right_after_a_blur():
    from timm.layers import BlurPool2d

    model = Fn(lambda x, blur: blur(x)[:, :, ::2, ::2], BlurPool2d(4, stride=1))
    assert codes(model, S2) == []


# ------------------------------------------------------------------------------------- EQ006


def test_eq006_flags_pixel_unshuffle_in_module_and_functional_forms():
    assert codes(nn.PixelUnshuffle(2), S2) == ["EQ006"]
    assert codes(Fn(lambda x: F.pixel_unshuffle(x, 2)), S2) == ["EQ006"]
    assert codes(Fn(lambda x: torch.pixel_unshuffle(x, 4)), S2) == ["EQ006"]


def test_eq006_ignores_pixel_shuffle_and_blurred_unshuffle():
    from timm.layers import BlurPool2d

    assert codes(nn.PixelShuffle(2), S2) == []
    assert codes(nn.Sequential(BlurPool2d(4, stride=1), nn.PixelUnshuffle(2)), S2) == []


# ------------------------------------------------------------------------------------- EQ007


@pytest.mark.parametrize(
    "model, shape",
    [
        (nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1), S2),
        (nn.ConvTranspose1d(4, 4, 3, stride=2), S1),
        (nn.ConvTranspose3d(4, 4, 3, stride=2), S3),
        (Fn(lambda x, c: F.conv_transpose2d(x, c.weight, stride=2), nn.ConvTranspose2d(4, 4, 3)), S2),
    ],
    ids=["module-2d", "module-1d", "module-3d", "F-2d"],
)
def test_eq007_flags_kernels_not_divisible_by_stride(model, shape):
    assert codes(model, shape) == ["EQ007"]


def test_eq007_fix_rounds_the_kernel_up_to_a_multiple_of_the_stride():
    [finding] = lint(nn.Sequential(nn.ConvTranspose2d(4, 8, 3, stride=2, padding=1, output_padding=1)), S2)
    assert finding.fix == "nn.ConvTranspose2d(4, 8, kernel_size=4, stride=2, padding=1)"


@pytest.mark.parametrize(
    "model", [nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1), nn.ConvTranspose2d(4, 4, 3, padding=1)],
    ids=["divisible", "stride1"],
)
def test_eq007_ignores_divisible_kernels_and_stride_one(model):
    assert codes(model, S2) == []


# ------------------------------------------------------------------------------------- EQ008


class Head(nn.Module):
    def __init__(self, pool: bool, functional: bool = False) -> None:
        super().__init__()
        self.features = nn.Conv2d(4, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1) if pool else nn.Identity()
        self.fc = nn.Linear(8 if pool else 8 * 16 * 16, 10)
        self.functional = functional

    def forward(self, x):
        x = self.pool(self.features(x))
        if self.functional:
            return F.linear(x.view(x.size(0), -1), self.fc.weight)
        return self.fc(F.dropout(torch.flatten(x, 1), 0.5, self.training))


def test_eq008_flags_a_flattened_feature_map_feeding_a_dense_layer():
    [finding] = only(Head(pool=False), S2, "EQ008")
    assert finding.qualname == "fc" and "8x16x16" in finding.message
    assert "adaptive_avg_pool2d" in finding.fix
    [functional] = only(Head(pool=False, functional=True), S2, "EQ008")
    assert functional.op == "F.linear"


def test_eq008_ignores_global_pooling_and_token_projections():
    assert only(Head(pool=True), S2, "EQ008") == []
    tokens = Fn(lambda x, fc: fc(x.flatten(2).transpose(1, 2)), nn.Linear(4, 8))  # (N, HW, C) @ W
    assert only(tokens, S2, "EQ008") == []


# ------------------------------------------------------------------------------------- EQ009


class Embedded(nn.Module):
    def __init__(self, shape, learned: bool = True, gather: bool = False) -> None:
        super().__init__()
        if learned:
            self.pos = nn.Parameter(torch.zeros(shape))
        else:
            self.register_buffer("pos", torch.zeros(shape))
        self.gather = gather
        if gather:
            self.register_buffer("index", torch.zeros(16, dtype=torch.long))

    def forward(self, x):
        return x + (self.pos[self.index].view(1, 1, 4, 4) if self.gather else self.pos)


@pytest.mark.parametrize(
    "model, shape",
    [
        (Embedded((1, 4, 16, 16)), S2),
        (Embedded((1, 4, 32)), S1),
        (Fn(lambda x, e: x.flatten(2).transpose(1, 2) + e(torch.arange(256)), nn.Embedding(256, 4)), S2),
    ],
    ids=["feature-map", "tokens", "embedding-of-positions"],
)
def test_eq009_flags_learned_absolute_position_embeddings(model, shape):
    [finding] = only(model, shape, "EQ009")
    assert "position embedding" in finding.message


@pytest.mark.parametrize(
    "model, shape",
    [
        (Embedded((1, 4, 1, 1)), S2),  # a per-channel bias
        (Embedded((4,)), (1, 4, 16, 4)),  # a per-feature scale/shift on channels-last data
        (Embedded((1, 4, 16, 16), learned=False), S2),  # a fixed buffer, not learned
        (Embedded((16, 4), gather=True), (1, 4, 4, 4)),  # a relative bias gathered from a table
    ],
    ids=["bias", "per-feature", "buffer", "relative-gather"],
)
def test_eq009_ignores_biases_buffers_and_relative_tables(model, shape):
    assert only(model, shape, "EQ009") == []


# ------------------------------------------------------------------------------------- EQ010


def test_eq010_is_off_by_default_and_flags_zero_padding_when_selected():
    conv = nn.Conv2d(4, 4, 3, padding=1)
    assert codes(conv, S2) == []
    [finding] = only(conv, S2, "EQ010")
    assert finding.severity is Severity.INFO
    assert 'padding_mode="circular"' in finding.fix or "padding_mode='circular'" in finding.fix
    assert [f.code for f in only(Fn(lambda x: F.pad(x, (1, 1, 1, 1))), S2, "EQ010")] == ["EQ010"]
    assert [f.code for f in only(nn.Conv1d(4, 4, 3, padding="same"), S1, "EQ010")] == ["EQ010"]
    assert [f.code for f in only(nn.MaxPool2d(3, 1, 1), S2, "EQ010")] == ["EQ010"]


@pytest.mark.parametrize(
    "model",
    [
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"),
        nn.Conv2d(4, 4, 3),
        Fn(lambda x: F.pad(x, (1, 1, 1, 1), mode="circular")),
        nn.ReflectionPad2d(1),
    ],
    ids=["circular", "valid", "F.pad-circular", "reflect"],
)
def test_eq010_ignores_circular_reflect_and_no_padding(model):
    assert only(model, S2, "EQ010") == []


# ------------------------------------------------------------------------------------- EQ011


@pytest.mark.parametrize(
    "model, shape",
    [
        (nn.Conv2d(4, 4, 2), S2),
        (nn.Conv1d(4, 4, 4, padding=1), S1),
        (Fn(lambda x: F.pad(x, (0, 1, 0, 1))), S2),
        (nn.ZeroPad2d((1, 0, 1, 0)), S2),
        (nn.Conv2d(4, 4, 2, dilation=1), S2),
    ],
    ids=["even-2d", "even-1d", "F.pad-asymmetric", "ZeroPad2d-asymmetric", "dilated"],
)
def test_eq011_flags_even_kernels_and_asymmetric_padding(model, shape):
    [finding] = only(model, shape, "EQ011")
    assert finding.severity is Severity.INFO


@pytest.mark.parametrize(
    "model",
    [nn.Conv2d(4, 4, 3, padding=1), Fn(lambda x: F.pad(x, (2, 2, 1, 1))), nn.Conv2d(4, 4, 2, dilation=2)],
    ids=["odd", "symmetric-pad", "dilated-odd-extent"],
)
def test_eq011_ignores_odd_kernels_and_symmetric_padding(model):
    assert only(model, S2, "EQ011") == []


# ------------------------------------------------------------------------------------- sites


class Reused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        for _ in range(2):
            x = F.max_pool2d(x, 2)  # one call site, unrolled twice by fx
        return self.pool(self.pool(x))  # one layer, called twice


def test_one_finding_per_call_site():
    found = lint(Reused(), (1, 4, 64, 64), select=["EQ001"])
    assert sorted((f.op, f.kind) for f in found) == [("F.max_pool2d", "function"), ("nn.MaxPool2d", "module")]


def test_lint_model_report_carries_mode_coverage_and_shape():
    report = lint_model(nn.Sequential(nn.Conv2d(3, 4, 3, stride=2)), target="tiny")
    assert report.target == "tiny"
    assert report.trace == "fx" and report.coverage == 1.0
    assert report.input_shape == (1, 3, 224, 224)
    assert [f.code for f in report.findings] == ["EQ002"]
    assert report.errors == []


class _FunctionalPools(nn.Module):
    def forward(self, x):
        return F.avg_pool2d(F.max_pool2d(x, 2), 2)


def test_functional_fixes_are_runnable_snippets_that_keep_the_output_grid():
    x = torch.randn(S2)
    fixes = {f.code: f.fix for f in lint(_FunctionalPools(), S2, select=["EQ001", "EQ003"])}
    assert set(fixes) == {"EQ001", "EQ003"}
    import pytest_equivariance

    names = {"pytest_equivariance": pytest_equivariance, "F": F, "x": x}
    assert eval(fixes["EQ001"], names).shape == F.max_pool2d(x, 2).shape
    assert eval(fixes["EQ003"], names).shape == F.avg_pool2d(x, 2).shape


def test_the_op_table_knows_f_pad_even_when_first_built_inside_a_circular_profile():
    # A profile makes F.pad circular while it runs (check.padding); a lint graph built then for the
    # first time in a process must still recognise torch's own F.pad afterwards.
    from pytest_equivariance.check.padding import circular_padding
    from pytest_equivariance.lint import ops

    ops.function_table.cache_clear()
    try:
        with circular_padding(nn.Identity()):
            ops.function_table()
        assert ops.function_table()[F.pad][0] == "pad"
        assert [f.code for f in only(Fn(lambda x: F.pad(x, (1, 1, 1, 1))), S2, "EQ010")] == ["EQ010"]
    finally:
        ops.function_table.cache_clear()
