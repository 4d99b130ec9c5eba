"""Error measures between two model outputs, the default tolerances, and classifier consistency.

Every figure compares ``a`` (the model's output on the transformed input) with ``b`` (the reference:
the transformed output for equivariance, the plain output for invariance). See docs/metrics.md for the
definitions and their sources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import Tensor

#: Default ``(atol, rtol)`` by dtype name: the one table of tolerances. A check passes a trial when
#: ``|a - b| <= atol + rtol * |b|`` everywhere, as ``torch.allclose``. The values allow for the
#: rounding of a deep network's sums (convolutions reorder them by position), not for aliasing,
#: whose errors are orders of magnitude larger.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-10, 1e-7),
    "float32": (1e-5, 1e-4),
    "float16": (1e-2, 1e-2),
    "bfloat16": (5e-2, 5e-2),
}

#: Rotations by arbitrary angles resample the image, so even an exactly equivariant model differs
#: from the rotated output by the interpolation error; this floor (``atol``, ``rtol``) applies on top
#: of the dtype's tolerances in ``mode="interp"``.
INTERP_TOLERANCE: tuple[float, float] = (0.05, 0.05)


def default_tolerances(dtype: "torch.dtype | str", mode: str = "") -> tuple[float, float]:
    """Return the default ``(atol, rtol)`` for outputs of ``dtype`` under a check in ``mode``."""
    name = str(dtype).removeprefix("torch.")
    atol, rtol = TOLERANCES.get(name, TOLERANCES["float32"])
    if mode == "interp":
        atol, rtol = max(atol, INTERP_TOLERANCE[0]), max(rtol, INTERP_TOLERANCE[1])
    return atol, rtol


@dataclass(frozen=True)
class Comparison:
    """The figures of one output leaf under one transform."""

    leaf: str
    max_abs: float
    mean_abs: float
    rel_l2: float
    cosine: float
    excess: float  # max |a - b| / (atol + rtol·|b|): above 1 fails the allclose rule
    passed: bool
    consistency: float | None = None
    prob_change: float | None = None
    psnr: float | None = None  # dB over the compared region, the reference's range as the peak
    agreement: tuple[bool, ...] | None = None  # per image: same top-1 class (classifier outputs)


def psnr(diff_sq_sum: float, count: int, peak: float) -> float:
    """Return the PSNR in dB: ``10·log10(peak² / MSE)``; ``inf`` when the outputs are identical.

    StyleGAN3 (Karras et al. 2021) writes it ``20·log10(2) − 10·log10(MSE)`` for data in [−1, 1];
    here ``peak`` is the reference output's range (max − min over the compared region), which is 2
    for such data, so other data is judged as if rescaled to [−1, 1].
    """
    mse = diff_sq_sum / max(count, 1)
    if mse == 0:
        return math.inf
    if peak <= 0:
        return -math.inf
    return 10 * math.log10(peak * peak / mse)


def is_classifier_output(t: "Tensor") -> bool:
    """Return whether ``t`` looks like class scores: ``(batch, classes)`` with more than one class."""
    return t.dim() == 2 and t.shape[1] > 1 and t.is_floating_point()


def compare(
    a: "Tensor",
    b: "Tensor",
    *,
    atol: float,
    rtol: float,
    mask: "Tensor | None" = None,
    leaf: str = "",
    classifier: bool = False,
    min_consistency: float | None = None,
) -> Comparison:
    """Return the figures comparing ``a`` with the reference ``b`` over ``mask`` (None: everywhere).

    Computed in float64 whatever the dtype. With ``classifier`` (invariance of ``(batch, classes)``
    scores) the top-1 consistency and top-class probability change are measured too; with
    ``min_consistency`` the trial passes on consistency instead of the allclose rule.
    """
    import torch

    if a.shape != b.shape:
        raise ValueError(f"output{leaf} has shape {tuple(a.shape)} under the transform but {tuple(b.shape)} expected")
    a64, b64 = a.detach().double(), b.detach().double()
    if mask is not None:
        m = mask.expand_as(b64)
        a64, b64 = a64 * m, b64 * m  # zeroed outside: adds nothing to differences or norms
        count = m.sum().item() or 1
    else:
        count = b64.numel() or 1
    diff = (a64 - b64).abs()
    max_abs = diff.max().item() if diff.numel() else 0.0
    mean_abs = diff.sum().item() / count
    norm_b = torch.linalg.vector_norm(b64).item()
    norm_d = torch.linalg.vector_norm(diff).item()
    rel_l2 = norm_d / norm_b if norm_b > 0 else (0.0 if norm_d == 0 else float("inf"))
    cosine = _cosine_distance(a64, b64)
    bound = atol + rtol * b64.abs()
    if diff.numel() == 0:
        excess = 0.0
    elif atol == 0 and rtol == 0:
        excess = 0.0 if max_abs == 0 else float("inf")
    else:
        excess = (diff / bound.clamp_min(1e-300)).max().item()
    passed = excess <= 1.0
    if mask is not None:
        inside = m > 0
        if bool(inside.any()):  # where(), not indexing: no copy of the selected elements
            top = torch.where(inside, b64, -math.inf).max()
            bottom = torch.where(inside, b64, math.inf).min()
            peak = (top - bottom).item()
        else:
            peak = 0.0
    else:
        peak = (b64.max() - b64.min()).item() if b64.numel() else 0.0
    figure_psnr = psnr((diff * diff).sum().item(), int(count), peak)
    consistency = prob_change = agreement = None
    if classifier and is_classifier_output(b):
        top_a, top_b = a64.argmax(1), b64.argmax(1)
        agreement = tuple(bool(v) for v in (top_a == top_b).tolist())
        consistency = (top_a == top_b).double().mean().item()
        p_a, p_b = a64.softmax(1), b64.softmax(1)
        prob_change = (p_a.gather(1, top_b[:, None]) - p_b.gather(1, top_b[:, None])).abs().mean().item()
        if min_consistency is not None:
            passed = consistency >= min_consistency
    return Comparison(leaf, max_abs, mean_abs, rel_l2, cosine, excess, passed, consistency, prob_change,
                      figure_psnr, agreement)


def _cosine_distance(a: "Tensor", b: "Tensor") -> float:
    """Mean over the batch of ``1 - cos(a_i, b_i)``; 0 where both are zero."""
    import torch

    # One row per batch item; a 0-d output is a batch of one.
    rows = a.shape[0] if a.dim() else 1
    fa, fb = a.reshape(rows, -1), b.reshape(rows, -1)
    dot = (fa * fb).sum(1)
    na, nb = torch.linalg.vector_norm(fa, dim=1), torch.linalg.vector_norm(fb, dim=1)
    both_zero = (na == 0) & (nb == 0)
    cos = torch.where(both_zero, torch.ones_like(dot), dot / (na * nb).clamp_min(1e-300))
    return (1 - cos).clamp_min(0).mean().item() if cos.numel() else 0.0


def worst(comparisons: list[Comparison], *, by_consistency: bool = False) -> Comparison:
    """Return the comparison furthest from passing: the largest ``excess`` (or lowest consistency)."""
    if by_consistency:
        return min(comparisons, key=lambda c: (c.consistency if c.consistency is not None else 1.0, -c.excess))
    return max(comparisons, key=lambda c: c.excess)
