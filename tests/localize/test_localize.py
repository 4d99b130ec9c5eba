"""localize(): the first layer that breaks equivariance is named; exact models have no culprit."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optional import require
from pytest_equivariance.check import transforms as T
from pytest_equivariance.check.localize import first_break, localize, noise_floor
from pytest_equivariance.check.result import CheckResult, LayerError
from pytest_equivariance.inputs import natural_images
from pytest_equivariance.seeding import seeded

SHIFT = T.shift((1, -3), (-2, -1))  # odd: every stride-2 layer sees a half-pixel shift


def circular_conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="circular")


class Net(nn.Module):
    """Clean circular stride-1 layers, one middle layer, more clean layers, then global pooling."""

    def __init__(self, middle: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(circular_conv(3, 8), nn.ReLU(), circular_conv(8, 8), nn.ReLU())
        self.middle = middle if middle is not None else nn.Identity()
        self.head = nn.Sequential(
            circular_conv(8, 8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.middle(self.stem(x)))


class SliceNet(Net):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.head(x[..., ::2, ::2])


class NearestNet(Net):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return self.head(F.interpolate(x, scale_factor=0.5, mode="nearest"))


class IdealDownsample(nn.Module):
    """Halve the grid by discarding every frequency the coarse grid cannot hold: exactly band-limited."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        spectrum = torch.fft.fft2(x)
        ky, kx = torch.fft.fftfreq(h) * h, torch.fft.fftfreq(w) * w
        keep = (ky.abs() < h // 4)[:, None] & (kx.abs() < w // 4)[None, :]
        spectrum = spectrum * keep
        rows = torch.cat([spectrum[..., : h // 4, :], spectrum[..., h - h // 4 :, :]], dim=-2)
        coarse = torch.cat([rows[..., : w // 4], rows[..., w - w // 4 :]], dim=-1)
        return torch.fft.ifft2(coarse).real / 4


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return natural_images((2, 3, 32, 32), seed=3)


CULPRITS = {
    "strided max pool": (lambda: Net(nn.MaxPool2d(2)), "EQ001"),
    "strided conv": (lambda: Net(circular_conv(8, 8, stride=2)), "EQ002"),
    "strided avg pool": (lambda: Net(nn.AvgPool2d(2)), "EQ003"),
    "nearest downscaling module": (lambda: Net(nn.Upsample(scale_factor=0.5, mode="nearest")), "EQ004"),
}


@pytest.mark.parametrize("name", list(CULPRITS))
def test_names_the_one_aliasing_module(name: str, images: torch.Tensor) -> None:
    build, code = CULPRITS[name]
    profile = localize(build().eval(), images, SHIFT, equivariant=False)

    assert profile.culprit is not None and profile.culprit.qualname == "middle"
    assert profile.finding_code == code and profile.finding_fix
    before = profile.layers[: profile.layers.index(profile.culprit)]
    assert len(before) == 4 and all(layer.error <= layer.noise for layer in before)
    assert profile.culprit.error > 100 * profile.culprit.noise


@pytest.mark.parametrize(
    "model, name, op, code",
    [(SliceNet(), "getitem", "getitem", "EQ005"), (NearestNet(), "interpolate", "interpolate", "EQ004")],
    ids=["strided slicing", "nearest interpolate"],
)
def test_names_functional_subsampling(model: nn.Module, name: str, op: str, code: str, images: torch.Tensor) -> None:
    profile = localize(model.eval(), images, SHIFT, equivariant=False)

    culprit = profile.culprit
    assert culprit is not None and culprit.qualname == name and op in culprit.op
    assert profile.finding_code == code
    assert culprit.file == __file__ and culprit.line is not None
    assert [layer.qualname for layer in profile.layers].index(name) == 4


def test_global_pooling_does_not_hide_linear_subsampling(images: torch.Tensor) -> None:
    # The model output barely moves, yet the slice is found where it aliases.
    profile = localize(SliceNet().eval(), images, SHIFT, equivariant=False)
    assert profile.culprit is not None
    assert profile.layers[-1].error < profile.culprit.error / 2


@pytest.mark.parametrize(
    "model",
    [Net(), Net(nn.Sequential(circular_conv(8, 8), nn.BatchNorm2d(8), nn.ReLU(inplace=True)))],
    ids=["circular stride 1", "batchnorm and in-place relu"],
)
def test_exact_model_has_no_culprit(model: nn.Module, images: torch.Tensor) -> None:
    profile = localize(model.eval(), images, SHIFT, equivariant=False)

    assert profile.culprit is None and profile.finding_code is None
    assert len(profile.layers) >= 9
    assert all(layer.error <= layer.noise for layer in profile.layers)


def test_invariance_is_judged_at_the_output_only(images: torch.Tensor) -> None:
    # A shift-equivariant feature extractor is not invariant: only its output, compared directly, breaks.
    model = nn.Sequential(circular_conv(3, 8), nn.ReLU(), circular_conv(8, 4)).eval()
    equivariant = localize(model, images, SHIFT, equivariant=True)
    invariant = localize(model, images, SHIFT, equivariant=False)
    assert equivariant.culprit is None
    assert invariant.culprit is not None and invariant.culprit.qualname == "2"


def test_stride_two_is_exact_for_shifts_on_its_lattice(images: torch.Tensor) -> None:
    profile = localize(Net(nn.MaxPool2d(2)).eval(), images, T.shift((2, -4), (-2, -1)), equivariant=False)
    assert profile.culprit is None


def test_fractional_shift_of_band_limited_map_is_not_an_error(images: torch.Tensor) -> None:
    # A one-pixel shift is half a pixel on the coarse grid: |DFT| sees that the ideal downsampler and the
    # conv after it are exact; the ReLU that follows is not (sampled nonlinearities alias, Karras 2021).
    profile = localize(Net(IdealDownsample()).eval(), images, SHIFT, equivariant=False)
    assert profile.culprit is not None and profile.culprit.qualname == "head.1"
    names = [layer.qualname for layer in profile.layers]
    assert names.index("head.0") == names.index("head.1") - 1


def test_chunks_give_the_same_profile(images: torch.Tensor) -> None:
    model = Net(nn.MaxPool2d(2)).eval()
    whole = localize(model, images, SHIFT, equivariant=False)
    chunked = localize(model, images, SHIFT, equivariant=False, batch_size=1)
    assert [layer.qualname for layer in chunked.layers] == [layer.qualname for layer in whole.layers]
    for a, b in zip(whole.layers, chunked.layers):
        if a.error > a.noise:
            assert a.error == pytest.approx(b.error, rel=1e-4)
        else:  # rounding noise differs with the batch; it only has to stay noise
            assert b.error <= b.noise


def test_restores_train_mode(images: torch.Tensor) -> None:
    model = Net(nn.MaxPool2d(2)).train()
    localize(model, images, SHIFT, equivariant=False)
    assert model.training


# -- quarter turns and flips --------------------------------------------------------------------


class D4Conv(nn.Conv2d):
    """A circular 3x3 conv whose kernels are symmetric under quarter turns and flips: exactly D4-equivariant."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 3, padding=1, padding_mode="circular")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        turns = [torch.rot90(w, k, (-2, -1)) for k in range(4)]
        w = sum(turns + [t.flip(-1) for t in turns]) / 8
        return self._conv_forward(x, w, self.bias)


class D4Net(nn.Module):
    def __init__(self, subsample: bool) -> None:
        super().__init__()
        self.subsample = subsample
        self.stem = nn.Sequential(D4Conv(3, 8), nn.ReLU(), D4Conv(8, 8), nn.ReLU())
        self.head = nn.Sequential(D4Conv(8, 8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.subsample:
            x = x[..., ::2, ::2]  # even grid: a quarter turn maps even rows to odd ones
        return self.head(x)


@pytest.mark.parametrize("transform", [T.rot90(1), T.rot90(2), T.flip(-1), T.flip(-2)], ids=lambda t: t.label)
def test_rotation_equivariant_model_has_no_culprit(transform: T.Transform, images: torch.Tensor) -> None:
    profile = localize(D4Net(subsample=False).eval(), images, transform, equivariant=False)
    assert profile.layers and profile.culprit is None


def test_quarter_turn_names_the_subsampling(images: torch.Tensor) -> None:
    profile = localize(D4Net(subsample=True).eval(), images, T.rot90(1), equivariant=False)
    assert profile.culprit is not None and profile.culprit.qualname == "getitem"
    assert profile.culprit.params["index"] == "[..., ::2, ::2]"


def test_rot90_names_the_first_unconstrained_conv(images: torch.Tensor) -> None:
    profile = localize(Net().eval(), images, T.rot90(1), equivariant=False)
    assert profile.culprit is not None and profile.culprit.qualname == "stem.0"


# -- other modes, the noise rule, results ---------------------------------------------------------


def test_custom_transform_is_not_localised(images: torch.Tensor) -> None:
    transform = T.custom(lambda x: -x, lambda y: -y)
    profile = localize(Net().eval(), images, transform, equivariant=True)
    assert profile.layers == [] and profile.culprit is None and "not localised" in profile.method


@pytest.mark.parametrize("bad", [[1.0, 2.0], torch.ones(3)], ids=["list", "1-d tensor"])
def test_inputs_that_are_not_a_batch_are_a_usage_error(bad: object) -> None:
    from pytest_equivariance.errors import EquivarianceUsageError

    with pytest.raises(EquivarianceUsageError, match="pass the batch the check ran on"):
        localize(Net(), bad, SHIFT, equivariant=False)


def test_noise_floor_scales_with_precision_depth_and_peaks() -> None:
    assert noise_floor(torch.float64) < noise_floor(torch.float32) < noise_floor(torch.float16)
    assert noise_floor(torch.float32, position=9) > noise_floor(torch.float32)
    assert noise_floor(torch.float32, peak_ratio=10) > noise_floor(torch.float32)


def test_first_break_is_the_first_layer_above_its_floor() -> None:
    layers = [
        LayerError("a", "Conv2d", 1e-9, 1e-6),
        LayerError("b", "MaxPool2d", 0.1, 1e-6),
        LayerError("c", "Conv2d", 0.3, 1e-6),
    ]
    assert first_break(layers) is layers[1]
    assert first_break(layers[:1]) is None


def test_profile_survives_the_json_round_trip(images: torch.Tensor) -> None:
    profile = localize(Net(nn.MaxPool2d(2)).eval(), images, SHIFT, equivariant=False)
    result = CheckResult(
        kind="shift_invariant", passed=False, trials=[], atol=0.0, rtol=0.0, seed=0, device="cpu",
        dtype="float32", mode="circular", dims=(-2, -1), input_shape=(2, 3, 32, 32), profile=profile,
    )
    back = CheckResult.from_json(json.loads(json.dumps(result.to_json())))
    assert back.profile is not None and back.profile.culprit == profile.culprit
    assert back.profile.layers == profile.layers and back.profile.transform == SHIFT.label


# -- a real network ------------------------------------------------------------------------------


def _resnet18(padding_mode: str = "zeros") -> nn.Module:
    torchvision = require("torchvision")
    model = torchvision.models.resnet18(weights=None).eval()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.padding_mode = padding_mode
    return model


@pytest.mark.zoo
def test_resnet18_breaks_at_its_stem() -> None:
    profile = localize(_resnet18(), natural_images((1, 3, 64, 64)), SHIFT, equivariant=False)
    assert profile.culprit is not None and profile.culprit.qualname == "conv1"
    assert profile.culprit.params.get("stride") in (2, [2, 2])
    assert profile.finding_code == "EQ002" and "AntialiasedConv2d" in (profile.finding_fix or "")


@pytest.mark.zoo
def test_circular_resnet18_under_even_shift_breaks_at_the_max_pool() -> None:
    # A shift by 2 is one pixel after the stride-2 stem (exact with circular padding), but half a
    # pixel after the max pool's stride 2 on top of it.
    profile = localize(
        _resnet18("circular"), natural_images((1, 3, 64, 64)), T.shift((2, 2), (-2, -1)), equivariant=False
    )
    assert profile.culprit is not None and profile.culprit.qualname == "maxpool"
    assert [layer.qualname for layer in profile.layers[:3]] == ["conv1", "bn1", "relu"]


# -- models fx cannot trace whole ------------------------------------------------------------------


class Branchy(nn.Module):
    """Data-dependent control flow: fx cannot trace this forward."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(circular_conv(3, 8), nn.ReLU(), circular_conv(8, 8))
        self.pool = nn.MaxPool2d(2)
        self.head = circular_conv(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if x.sum() > 0:
            x = x * 1.0
        return self.head(self.pool(x))


class Wrapped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = Branchy()
        self.out = circular_conv(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.inner(x))


@pytest.mark.parametrize(
    "model, culprit",
    [(Branchy(), "pool"), (Wrapped(), "inner.pool")],
    ids=["untraceable model", "untraceable submodule"],
)
def test_untraceable_parts_are_profiled_with_hooks(model: nn.Module, culprit: str, images: torch.Tensor) -> None:
    profile = localize(model.eval(), images, SHIFT, equivariant=True)
    names = [layer.qualname for layer in profile.layers]
    assert profile.culprit is not None and profile.culprit.qualname == culprit
    assert ("module hooks" in profile.method) == (culprit == "pool")
    assert names.index(culprit) == 3 and names[:3] == [culprit.replace("pool", f"stem.{i}") for i in range(3)]


# -- crop and zero modes --------------------------------------------------------------------------


def zero_padded_net(middle: nn.Module) -> nn.Module:
    def conv() -> nn.Conv2d:
        return nn.Conv2d(8, 8, 3, padding=1)

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), conv(), nn.ReLU(), middle, conv(), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
    )


@pytest.mark.parametrize("mode", ["crop", "zero"])
def test_border_modes_ignore_zero_padding_and_find_aliasing(mode: str) -> None:
    canvas = natural_images((2, 3, 48, 48), seed=1)
    transform = T.shift((1, -3), (-2, -1), mode=mode, canvas=(8, 8) if mode == "crop" else None)

    clean = localize(zero_padded_net(nn.Identity()).eval(), canvas, transform, equivariant=False)
    aliased_model = zero_padded_net(nn.MaxPool2d(2)).eval()
    aliased = localize(aliased_model, canvas, transform, equivariant=False)

    assert clean.culprit is None and mode in clean.method
    assert aliased.culprit is not None and aliased.culprit.qualname == "4"
    assert aliased_model[0].padding_mode == "zeros"  # put back


# -- rotations by interpolation (approximate) ------------------------------------------------------


class RolledD4Net(D4Net):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.roll(self.stem(x), 6, -1))  # shift-equivariant, but not rotation-equivariant


def test_interpolated_rotation_names_only_a_clear_break() -> None:
    x = natural_images((2, 3, 33, 33), seed=1)
    transform = T.rotation(30.0)

    with seeded(0):  # random-init weights: the same in every order and on every worker
        exact = localize(D4Net(subsample=False).eval(), x, transform, equivariant=False)
        broken = localize(RolledD4Net(subsample=False).eval(), x, transform, equivariant=False)

    assert "approximate" in exact.method and exact.culprit is None
    assert broken.culprit is not None and broken.culprit.qualname == "roll"


def test_quarter_turn_of_a_non_square_input(images: torch.Tensor) -> None:
    wide = natural_images((2, 3, 16, 32), seed=2)
    profile = localize(D4Net(subsample=True).eval(), wide, T.rot90(1), equivariant=False)
    assert len(profile.layers) >= 8
    assert profile.culprit is not None and profile.culprit.qualname == "getitem"


def test_one_dimensional_signals() -> None:
    def conv() -> nn.Conv1d:
        return nn.Conv1d(4, 4, 3, padding=1, padding_mode="circular")

    model = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(), conv(), nn.MaxPool1d(2), conv()
    )
    profile = localize(model.eval(), natural_images((2, 2, 64), seed=4), T.shift((3,), (-1,)), equivariant=True)
    assert profile.culprit is not None and profile.culprit.qualname == "3"
    assert profile.finding_code == "EQ001"
