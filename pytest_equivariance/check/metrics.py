"""Error measures between two model outputs, the default tolerances, and classifier consistency.

Every figure compares ``a`` (the model's output on the transformed input) with ``b`` (the reference:
the transformed output for equivariance, the plain output for invariance). See docs/metrics.md for the
definitions and their sources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
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

#: Point clouds and graphs (check.pointclouds): floors on top of the dtype's tolerances. Positions are
#: translated, so coordinates sum to larger magnitudes than a grid's values, and neighbour sums scatter
#: in any order; e3nn's ``assert_equivariant`` allows 1e-3 (float32) and 1e-9 (float64), absolute only.
CLOUD_TOLERANCES: dict[str, tuple[float, float]] = {"float64": (1e-9, 1e-7), "float32": (1e-4, 1e-3)}


def default_tolerances(dtype: "torch.dtype | str", mode: str = "") -> tuple[float, float]:
    """Return the default ``(atol, rtol)`` for outputs of ``dtype`` under a check in ``mode``."""
    name = str(dtype).removeprefix("torch.")
    atol, rtol = TOLERANCES.get(name, TOLERANCES["float32"])
    if mode == "interp":
        atol, rtol = max(atol, INTERP_TOLERANCE[0]), max(rtol, INTERP_TOLERANCE[1])
    if mode == "cloud":
        floor = CLOUD_TOLERANCES.get(name, (0.0, 0.0))
        atol, rtol = max(atol, floor[0]), max(rtol, floor[1])
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
    sets: "SetFigures | None" = None  # detection sets: what matching found (check.detections)
    channel_error: float | None = None  # mean over images of the mean per-channel ‖a − b‖² / (‖b‖² + ε)


@dataclass(frozen=True)
class SetFigures:
    """What matching two collections of detection sets found (check.detections); coordinates' figures
    are the comparison's ``max_abs`` / ``mean_abs``, in pixels."""

    images: int
    matched: int
    appeared: int  # found on the moved image, with no partner in the moved reference
    vanished: int  # in the moved reference, with no partner found
    mean_iou: float | None  # over matched pairs (None: no boxes, or nothing matched)
    min_iou: float | None
    score_change: float | None  # max |Δscore| over matched pairs
    mean_mask_iou: float | None = None  # over matched pairs with masks (None: no masks)
    mask_change: float | None = None  # max |Δ mask probability| over matched pairs' box-aligned masks


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


@dataclass
class Sums:
    """The additive statistics behind one output leaf's figures under one transform.

    Sums and counts add, maxima and minima combine, so the figures of many batches (or of many
    processes, :mod:`.distributed`) are exactly those of one concatenated batch: never a mean of means.
    """

    count: float = 0.0  # elements compared
    abs_sum: float = 0.0  # sum |a - b|
    diff_sq: float = 0.0  # sum (a - b)^2
    ref_sq: float = 0.0  # sum b^2
    max_abs: float = 0.0
    excess: float = 0.0  # max |a - b| / (atol + rtol |b|)
    ref_max: float = -math.inf  # the reference's range over the compared region (PSNR's peak)
    ref_min: float = math.inf
    rows: float = 0.0  # batch items (the cosine distance is a mean over them)
    cosine_sum: float = 0.0
    images: float = 0.0  # classifier outputs: images whose top-1 class was compared
    agree: float = 0.0  # ... whose top-1 class is the reference's
    prob_change_sum: float = 0.0  # sum |p_a(top_b) - p_b(top_b)|
    channel_images: float = 0.0  # images whose per-channel relative errors were measured
    channel_error_sum: float = 0.0  # sum over them of the mean per-channel ‖a − b‖² / (‖b‖² + ε)
    # Detection sets (check.detections): images whose sets were matched, and what matching found.
    sets: float = 0.0
    matched: float = 0.0  # pairs matched (their coordinates are what count, abs_sum, ... measure)
    appeared: float = 0.0  # detections on the moved image with no partner in the moved reference
    vanished: float = 0.0  # moved reference detections with no partner
    iou_sum: float = 0.0  # sum of the matched pairs' IoU
    iou_min: float = math.inf
    score_change: float = 0.0  # max |score_a - score_b| over matched pairs
    mask_pairs: float = 0.0  # matched pairs whose masks were compared
    mask_iou_sum: float = 0.0  # sum of their masks' IoU
    mask_change: float = 0.0  # max |Δ mask probability| over them

    #: How each field combines: every field not named here is summed.
    MAXIMA = ("max_abs", "excess", "ref_max", "score_change", "mask_change")
    MINIMA = ("ref_min", "iou_min")

    def __iadd__(self, other: "Sums") -> "Sums":
        for name in FIELDS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if name in Sums.MAXIMA:
                value = _nanmax(mine, theirs)
            elif name in Sums.MINIMA:
                value = -_nanmax(-mine, -theirs)
            else:
                value = mine + theirs
            setattr(self, name, value)
        return self

    def comparison(
        self, *, leaf: str = "", atol: float, rtol: float, min_consistency: float | None = None,
        max_channel_error: float | None = None,
    ) -> "Comparison":
        """Return the figures these statistics make (see :func:`compare`); ``max_channel_error``, when
        given, judges the per-channel error of a map instead of the allclose rule."""
        count = self.count or 1
        rel_l2 = (math.sqrt(self.diff_sq) / math.sqrt(self.ref_sq) if self.ref_sq > 0
                  else (0.0 if self.diff_sq == 0 else math.inf))
        if self.count == 0:
            excess = 0.0
        elif atol == 0 and rtol == 0:
            excess = 0.0 if self.max_abs == 0 else math.inf
        else:
            excess = self.excess
        passed = excess <= 1.0
        peak = self.ref_max - self.ref_min if self.ref_max >= self.ref_min else 0.0
        consistency = prob_change = None
        if self.images:
            consistency = self.agree / self.images
            prob_change = self.prob_change_sum / self.images
            if min_consistency is not None:
                passed = consistency >= min_consistency
        sets = None
        if self.sets:
            has_iou = self.matched and self.iou_min != math.inf
            sets = SetFigures(
                int(self.sets), int(self.matched), int(self.appeared), int(self.vanished),
                self.iou_sum / self.matched if has_iou else None, self.iou_min if has_iou else None,
                self.score_change if self.matched else None,
                self.mask_iou_sum / self.mask_pairs if self.mask_pairs else None,
                self.mask_change if self.mask_pairs else None,
            )
            excess = self.excess  # matching's verdict: displacement, score change and unmatched counts
            passed = excess <= 1.0
        channel_error = self.channel_error_sum / self.channel_images if self.channel_images else None
        if max_channel_error is not None and channel_error is not None:  # Rahman & Yeh's figure decides
            passed = channel_error <= max_channel_error
        return Comparison(
            leaf, self.max_abs, self.abs_sum / count, rel_l2,
            self.cosine_sum / self.rows if self.rows else 0.0, excess, passed, consistency, prob_change,
            psnr(self.diff_sq, int(count), peak), sets=sets, channel_error=channel_error,
        )


#: The fields of :class:`Sums`, in the order they travel between processes.
FIELDS = tuple(name for name in Sums.__dataclass_fields__)


def measure(
    a: "Tensor",
    b: "Tensor",
    *,
    atol: float,
    rtol: float,
    mask: "Tensor | None" = None,
    classifier: bool = False,
    spatial: int = 0,
) -> tuple[Sums, "Tensor | None"]:
    """Return the statistics comparing ``a`` with the reference ``b`` over ``mask`` (None: everywhere).

    Computed in float64 whatever the dtype. With ``classifier`` (invariance of ``(batch, classes)``
    scores) the top-1 agreement and the top-class probability change are counted too, and the
    second value is, per image, whether its top-1 class survived (None otherwise). With ``spatial``
    (the number of trailing spatial dims) the per-channel relative error is summed too
    (:func:`channel_errors`).
    """
    import torch

    if a.shape != b.shape:
        raise ValueError(f"output has shape {tuple(a.shape)} under the transform but {tuple(b.shape)} expected")
    a64, b64 = a.detach().double(), b.detach().double()
    sums = Sums()
    if mask is not None:
        m = mask.expand_as(b64)
        a64, b64 = a64 * m, b64 * m  # zeroed outside: adds nothing to differences or norms
        sums.count = m.sum().item()
        inside = m > 0
        if bool(inside.any()):  # where(), not indexing: no copy of the selected elements
            sums.ref_max = torch.where(inside, b64, -math.inf).max().item()
            sums.ref_min = torch.where(inside, b64, math.inf).min().item()
    else:
        sums.count = float(b64.numel())
        if b64.numel():
            sums.ref_max, sums.ref_min = b64.max().item(), b64.min().item()
    diff = (a64 - b64).abs()
    if diff.numel():
        sums.max_abs = diff.max().item()
        if atol > 0 or rtol > 0:
            sums.excess = (diff / (atol + rtol * b64.abs()).clamp_min(1e-300)).max().item()
    sums.abs_sum = diff.sum().item()
    sums.diff_sq = (diff * diff).sum().item()
    sums.ref_sq = (b64 * b64).sum().item()
    sums.rows, sums.cosine_sum = _cosine_distances(a64, b64)
    if spatial and b64.dim() > spatial + 1:
        sums.channel_images, sums.channel_error_sum = channel_errors(a64, b64, spatial, mask)
    agreement = None
    if classifier and is_classifier_output(b):
        top_b = b64.argmax(1)
        agreement = a64.argmax(1) == top_b
        p_a, p_b = a64.softmax(1), b64.softmax(1)
        sums.images = float(b.shape[0])
        sums.agree = agreement.sum().item()
        sums.prob_change_sum = (p_a.gather(1, top_b[:, None]) - p_b.gather(1, top_b[:, None])).abs().sum().item()
    return sums, agreement


#: Added to each channel's squared norm before dividing by it, as Rahman & Yeh (NeurIPS 2023) do.
CHANNEL_EPS = 1e-6


def channel_errors(a: "Tensor", b: "Tensor", spatial: int, mask: "Tensor | None" = None) -> tuple[float, float]:
    """Return the number of images and the sum over them of the mean per-channel relative squared error.

    Each channel of each image (every index between the batch and the ``spatial`` trailing dims)
    gives ``‖a − b‖² / (‖b‖² + 1e-6)`` over its map, Rahman & Yeh's figure; channels the mask leaves
    out entirely do not count.
    """
    rows = a.shape[0]
    fa, fb = a.reshape(rows, -1, *a.shape[a.dim() - spatial:]), b.reshape(rows, -1, *b.shape[b.dim() - spatial:])
    flat_dims = tuple(range(2, 2 + spatial))
    error = (fa - fb).pow(2).sum(flat_dims) / (fb.pow(2).sum(flat_dims) + CHANNEL_EPS)
    if mask is None:
        return float(rows), error.mean(1).sum().item()
    kept = mask.expand(b.shape).reshape(fb.shape).any(dim=flat_dims[-1])
    for _ in flat_dims[:-1]:
        kept = kept.any(dim=-1)
    counted = kept.sum(1).clamp_min(1)
    return float(rows), ((error * kept).sum(1) / counted).sum().item()


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
    if a.shape != b.shape:
        raise ValueError(f"output{leaf} has shape {tuple(a.shape)} under the transform but {tuple(b.shape)} expected")
    sums, agreement = measure(a, b, atol=atol, rtol=rtol, mask=mask, classifier=classifier)
    figures = sums.comparison(leaf=leaf, atol=atol, rtol=rtol, min_consistency=min_consistency)
    if agreement is None:
        return figures
    return replace(figures, agreement=tuple(bool(v) for v in agreement.tolist()))


def top1(t: "Tensor") -> "Tensor":
    """Return the predicted class of each row of ``(batch, classes)`` scores."""
    return t.detach().argmax(1)


def _nanmax(a: float, b: float) -> float:
    # NaN is the worst possible error, so it wins.
    if a != a or b != b:
        return math.nan
    return a if a >= b else b


def _cosine_distances(a: "Tensor", b: "Tensor") -> tuple[float, float]:
    """Return the number of batch items and the sum over them of ``1 - cos(a_i, b_i)`` (0 where both are zero)."""
    import torch

    # One row per batch item; a 0-d output is a batch of one.
    rows = a.shape[0] if a.dim() else 1
    fa, fb = a.reshape(rows, -1), b.reshape(rows, -1)
    dot = (fa * fb).sum(1)
    na, nb = torch.linalg.vector_norm(fa, dim=1), torch.linalg.vector_norm(fb, dim=1)
    both_zero = (na == 0) & (nb == 0)
    cos = torch.where(both_zero, torch.ones_like(dot), dot / (na * nb).clamp_min(1e-300))
    return float(cos.numel()), (1 - cos).clamp_min(0).sum().item() if cos.numel() else 0.0


def worst(comparisons: list[Comparison], *, by_consistency: bool = False) -> Comparison:
    """Return the comparison furthest from passing: the largest ``excess`` (or lowest consistency)."""
    if by_consistency:
        return min(comparisons, key=lambda c: (c.consistency if c.consistency is not None else 1.0, -c.excess))
    return max(comparisons, key=lambda c: c.excess)
