"""The names the docs' Python blocks use without defining them: small, cheap, real objects.

The prose of docs/*.md speaks of the reader's own `model`, `images`, `validation_set`, `Backbone`...
Each is the smallest real thing of its kind: circular-padded CNNs of a few channels whose symmetry
is known exactly (a stride-1 backbone of rot90-symmetric kernels is shift- and rot90-equivariant,
the same with global pooling is invariant, strided max pooling aliases), natural-like images and
labelled shapes from
:mod:`pytest_equivariance.inputs`. :func:`names` builds them afresh for every block, so no block
sees what another one changed.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pytest_equivariance.inputs import labelled_shapes, natural_images


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, padding_mode="circular")


class _SymmetricConv2d(nn.Conv2d):
    """A circular-padded 3x3 convolution whose kernel is the mean of its four 90° rotations."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, kernel_size=3, padding=1, padding_mode="circular")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        symmetric = sum(w.rot90(k, (-2, -1)) for k in range(4)) / 4
        return self._conv_forward(x, symmetric, self.bias)


class Backbone(nn.Module):
    """Symmetric circular convolutions at stride 1, a feature map out: shift- and rot90-equivariant."""

    def __init__(self, channels: int = 3, width: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(_SymmetricConv2d(channels, width), nn.ReLU(), _SymmetricConv2d(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Classifier(nn.Module):
    """:class:`Backbone`, global average pooling and a linear head: shift- and rot90-invariant."""

    def __init__(self, channels: int = 3, width: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.backbone = Backbone(channels, width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x).mean(dim=(-2, -1)))


class AliasingCNN(nn.Module):
    """Circular convolutions with stride-2 max pooling and no blur: aliases under odd shifts."""

    def __init__(self, channels: int = 3, width: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv(channels, width), nn.ReLU(), nn.MaxPool2d(2, stride=2),
            _conv(width, width), nn.ReLU(), nn.MaxPool2d(2, stride=2),
        )
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


#: What ``build`` answers for the model names the docs use: backbones are maps, heads classify.
_BY_NAME = {"resnet18": Backbone, "resnet34": Backbone, "resnet18_head": Classifier}


def build(model: str | type[nn.Module]) -> nn.Module:
    """Return the reader's model (a class, or a name in :data:`_BY_NAME`) seeded, in eval mode."""
    cls = _BY_NAME[model] if isinstance(model, str) else model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return cls().eval()


def load_checkpoint() -> nn.Module:
    """Return the reader's trained classifier: here a seeded :class:`Classifier`."""
    return build(Classifier)


def build_model() -> nn.Module:
    """Return the reader's model from a factory: here a seeded :class:`Classifier`."""
    return build(Classifier)


def names() -> dict[str, object]:
    """Return a fresh namespace with every name the docs' blocks take as given."""
    model = build(AliasingCNN)
    validation_set = TensorDataset(*labelled_shapes(8, 40, seed=1, channels=3))
    loader = DataLoader(validation_set, batch_size=4)
    return {
        "torch": torch, "nn": nn, "F": F, "pytest": pytest, "DataLoader": DataLoader,
        "Backbone": Backbone, "Classifier": Classifier, "MyClassifier": Classifier,
        "AliasingCNN": AliasingCNN, "build": build, "build_model": build_model,
        "load_checkpoint": load_checkpoint, "MODEL": build(Classifier),
        "model": model, "checkpoint": model.state_dict(), "images": natural_images((2, 3, 32, 32)),
        "validation_set": validation_set, "loader": loader,
        "hf_loader": [{"pixel_values": x, "labels": y} for x, y in loader],
    }
