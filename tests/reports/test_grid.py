"""shift_grid: the error over every shift of a window, on models whose behaviour is known exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_equivariance.check.grid import shift_grid
from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.inputs import natural_images

NOISE = 1e-5  # float32 rounding of a tiny network; aliasing errors are orders of magnitude larger


def _circular_conv(channels: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1, padding_mode="circular"),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1, padding_mode="circular"),
    )


def _strided_max_pool(*, global_pool: bool) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(), nn.MaxPool2d(2)]
    if global_pool:
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


@pytest.fixture
def images() -> torch.Tensor:
    return natural_images((2, 3, 16, 16), seed=0)


def test_exactly_equivariant_model_is_flat(images: torch.Tensor) -> None:
    grid = shift_grid(_circular_conv(), images, window=8, equivariant=True)
    assert grid.offsets_y == list(range(8)) and grid.offsets_x == list(range(8))
    assert len(grid.errors) == 8 and all(len(row) == 8 for row in grid.errors)
    assert max(max(row) for row in grid.errors) < NOISE


def test_stride_two_aliasing_shows_the_lattice(images: torch.Tensor) -> None:
    grid = shift_grid(_strided_max_pool(global_pool=True), images, window=8, equivariant=False)
    for i, dy in enumerate(grid.offsets_y):
        for j, dx in enumerate(grid.offsets_x):
            error = grid.errors[i][j]
            if dy % 2 == 0 and dx % 2 == 0:
                assert error < NOISE, (dy, dx, error)
            else:
                assert error > 1e-3, (dy, dx, error)


def test_equivariance_of_a_strided_model_is_measured_on_its_output_lattice(images: torch.Tensor) -> None:
    grid = shift_grid(_strided_max_pool(global_pool=False), images, window=4, equivariant=True)
    assert grid.offsets_y == [0, 2, 4, 6] and grid.offsets_x == [0, 2, 4, 6]
    assert max(max(row) for row in grid.errors) < NOISE


def test_explicit_lattice_spaces_the_offsets(images: torch.Tensor) -> None:
    grid = shift_grid(_strided_max_pool(global_pool=True), images, window=3, equivariant=False, lattice=(2, 4))
    assert grid.offsets_y == [0, 2, 4] and grid.offsets_x == [0, 4, 8]
    assert max(max(row) for row in grid.errors) < NOISE  # every shift is on the pooling lattice


def test_window_is_clipped_to_distinct_circular_shifts() -> None:
    x = natural_images((1, 3, 6, 6), seed=1)
    grid = shift_grid(_circular_conv(), x, window=32, equivariant=True)
    assert grid.offsets_y == list(range(6)) and grid.offsets_x == list(range(6))


def test_chunking_does_not_change_the_grid(images: torch.Tensor) -> None:
    model = _strided_max_pool(global_pool=True)
    whole = shift_grid(model, images, window=4, equivariant=False)
    one_by_one = shift_grid(model, images, window=4, equivariant=False, batch_size=3)
    for a, b in zip(whole.errors, one_by_one.errors):
        assert a == pytest.approx(b, abs=1e-6)


def test_model_training_flag_is_restored(images: torch.Tensor) -> None:
    model = _circular_conv().train()
    shift_grid(model, images, window=2, equivariant=True)
    assert model.training


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "rotate"}, "'circular', 'crop', 'zero'"),
        ({"mode": "crop"}, "canvas=31"),
        ({"mode": "crop", "canvas": 8}, "smaller canvas"),
        ({"window": 0}, "window=32"),
        ({"dims": (-3, -1)}, "dims=(-2, -1)"),
        ({"lattice": (1, 1)}, "lattice=(2, 2)"),
    ],
)
def test_usage_errors_name_the_remedy(images: torch.Tensor, kwargs: dict, message: str) -> None:
    with pytest.raises(EquivarianceUsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        shift_grid(_strided_max_pool(global_pool=False), images, equivariant=True, **kwargs)


def test_equivariance_grid_needs_spatial_outputs(images: torch.Tensor) -> None:
    with pytest.raises(EquivarianceUsageError, match="equivariant=False"):
        shift_grid(_strided_max_pool(global_pool=True), images, window=2, equivariant=True)


class _FeaturesAndScores(nn.Module):
    """A feature map (equivariant) and class scores from it (invariant), as detection-style heads."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _circular_conv()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(features.mean((-2, -1)))


def test_leaves_without_spatial_dims_are_compared_as_invariant(images: torch.Tensor) -> None:
    grid = shift_grid(_FeaturesAndScores(), images, window=4, equivariant=True)
    assert max(max(row) for row in grid.errors) < NOISE


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_grid_on_cuda_matches_the_cpu_grid(images: torch.Tensor) -> None:
    model = _strided_max_pool(global_pool=True)
    cpu = shift_grid(model, images, window=4, equivariant=False, device="cpu")
    gpu = shift_grid(model, images, window=4, equivariant=False, device="cuda")
    assert next(model.parameters()).device.type == "cpu"  # put back where it came from
    for a, b in zip(cpu.errors, gpu.errors):
        assert a == pytest.approx(b, abs=1e-4)


def _zero_padded_conv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(3, 4, 3, padding=1)


def test_crop_mode_shifts_crops_of_the_canvas() -> None:
    canvas = natural_images((2, 3, 20, 20), seed=2)  # 12 x 12 crops, 4 pixels of canvas each side
    grid = shift_grid(_zero_padded_conv(), canvas, window=32, mode="crop", canvas=4, equivariant=True, margin=1)
    assert grid.offsets_y == [0, 1, 2, 3, 4]  # clipped to the canvas
    # Away from the border a zero-padded conv is exactly equivariant on real content...
    assert max(max(row) for row in grid.errors) < NOISE
    # ...but its padding shows within one pixel of the border.
    bordered = shift_grid(_zero_padded_conv(), canvas, window=3, mode="crop", canvas=4, equivariant=True)
    assert bordered.errors[0][0] < NOISE and bordered.errors[1][1] > 1e-3


def test_zero_mode_masks_what_was_shifted_in() -> None:
    x = natural_images((2, 3, 12, 12), seed=3)
    grid = shift_grid(_zero_padded_conv(), x, window=4, mode="zero", equivariant=True, margin=1)
    assert max(max(row) for row in grid.errors) < NOISE
