"""Two models whose outputs say where things are: a keypoint regressor and a peak detector.

Both are exactly equivariant by construction, so their tests can demand exactness:

- ``KeypointNet`` ends in a *circular* soft-argmax (the circular mean of each heatmap's softmax,
  along x and along y), which a circular shift moves exactly, modulo the image size. Its two heatmap
  kernels are mirror images of each other, so a horizontal flip swaps its "left" and "right"
  keypoints: the test says so with ``flip_pairs``.
- ``PeakDetector`` is a detector in torchvision's output format (a list of dicts of ``boxes``,
  ``labels``, ``scores``): circular convolutions to class heatmaps, a circular 3x3 non-maximum
  suppression above a fixed threshold, and a 6x6 box around each peak. ``stride=2`` max-pools the
  heatmaps first, which quantises the peaks to two pixels: its boxes land a pixel off under odd shifts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def circular_soft_argmax(heatmaps: torch.Tensor, beta: float = 4.0) -> torch.Tensor:
    """``(N, K, H, W)`` heatmaps -> ``(N, K, 2)`` (x, y) in input pixels, pixel centres at ``j + 0.5``."""
    n, k, h, w = heatmaps.shape
    p = torch.softmax(beta * heatmaps.flatten(2), -1).view(n, k, h, w)
    coords = []
    for size, marginal in ((w, p.sum(-2)), (h, p.sum(-1))):
        phase = 2 * math.pi * (torch.arange(size, dtype=p.dtype) + 0.5) / size
        angle = torch.atan2((marginal * phase.sin()).sum(-1), (marginal * phase.cos()).sum(-1))
        coords.append(torch.remainder(angle * size / (2 * math.pi), size))
    return torch.stack(coords, -1)


class KeypointNet(nn.Module):
    """A "left" and a "right" keypoint from two mirrored 5x5 kernels (circular padding)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 5, padding=2, padding_mode="circular", bias=False)
        left = torch.randn(1, 5, 5, generator=torch.Generator().manual_seed(0))
        left = left + left.flip(-2)  # symmetric top to bottom: only left and right trade places
        with torch.no_grad():
            self.conv.weight.copy_(torch.stack((left, left.flip(-1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return circular_soft_argmax(self.conv(x))


class PeakDetector(nn.Module):
    """Class heatmaps -> circular 3x3 NMS -> a 6x6 box (and its label and score) around each peak."""

    def __init__(self, classes: int = 2, stride: int = 1, threshold: float = 0.6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, classes, 5, padding=2, padding_mode="circular", bias=False)
        kernels = torch.randn(classes, 1, 5, 5, generator=torch.Generator().manual_seed(0)) / 5
        with torch.no_grad():  # kernels with the square's symmetries: boxes also follow turns and flips
            turns = [torch.rot90(kernels, r, (-2, -1)) for r in range(4)]
            self.conv.weight.copy_(sum(turns + [t.flip(-1) for t in turns]) / 8)
        self.stride, self.threshold = stride, threshold

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        heat = self.conv(x)
        if self.stride > 1:
            heat = F.max_pool2d(heat, self.stride)
        around = F.max_pool2d(F.pad(heat, (1, 1, 1, 1), mode="circular"), 3, 1)
        peaks = (heat == around) & (heat > self.threshold)
        out = []
        for n in range(x.shape[0]):
            c, i, j = peaks[n].nonzero(as_tuple=True)
            cx, cy = (j.to(x.dtype) + 0.5) * self.stride, (i.to(x.dtype) + 0.5) * self.stride
            out.append({"boxes": torch.stack((cx - 3, cy - 3, cx + 3, cy + 3), -1), "labels": c,
                        "scores": heat[n, c, i, j]})
        return out
