"""The example suite's shape classifier (``examples/trained.py``), trained briefly for the data-set checks.

Trained for a few seconds on one CPU thread on random crops of :func:`labelled_shapes` canvases:
enough that its predictions follow the images, and that shifts change some of them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pytest_equivariance.inputs import labelled_shapes

_spec = importlib.util.spec_from_file_location(
    "examples_trained", Path(__file__).resolve().parents[2] / "examples" / "trained.py"
)
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)

CROP = _example.INPUT


def small_cnn() -> nn.Module:
    """Strided max pooling and a strided convolution: a classifier that aliases."""
    return _example.ShapesCNN()


def train(model: nn.Module, *, steps: int = 150, seed: int = 0) -> nn.Module:
    """Train ``model`` in place on random ``CROP``-pixel crops of shapes; return it in eval mode."""
    return _example.train(model, steps=steps, seed=seed)


def validation(count: int, size: int, *, batch_size: int, seed: int = 1) -> DataLoader:
    """A loader of ``(images, labels)`` batches of held-out shapes on ``size``-pixel canvases."""
    images, labels = labelled_shapes(count, size, seed=seed, margin=_example.MARGIN)
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)
