"""The procedural shapes dataset of examples/shapes: deterministic, balanced, croppable; the CNN aliases."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from pytest_equivariance.lint import lint

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shapes"


def load(name: str):
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))  # train.py imports its sibling shapes.py
    spec = importlib.util.spec_from_file_location(f"shapes_example_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dataset_is_deterministic_and_balanced() -> None:
    shapes = load("shapes")
    images, labels = shapes.make_dataset(50, 44, seed=3)
    again, same_labels = shapes.make_dataset(50, 44, seed=3)
    assert images.shape == (50, 1, 44, 44)
    assert torch.equal(images, again) and torch.equal(labels, same_labels)
    assert torch.bincount(labels).tolist() == [10] * len(shapes.CLASSES)
    # Each canvas holds a bright shape on faint noise.
    assert (images.amax(dim=(1, 2, 3)) > 0.5).all()


def test_crop_takes_the_window_at_each_offset() -> None:
    shapes = load("shapes")
    images = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    offsets = torch.tensor([[0, 0], [2, 1]])
    crops = shapes.crop(images, offsets, 3)
    assert torch.equal(crops[0, 0], images[0, 0, 0:3, 0:3])
    assert torch.equal(crops[1, 0], images[1, 0, 2:5, 1:4])


def test_example_cnn_aliases_until_antialiased() -> None:
    train = load("train")
    from pytest_equivariance.fix import antialias

    model = train.small_cnn(5)
    shape = (1, 1, train.INPUT, train.INPUT)
    assert len(lint(model, shape, select=["EQ001", "EQ002", "EQ003"])) == 3
    assert lint(antialias(model, example_input=shape), shape, select=["EQ001", "EQ002", "EQ003"]) == []
