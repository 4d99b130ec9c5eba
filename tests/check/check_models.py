"""Tiny models whose equivariance is known exactly, for the dynamic-check tests.

Circular padding with stride 1 commutes exactly with torch.roll; global average pooling makes that
invariance; kernels summed over their four quarter turns commute with rot90 on square inputs. Stride-2
max pooling aliases: it commutes only with shifts by multiples of 2.
"""

from __future__ import annotations

from collections import namedtuple

import torch
from torch import nn
import torch.nn.functional as F


def seeded(build, seed: int = 0):
    """Build a model with a fixed initialisation, leaving the global RNG alone."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def circular_net(channels: int = 3, out: int = 4, ndim: int = 2, padding_mode: str = "circular") -> nn.Module:
    """Stride-1 conv net: exactly shift-equivariant with circular padding."""
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[ndim]
    return seeded(
        lambda: nn.Sequential(
            conv(channels, 6, 3, padding=1, padding_mode=padding_mode),
            nn.ReLU(),
            conv(6, out, 3, padding=1, padding_mode=padding_mode),
        )
    )


def strided_net(channels: int = 3) -> nn.Module:
    """Circular conv, stride-2 max pool, circular conv: equivariant only on the stride-2 lattice."""
    return seeded(
        lambda: nn.Sequential(
            nn.Conv2d(channels, 6, 3, padding=1, padding_mode="circular"),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 4, 3, padding=1, padding_mode="circular"),
        )
    )


def pooled_classifier(channels: int = 3, classes: int = 5, aliasing: bool = False) -> nn.Module:
    """Circular convs, global average pooling, linear head: shift-invariant unless ``aliasing``."""
    pool: nn.Module = nn.MaxPool2d(2) if aliasing else nn.Identity()
    return seeded(
        lambda: nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1, padding_mode="circular"),
            nn.ReLU(),
            pool,
            nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular"),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, classes),
        )
    )


class C4Conv(nn.Module):
    """A convolution whose kernels are summed over their four quarter turns (C4-symmetric)."""

    def __init__(self, cin: int, cout: int, size: int = 3, symmetric: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, size, size) / (cin * size))
        self.bias = nn.Parameter(torch.randn(cout) * 0.1)
        self.symmetric = symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if self.symmetric:
            w = sum(torch.rot90(w, k, (-2, -1)) for k in range(4)) / 4
        return F.conv2d(x, w, self.bias, padding=w.shape[-1] // 2)


def c4_net(channels: int = 3, symmetric: bool = True, head: bool = False) -> nn.Module:
    """Rotation-equivariant feature map (or, with ``head``, rotation-invariant classifier)."""

    def build() -> nn.Module:
        layers = [C4Conv(channels, 6, symmetric=symmetric), nn.Tanh(), C4Conv(6, 4, symmetric=symmetric)]
        if head:
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)]
        return nn.Sequential(*layers)

    return seeded(build)


class DictOutput(nn.Module):
    """Segmentation-style output: a dict with a feature map and class scores."""

    def __init__(self, features: nn.Module, side: str = "same") -> None:
        super().__init__()
        self.features = features
        self.side = side  # "same", "broken" (loses the wrap-around) or "pooled" (twice as coarse)

    def forward(self, x):
        y = self.features(x)
        side = {
            "same": lambda: y,
            "broken": lambda: F.pad(y[..., :-1, :-1], (0, 1, 0, 1)),
            "pooled": lambda: F.max_pool2d(y, 2),
        }[self.side]()
        return {"features": y, "side": side, "logits": y.mean((-2, -1))}


Pair = namedtuple("Pair", ["dense", "broken"])


class TupleOutput(nn.Module):
    """Returns a tuple (or a namedtuple) of an equivariant map and one that breaks circular shifts."""

    def __init__(self, features: nn.Module, named: bool = False, aliasing: bool = True) -> None:
        super().__init__()
        self.features = features
        self.named = named
        self.aliasing = aliasing

    def forward(self, x):
        y = self.features(x)
        # Dropping the last row and column and zero-padding them back loses the wrap-around.
        broken = F.pad(y[..., :-1, :-1], (0, 1, 0, 1)) if self.aliasing else y
        return Pair(y, broken) if self.named else (y, broken)


def dropout_classifier() -> nn.Module:
    """Invariant in eval mode; in train mode dropout would make every forward different."""
    return seeded(
        lambda: nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 4),
        )
    )


class CornerClassifier(nn.Module):
    """Two classes decided by the sign of the top-left pixel: class 0 when it is positive, else class 1."""

    def forward(self, x):
        corner = x[:, 0, 0, 0]
        return torch.stack([corner, -corner], dim=1)


#: Shifts (H, W) for ``corner_images``: each brings a different pixel into the top-left corner.
CORNER_SHIFTS = [(0, 1), (1, 0)]


def corner_images() -> torch.Tensor:
    """Four 1x4x4 images whose top-1 class under ``CornerClassifier`` survives a known set of shifts.

    A shift by (0, 1) moves content toward +W, so the corner then shows pixel (0, 3); a shift by
    (1, 0) shows pixel (3, 0). Every other pixel is positive, so the reference class is 0 and an
    image keeps it exactly under the shifts whose incoming pixel is positive:

    ====== ======= ======= =========================
    image  (0, 3)  (3, 0)  class kept under
    ====== ======= ======= =========================
    0      +       +       both shifts
    1      +       -       (0, 1) only
    2      +       -       (0, 1) only
    3      -       -       neither
    ====== ======= ======= =========================

    So the shift by (0, 1) keeps three images in four (consistency 0.75), the shift by (1, 0) one
    in four (0.25), their mean is 0.5, and one image in four survives both (three survive either).
    """
    x = torch.ones(4, 1, 4, 4)
    x[3, 0, 0, 3] = -1.0
    x[1:, 0, 3, 0] = -1.0
    return x
