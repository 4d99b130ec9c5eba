"""A procedural, labelled image dataset: one shape at a random position on a noisy canvas.

Five classes (circle, ring, square, triangle, cross), each with a random centre, size, rotation and
brightness, drawn with hard edges (plenty of high frequencies for a strided network to alias) on a
faint noise background. Everything is generated from a seed; nothing is downloaded.

Zhang 2019's *crop* protocol needs canvases larger than the network's input: a model sees crops of
a canvas at different offsets, and its top-1 prediction should not depend on the offset.
"""

from __future__ import annotations

import math

import torch

CLASSES = ("circle", "ring", "square", "triangle", "cross")


def render(labels: torch.Tensor, size: int, generator: torch.Generator, margin: int = 10) -> torch.Tensor:
    """Return ``(len(labels), 1, size, size)`` images, one shape of class ``labels[i]`` in each.

    Centres lie at least ``margin`` pixels inside the canvas, so that a crop of the canvas smaller
    by up to ``margin`` pixels on each side still contains most of the shape.
    """
    n = len(labels)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, 1, 1, generator=generator)

    cy, cx = uniform(margin, size - margin), uniform(margin, size - margin)
    radius = uniform(3.5, 7.0)
    theta = uniform(0.0, 2 * math.pi)
    brightness = uniform(0.6, 1.0)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    dy, dx = yy - cy, xx - cx
    u = dx * torch.cos(theta) + dy * torch.sin(theta)
    v = -dx * torch.sin(theta) + dy * torch.cos(theta)
    dist = torch.sqrt(dx**2 + dy**2)
    masks = torch.stack(
        [
            dist <= radius,
            (dist <= radius) & (dist >= 0.55 * radius),
            (u.abs() <= 0.8 * radius) & (v.abs() <= 0.8 * radius),
            (v >= -0.5 * radius) & (math.sqrt(3) * u.abs() + v <= radius),
            ((u.abs() <= radius) & (v.abs() <= 0.3 * radius)) | ((v.abs() <= radius) & (u.abs() <= 0.3 * radius)),
        ],
        dim=1,
    )  # (n, classes, size, size)
    mask = masks[torch.arange(n), labels].float()
    noise = 0.1 * torch.randn(n, size, size, generator=generator)
    return (brightness * mask + noise).unsqueeze(1)


def make_dataset(count: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images, labels)``: ``count`` canvases of ``size`` x ``size`` with balanced labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % len(CLASSES)
    labels = labels[torch.randperm(count, generator=generator)]
    return render(labels, size, generator), labels


def crop(images: torch.Tensor, offsets: torch.Tensor, size: int) -> torch.Tensor:
    """Return the ``size`` x ``size`` crop of each image at its ``(dy, dx)`` offset."""
    rows = offsets[:, 0, None] + torch.arange(size)  # (n, size)
    cols = offsets[:, 1, None] + torch.arange(size)
    batch = torch.arange(len(images))[:, None, None]
    return images[batch, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def random_offsets(count: int, max_offset: int, generator: torch.Generator) -> torch.Tensor:
    """Return ``(count, 2)`` integer crop offsets drawn uniformly from ``0..max_offset``."""
    return torch.randint(0, max_offset + 1, (count, 2), generator=generator)
