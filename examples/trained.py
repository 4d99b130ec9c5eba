"""A small shape classifier trained in the test run, and its validation loader (test_trained.py).

The data are :func:`pytest_equivariance.inputs.labelled_shapes`: one of five shapes at a random
position on a faint noise background, generated from a seed, nothing downloaded. As in Zhang 2019,
the network sees ``INPUT``-pixel crops of larger ``CANVAS``-pixel images: training draws a random
crop per batch, and the shift protocols crop the validation canvases at different offsets.

``ShapesCNN`` subsamples with two stride-2 max pools and a stride-2 convolution, all without a
low-pass filter, so a one-pixel move of the crop can change its prediction; ``antialias`` replaces
each with its blurred form (``MaxBlurPool2d``, ``AntialiasedConv2d``), keeping the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pytest_equivariance.inputs import SHAPES, labelled_shapes

CANVAS, INPUT = 34, 24  # validation images, and the crop the model sees
MARGIN = INPUT // 2 - 2  # shape centres stay this far inside the canvas, so every crop holds most of it


class ShapesCNN(nn.Module):
    """A VGG-like classifier of the five shapes: conv, max pool, conv, max pool, strided conv, pool, linear."""

    def __init__(self, channels: int = 1, classes: int = len(SHAPES)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 24, 3, stride=2, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train(model: nn.Module, *, steps: int = 250, seed: int = 0) -> nn.Module:
    """Train ``model`` in place on random ``INPUT``-pixel crops of shapes; return it in eval mode.

    The batches and crop offsets depend on ``seed`` only, so two models trained with the same seed
    see the same data in the same order.
    """
    images, labels = labelled_shapes(1024, CANVAS, seed=seed, margin=MARGIN)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(steps):
        pick = torch.randint(0, len(images), (32,), generator=generator)
        oy, ox = torch.randint(0, CANVAS - INPUT + 1, (2,), generator=generator).tolist()
        loss = F.cross_entropy(model(images[pick, :, oy : oy + INPUT, ox : ox + INPUT]), labels[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def validation_loader(count: int = 500, *, batch_size: int = 100, seed: int = 1) -> DataLoader:
    """Held-out ``(images, labels)`` batches of ``CANVAS``-pixel shapes (a different seed from training)."""
    images, labels = labelled_shapes(count, CANVAS, seed=seed, margin=MARGIN)
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)


def embedded_loader(count: int = 500, size: int = 15, *, batch_size: int = 100, seed: int = 1) -> DataLoader:
    """Held-out shapes on ``size``-pixel images, smaller than the model's ``INPUT``: Azulay & Weiss's
    embedding settings paste them into a black ``INPUT``-pixel canvas."""
    images, labels = labelled_shapes(count, size, seed=seed, margin=size // 2 - 3)
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)
