"""A procedural, labelled image dataset: one shape at a random position on a noisy canvas.

Five classes (circle, ring, square, triangle, cross), each with a random centre, size, rotation and
brightness, drawn with hard edges (plenty of high frequencies for a strided network to alias) on a
faint noise background (``pytest_equivariance.inputs.labelled_shapes``). Everything is generated from
a seed; nothing is downloaded.

Zhang 2019's *crop* protocol needs canvases larger than the network's input: a model sees crops of
a canvas at different offsets, and its top-1 prediction should not depend on the offset.
"""

from __future__ import annotations

import torch

from pytest_equivariance.inputs import SHAPES as CLASSES
from pytest_equivariance.inputs import labelled_shapes


def make_dataset(count: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images, labels)``: ``count`` canvases of ``size`` x ``size`` with balanced labels.

    The package's :func:`~pytest_equivariance.inputs.labelled_shapes`, the same images the test
    suite trains on.
    """
    return labelled_shapes(count, size, seed=seed)


def crop(images: torch.Tensor, offsets: torch.Tensor, size: int) -> torch.Tensor:
    """Return the ``size`` x ``size`` crop of each image at its ``(dy, dx)`` offset."""
    rows = offsets[:, 0, None] + torch.arange(size)  # (n, size)
    cols = offsets[:, 1, None] + torch.arange(size)
    batch = torch.arange(len(images))[:, None, None]
    return images[batch, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def random_offsets(count: int, max_offset: int, generator: torch.Generator) -> torch.Tensor:
    """Return ``(count, 2)`` integer crop offsets drawn uniformly from ``0..max_offset``."""
    return torch.randint(0, max_offset + 1, (count, 2), generator=generator)
