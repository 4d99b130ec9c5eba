"""localize(): the first layer that breaks equivariance is named; exact models have no culprit."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_equivariance.check import transforms as T
from pytest_equivariance.check.localize import first_break, localize, noise_floor
from pytest_equivariance.check.result import CheckResult, LayerError
from pytest_equivariance.inputs import natural_images

SHIFT = T.shift((1, -3), (-2, -1))  # odd: every stride-2 layer sees a half-pixel shift


def circular_conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="circular")


class Net(nn.Module):
    """Clean circular stride-1 layers, one middle layer, more clean layers, then global pooling."""

    def __init__(self, middle: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(circular_conv(3, 8), nn.ReLU(), circular_conv(8, 8), nn.ReLU())
        self.middle = middle if middle is not None else nn.Identity()
        self.head = nn.Sequential(circular_conv(8, 8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))

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
    "strided max pool": (lambda: Net(nn.MaxPool2d(2)), "middle"),
    "strided conv": (lambda: Net(circular_conv(8, 8, stride=2)), "middle"),
    "strided avg pool": (lambda: Net(nn.AvgPool2d(2)), "middle"),
    "nearest downscaling module": (lambda: Net(nn.Upsample(scale_factor=0.5, mode="nearest")), "middle"),
}


@pytest.mark.parametrize("name", list(CULPRITS))
def test_names_the_one_aliasing_module(name: str, images: torch.Tensor) -> None:
    build, qualname = CULPRITS[name]
    profile = localize(build().eval(), images, SHIFT, equivariant=False)

    assert profile.culprit is not None and profile.culprit.qualname == qualname
    before = profile.layers[: profile.layers.index(profile.culprit)]
    assert len(before) == 4 and all(layer.error <= layer.noise for layer in before)
    assert profile.culprit.error > 100 * profile.culprit.noise


@pytest.mark.parametrize(
    "model, op",
    [(SliceNet(), "getitem"), (NearestNet(), "interpolate")],
    ids=["strided slicing", "nearest interpolate"],
)
def test_names_functional_subsampling(model: nn.Module, op: str, images: torch.Tensor) -> None:
    profile = localize(model.eval(), images, SHIFT, equivariant=False)

    assert profile.culprit is not None
    assert op in profile.culprit.op or op in profile.culprit.qualname
    assert [layer.qualname for layer in profile.layers].index(profile.culprit.qualname) == 4


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

    assert profile.culprit is None
    assert len(profile.layers) >= 9
    assert all(layer.error <= layer.noise for layer in profile.layers)


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
        assert a.error == pytest.approx(b.error, rel=1e-4, abs=1e-12)


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
    assert profile.culprit is not None and profile.culprit.op == "getitem"


def test_rot90_names_the_first_unconstrained_conv(images: torch.Tensor) -> None:
    profile = localize(Net().eval(), images, T.rot90(1), equivariant=False)
    assert profile.culprit is not None and profile.culprit.qualname == "stem.0"


# -- other modes, the noise rule, results ---------------------------------------------------------


def test_custom_transform_is_not_localised(images: torch.Tensor) -> None:
    transform = T.custom(lambda x: -x, lambda y: -y)
    profile = localize(Net().eval(), images, transform, equivariant=True)
    assert profile.layers == [] and profile.culprit is None and "not localised" in profile.method


def test_noise_floor_scales_with_precision_depth_and_peaks() -> None:
    assert noise_floor(torch.float64) < noise_floor(torch.float32) < noise_floor(torch.float16)
    assert noise_floor(torch.float32, position=9) > noise_floor(torch.float32)
    assert noise_floor(torch.float32, peak_ratio=10) > noise_floor(torch.float32)


def test_first_break_is_the_first_layer_above_its_floor() -> None:
    layers = [LayerError("a", "Conv2d", 1e-9, 1e-6), LayerError("b", "MaxPool2d", 0.1, 1e-6), LayerError("c", "Conv2d", 0.3, 1e-6)]
    assert first_break(layers) is layers[1]
    assert first_break(layers[:1]) is None
    # approximate measures: a layer must also rise well above what it inherited
    assert first_break(layers, approximate=True, baseline=0.2) is None


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
    torchvision = pytest.importorskip("torchvision")
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


@pytest.mark.zoo
def test_circular_resnet18_under_even_shift_breaks_at_the_max_pool() -> None:
    # A shift by 2 is one pixel after the stride-2 stem (exact with circular padding), but half a
    # pixel after the max pool's stride 2 on top of it.
    profile = localize(
        _resnet18("circular"), natural_images((1, 3, 64, 64)), T.shift((2, 2), (-2, -1)), equivariant=False
    )
    assert profile.culprit is not None and profile.culprit.qualname == "maxpool"
    assert [layer.qualname for layer in profile.layers[:3]] == ["conv1", "bn1", "relu"]
