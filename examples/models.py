"""Small models whose symmetry is known exactly, for the example test suite (test_models.py).

- ``CircularConvNet``: stride-1 convolutions with circular padding. A circular shift of the input
  circularly shifts every feature map by the same amount, so the net is exactly shift-equivariant.
- ``GlobalPoolClassifier``: the same body, then global average pooling and a linear head. Pooling
  over the whole (circular) grid forgets where things were: exactly shift-invariant.
- ``Rot90SymmetricNet``: every kernel is averaged over its four 90° rotations, so it is unchanged by
  them; with symmetric zero padding and odd kernels, rotating a square input by 90° rotates every
  feature map (``features``) and leaves the pooled logits unchanged: exactly rot90-equivariant and
  rot90-invariant.
- ``AliasingCNN``: strided max pooling subsamples without low-pass filtering, so a one-pixel shift
  changes what survives the subsampling (Azulay & Weiss 2019): *not* shift-invariant. Shifts that are
  multiples of its total stride (4) still commute with it exactly, since its padding is circular.
- ``AntialiasedCNN``: the same network with each strided max pool replaced by ``MaxBlurPool2d``
  (max pool at stride 1, then a binomial blur before subsampling; Zhang 2019), as ``equiv-lint``
  suggests: still not exactly invariant, but its error under odd shifts is several times smaller.
  ``antialias(AliasingCNN(), method="polyphase")`` is exactly invariant (test_models.py).

Every constructor takes no arguments, so ``equiv-lint examples/models.py`` can build them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, padding_mode="circular")


class CircularConvNet(nn.Module):
    """Three circular-padded 3x3 convolutions at stride 1: exactly shift-equivariant."""

    def __init__(self, channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, width), nn.ReLU(), _conv(width, width), nn.ReLU(), _conv(width, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class GlobalPoolClassifier(nn.Module):
    """Circular convolutions, global average pooling, a linear head: exactly shift-invariant."""

    def __init__(self, channels: int = 3, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(_conv(channels, width), nn.ReLU(), _conv(width, width), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class Rot90SymmetricConv2d(nn.Conv2d):
    """A 3x3 convolution whose kernel is the mean of its four 90° rotations (so rot90-invariant)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        symmetric = (w + w.rot90(1, (-2, -1)) + w.rot90(2, (-2, -1)) + w.rot90(3, (-2, -1))) / 4
        return F.conv2d(x, symmetric, self.bias, padding=1)


class Rot90SymmetricNet(nn.Module):
    """Rot90-symmetric convolutions (``features``: equivariant), then global pooling: invariant."""

    def __init__(self, channels: int = 3, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            Rot90SymmetricConv2d(channels, width), nn.ReLU(), Rot90SymmetricConv2d(width, width), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class AliasingCNN(nn.Module):
    """Convolutions with stride-2 max pooling and no blur: aliases, so not shift-invariant."""

    def __init__(self, channels: int = 3, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv(channels, width),
            nn.ReLU(),
            nn.MaxPool2d(2, stride=2),
            _conv(width, width),
            nn.ReLU(),
            nn.MaxPool2d(2, stride=2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class AntialiasedCNN(AliasingCNN):
    """``AliasingCNN`` with blur before each subsampling (MaxBlurPool2d): far less aliasing."""

    def __init__(self, channels: int = 3, width: int = 8, classes: int = 10) -> None:
        from pytest_equivariance import MaxBlurPool2d

        super().__init__(channels, width, classes)
        # circular padding in the blur too, so shifts on the stride lattice stay exact
        self.features[2] = MaxBlurPool2d(kernel_size=2, stride=2, padding_mode="circular")
        self.features[5] = MaxBlurPool2d(kernel_size=2, stride=2, padding_mode="circular")


class ImageGradient(nn.Module):
    """Central-difference gradient ``(∂I/∂x, ∂I/∂y)`` of each channel, circular: a vector field.

    Under a rotation of the image its output rotates as a field *and* each pixel's vector turns with
    it, so it is equivariant only when its output is declared a vector field (``output_fields="vector"``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = F.pad(x, (1, 1, 1, 1), mode="circular")
        return torch.cat([(p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2, (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2], 1)


def build(model_class: type[nn.Module], seed: int = 0) -> nn.Module:
    """Return ``model_class()`` with weights drawn from ``seed``, leaving the global RNG as it was.

    Seeded construction makes a test's model the same whether it runs alone or in the whole suite,
    so the command a failure prints reproduces the same figures.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class()
