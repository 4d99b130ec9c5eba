"""Detection sets: variable-length lists of boxes, labels, scores and keypoints, matched before compared.

A detector returns one set per image, in no particular order and of any length, so its output has
no tensor to compare element by element. :func:`detections` declares such an output
(``output_fields=detections()``); the check then

1. **packs** each image's set into fixed rows of one ``(N, max_detections, columns)`` tensor (a
   presence column, 1 or 0, marks the rows that hold a detection), so the runner batches, chunks and streams it like any output;
2. **moves** the reference set as the image moved — boxes and keypoints by the geometry convention of
   :mod:`.geometry`, labels and scores unchanged;
3. **matches** the moved reference set to the set the model found on the moved image: an optimal
   assignment (:mod:`.assignment`) that pairs as many detections as possible with the same label and
   an IoU of at least ``min_iou`` (or, for keypoint-only sets, a mean keypoint distance of at most
   ``match_distance`` pixels), then maximises the total IoU (minimises the distance);
4. **measures** the matched pairs — coordinates' displacement beyond the transform, IoU, score change,
   and instance masks inside their boxes (:func:`box_aligned`) — and counts the detections that *appeared* (found only on the moved image) or *vanished* (moved
   reference detections with no partner).

The figures are additive (:class:`.metrics.Sums`), so sets from many batches and processes combine
exactly. A trial passes when every matched coordinate is within ``max_displacement`` pixels (default:
the dtype's ``atol + rtol·|coordinate|``, i.e. exact), every matched score within ``max_score_change``
(default: the same rule) and no image has more than ``max_unmatched`` detections appear or vanish.
In crop and zero modes only the detections that lie wholly inside the compared image (less the border
``margin``) on each side are matched; in circular mode a box is matched modulo the image size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_equivariance.check import geometry
from pytest_equivariance.check.assignment import linear_sum_assignment
from pytest_equivariance.check.metrics import Sums
from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    from torch import Tensor

    from pytest_equivariance.check.transforms import Transform

Key = str | int


@dataclass(frozen=True)
class Detections:
    """How a detector's per-image sets are read, matched and judged (see :func:`detections`)."""

    boxes: Key | None = "boxes"
    labels: Key | None = "labels"
    scores: Key | None = "scores"
    points: Key | None = None
    format: str = "xyxy"
    flip_pairs: tuple[tuple[int, int], ...] = ()
    min_iou: float = 0.5
    match_distance: float = 4.0
    max_displacement: float | None = None
    max_score_change: float | None = None
    max_unmatched: int = 0
    max_detections: int = 100
    masks: Key | None = None
    mask_size: int = 28
    max_mask_change: float | None = None

    name = "detections"
    geometric = True  # an output field that moves coordinates (check.geometry.is_geometry)

    def describe(self) -> str:
        parts = [f"{role}={key!r}" for role, key in self._entries()]
        if self.boxes is not None and self.format != "xyxy":
            parts.append(f"format={self.format!r}")
        return f"detections({', '.join(parts)})"

    def _entries(self) -> list[tuple[str, Key]]:
        return [(role, key) for role, key in (("boxes", self.boxes), ("labels", self.labels),
                                              ("scores", self.scores), ("masks", self.masks),
                                              ("points", self.points)) if key is not None]

    # ---------------------------------------------------------------------------------------------
    # Packing: one image's set -> fixed rows

    def columns(self, keypoints: int) -> dict[str, slice]:
        """The packed layout: a presence column (1: a detection, 0: an empty row), then boxes (xyxy), label,
        score, the mask inside the box (``mask_size`` squared) and keypoints (x, y)."""
        out, start = {"present": slice(0, 1)}, 1
        for role, width in (("boxes", 4), ("labels", 1), ("scores", 1), ("masks", self.mask_size ** 2),
                            ("points", 2 * keypoints)):
            if getattr(self, role) is not None:
                out[role] = slice(start, start + width)
                start += width
        return out

    def pack(self, output: Any, frame: Sequence[int] | None = None) -> "Tensor":
        """Return ``(N, max_detections, columns)`` float64 rows of a list of ``N`` per-image sets of images of
        ``frame`` (H, W) pixels."""
        import torch

        if not isinstance(output, (list, tuple)) or not output or not all(
                isinstance(item, (Mapping, list, tuple)) for item in output):
            raise EquivarianceUsageError(
                f"output_fields={self.describe()} expects the model to return a list with one set of detections "
                f"per image (dicts or tuples, as torchvision's detectors do), but it returned "
                f"{type(output).__name__}; return such a list, or declare the output with points() or boxes()."
            )
        sets = [self._read(item, i, frame) for i, item in enumerate(output)]
        keypoints = max((s["points"].shape[1] for s in sets if "points" in s), default=0)
        layout = self.columns(keypoints)
        packed = torch.zeros((len(sets), self.max_detections, _layout_width(layout)), dtype=torch.float64,
                             device=sets[0]["present"].device)
        for i, s in enumerate(sets):
            n = s["present"].shape[0]
            for role, cols in layout.items():
                packed[i, :n, cols] = s[role].reshape(n, cols.stop - cols.start).to(torch.float64)
        return packed

    def _read(self, item: Any, index: int, frame: Sequence[int] | None = None) -> dict[str, "Tensor"]:
        import torch

        out: dict[str, Tensor] = {}
        for role, key in self._entries():
            try:
                value = item[key]
            except (KeyError, IndexError, TypeError):
                available = list(item.keys()) if isinstance(item, Mapping) else f"{len(item)} entries"
                raise EquivarianceUsageError(
                    f"The detections of image {index} have no entry {key!r} for the {role} (it has {available}); "
                    f"pass detections({role}=...) naming the entry that holds them, or {role}=None."
                ) from None
            if not isinstance(value, torch.Tensor):
                value = torch.as_tensor(value)
            if role == "masks" and value.dim() == 4 and value.shape[1] == 1:  # torchvision's (n, 1, H, W)
                value = value[:, 0]
            out[role] = value.detach()
        n = self._count(out, index)
        if "boxes" in out:
            out["boxes"] = geometry.Boxes(self.format).corners(out["boxes"].to(torch.float64)).flatten(-2)
        if "points" in out:
            out["points"] = out["points"][..., :2]  # (x, y[, visibility]): the coordinates only
        if "masks" in out:
            if frame is not None and tuple(out["masks"].shape[-2:]) != tuple(frame):
                raise EquivarianceUsageError(
                    f"The masks of image {index}'s detections are {tuple(out['masks'].shape[-2:])} pixels but the image "
                    f"is {tuple(frame)}, so their boxes cannot place them; return masks pasted into the image, as "
                    f"torchvision's Mask R-CNN does."
                )
            out["masks"] = box_aligned(out["masks"], out["boxes"], self.mask_size)
        out["present"] = torch.ones(n, 1, dtype=torch.float64, device=next(iter(out.values())).device)
        return out

    def _count(self, read: dict[str, "Tensor"], index: int) -> int:
        wanted = {"boxes": (2, 4), "labels": (1, None), "scores": (1, None), "points": (3, None), "masks": (3, None)}
        counts = set()
        for role, t in read.items():
            dims, last = wanted[role]
            if t.dim() != dims or (last is not None and t.shape[-1] != last) or (role == "points" and t.shape[-1] < 2):
                need = {"boxes": "(n, 4)", "labels": "(n,)", "scores": "(n,)", "points": "(n, K, 2) or (n, K, 3)",
                        "masks": "(n, 1, H, W) or (n, H, W)"}[role]
                raise EquivarianceUsageError(
                    f"The {role} of image {index}'s detections have shape {tuple(t.shape)}; {role} must be {need}, "
                    f"so name the right entry in detections({role}=...)."
                )
            counts.add(t.shape[0])
        if len(counts) != 1:
            raise EquivarianceUsageError(
                f"The entries of image {index}'s detections have different lengths ({sorted(counts)}); every entry "
                f"must hold one row per detection."
            )
        (n,) = counts
        if n > self.max_detections:
            raise EquivarianceUsageError(
                f"Image {index} has {n} detections, more than max_detections={self.max_detections}; pass "
                f"detections(max_detections={n}) or more (torchvision's default is 100 per image)."
            )
        return n

    def validate(self, leaf: "Tensor", where: str, coordinates: int = 2) -> None:
        """A packed leaf is well formed (:meth:`pack` checked the sets); detections live on the plane."""
        if coordinates != 2:
            raise EquivarianceUsageError(
                f"The {where} is declared as detections, whose boxes live on the image plane, but the check moves "
                f"a grid of {coordinates} spatial dims; declare 3-D coordinates as points()."
            )

    # ---------------------------------------------------------------------------------------------
    # Moving and measuring

    def move(self, transform: "Transform", packed: "Tensor", frame: tuple[int, int]) -> "Tensor":
        """Return the packed sets moved as ``transform`` moves an image of ``frame`` (W, H)."""
        import torch

        layout = self.columns(_keypoints(self, packed))
        out = packed.clone()
        if "boxes" in layout:
            b = packed[..., layout["boxes"]]
            out[..., layout["boxes"]] = geometry.move(geometry.boxes("xyxy"), transform, b, frame)
        if "points" in layout:
            p = packed[..., layout["points"]]
            pts = p.reshape(*p.shape[:-1], -1, 2)
            moved = geometry.move(geometry.Points(self.flip_pairs), transform, pts, frame)
            out[..., layout["points"]] = moved.reshape(p.shape)
        if "masks" in layout:
            m = packed[..., layout["masks"]]
            square = m.reshape(*m.shape[:-1], self.mask_size, self.mask_size)
            out[..., layout["masks"]] = _turn_in_box(transform, square).reshape(m.shape)
        return torch.where(packed[..., :1] > 0, out, packed)  # absent rows stay absent (zeros)

    def measure(
        self, a: "Tensor", b: "Tensor", transform: "Transform", frame: tuple[int, int], *,
        atol: float, rtol: float, margin: int = 0,
    ) -> Sums:
        """Return the statistics of matching the sets ``a`` (found on the moved images) to ``b`` (the moved
        reference sets), image by image."""
        layout = self.columns(_keypoints(self, b))
        sums = Sums()
        for found, expected in zip(a.detach(), b.detach()):
            sums += self._measure_one(found, expected, layout, transform, frame, atol, rtol, margin)
        return sums

    def _measure_one(self, found, expected, layout, transform, frame, atol, rtol, margin) -> Sums:
        import torch

        w, h = geometry.moved_frame(transform, frame)
        found = _present(found, layout, transform, frame, margin)
        expected = _present(expected, layout, transform, frame, margin)
        sums = Sums(sets=1.0, rows=1.0)
        nf, ne = found.shape[0], expected.shape[0]
        pairs: list[tuple[int, int]] = []
        if nf and ne:
            offset = self._offsets(found, expected, layout, transform, (w, h))  # (nf, ne, columns)
            aligned = expected.unsqueeze(0) + offset
            score, allowed = self._affinity(found, aligned, layout)
            # Allowed pairs cost at most 1 (1 - IoU, or the distance over match_distance); forbidden ones more
            # than any assignment of allowed ones, so the most matches come first.
            allowed_cost = 1 - score if "boxes" in layout else score / self.match_distance
            cost = torch.where(allowed, allowed_cost, torch.full_like(score, float(min(nf, ne) + 1)))
            if bool((allowed.sum(0) <= 1).all() and (allowed.sum(1) <= 1).all()):
                pairs = [tuple(p) for p in allowed.nonzero().tolist()]  # no two pairings compete: nothing to solve
            else:
                pairs = [(i, j) for i, j in linear_sum_assignment(cost) if bool(allowed[i, j])]
        sums.matched = float(len(pairs))
        sums.appeared, sums.vanished = float(nf - len(pairs)), float(ne - len(pairs))
        unmatched = max(sums.appeared, sums.vanished)
        excess = 0.0 if unmatched == 0 else (unmatched / self.max_unmatched if self.max_unmatched else math.inf)
        if pairs:
            i, j = (torch.tensor(idx, dtype=torch.long) for idx in zip(*pairs))
            fa, fb = found[i], aligned[i, j]
            coords = [layout[r] for r in ("boxes", "points") if r in layout]
            ca = torch.cat([fa[:, c] for c in coords], -1)
            cb = torch.cat([fb[:, c] for c in coords], -1)
            diff = (ca - cb).abs()
            sums.count, sums.abs_sum = float(diff.numel()), diff.sum().item()
            sums.diff_sq, sums.ref_sq = (diff * diff).sum().item(), (cb * cb).sum().item()
            sums.max_abs = diff.max().item() if diff.numel() else 0.0
            if cb.numel():
                sums.ref_max, sums.ref_min = cb.max().item(), cb.min().item()
            tol = self.max_displacement if self.max_displacement is not None else atol + rtol * cb.abs()
            excess = max(excess, _ratio(diff, tol))
            if "boxes" in layout:
                ious = _iou(fa[:, layout["boxes"]], fb[:, layout["boxes"]])
                sums.iou_sum, sums.iou_min = ious.sum().item(), ious.min().item()
            if "scores" in layout:
                sa, sb = fa[:, layout["scores"]], fb[:, layout["scores"]]
                change = (sa - sb).abs()
                sums.score_change = change.max().item()
                tol = self.max_score_change if self.max_score_change is not None else atol + rtol * sb.abs()
                excess = max(excess, _ratio(change, tol))
            if "masks" in layout:
                ma, mb = fa[:, layout["masks"]], fb[:, layout["masks"]]
                change = (ma - mb).abs()
                sums.mask_pairs, sums.mask_change = float(len(pairs)), change.max().item()
                sa, sb = ma > 0.5, mb > 0.5
                union = (sa | sb).sum(-1)
                ious = torch.where(union > 0, (sa & sb).sum(-1) / union.clamp_min(1), torch.ones_like(union))
                sums.mask_iou_sum = ious.to(torch.float64).sum().item()
                tol = self.max_mask_change if self.max_mask_change is not None else atol + rtol * mb.abs()
                excess = max(excess, _ratio(change, tol))
        sums.excess = excess
        return sums

    def _offsets(self, found, expected, layout, transform, frame) -> "Tensor":
        """Per pair, whole periods to add to the expected row so it lies nearest the found one (circular
        shifts: the image is a torus); zero otherwise."""
        import torch

        offset = torch.zeros(found.shape[0], expected.shape[0], expected.shape[1], dtype=expected.dtype)
        if not (transform.family == "shift" and transform.mode == "circular"):
            return offset
        w, h = frame
        period = torch.tensor([w, h], dtype=expected.dtype)
        anchor = "boxes" if "boxes" in layout else "points"
        fa, fe = found[:, layout[anchor]][:, :2], expected[:, layout[anchor]][:, :2]  # first corner / keypoint
        step = geometry.whole_periods(fa[:, None] - fe[None], period)  # (nf, ne, 2)
        for role in ("boxes", "points"):
            if role in layout:
                cols = layout[role]
                width = cols.stop - cols.start
                offset[..., cols] = step.repeat(1, 1, width // 2)
        return offset

    def _affinity(self, found, aligned, layout) -> tuple["Tensor", "Tensor"]:
        """Pairwise IoU (or keypoint distance) of found rows and aligned expected rows, and which pairs may match."""
        import torch

        if "boxes" in layout:
            score = _iou(found[:, None, layout["boxes"]].expand(aligned.shape[0], aligned.shape[1], 4),
                         aligned[..., layout["boxes"]])
            allowed = score >= self.min_iou
        else:
            pa = found[:, None, layout["points"]].reshape(found.shape[0], 1, -1, 2)
            pb = aligned[..., layout["points"]].reshape(aligned.shape[0], aligned.shape[1], -1, 2)
            score = torch.linalg.vector_norm(pa - pb, dim=-1).mean(-1)
            allowed = score <= self.match_distance
        if "labels" in layout:
            allowed = allowed & (found[:, None, layout["labels"]] == aligned[..., layout["labels"]]).all(-1)
        return score, allowed


def _layout_width(layout: dict[str, slice]) -> int:
    """Columns of a packed row."""
    return max(s.stop for s in layout.values())


def _keypoints(spec: Detections, packed: "Tensor") -> int:
    if spec.points is None:
        return 0
    fixed = _layout_width(spec.columns(0))
    return (packed.shape[-1] - fixed) // 2


def _present(rows: "Tensor", layout: dict[str, slice], transform: "Transform", frame: tuple[int, int],
             margin: int) -> "Tensor":
    """The rows of one image that hold a detection wholly inside the compared region."""
    keep = rows[:, 0] > 0
    for role in ("boxes", "points"):
        if role in layout:
            xy = rows[:, layout[role]].reshape(rows.shape[0], -1, 2)
            inside = geometry.within(transform, xy, frame, margin)
            if inside is not None:
                keep = keep & inside.all(-1)
    return rows[keep]


def box_aligned(masks: "Tensor", boxes: "Tensor", size: int) -> "Tensor":
    """Return each ``(H, W)`` mask sampled inside its xyxy box on a ``size`` x ``size`` grid, flattened.

    What moves with a detection is its mask *relative to its box*: a shift moves both, so the
    box-aligned mask stays; a quarter turn or a flip turns it in its box. Sampling at the centres of a
    ``size``-square grid over the box (bilinear) is Mask R-CNN's own resolution for ``size=28``, and
    samples the same points of a box that moved with its image. The image is read as periodic, so
    a circular model's box that crosses an edge reads what lies across it, as its mask does (a box
    kept inside the image, as torchvision's are, reads the same either way but within half a pixel
    of the edge).
    """
    import torch
    import torch.nn.functional as F

    n, h, w = masks.shape
    if n == 0:
        return masks.new_zeros((0, size * size), dtype=torch.float64)
    steps = (torch.arange(size, dtype=torch.float64, device=masks.device) + 0.5) / size
    x = boxes[:, None, 0] + steps[None] * (boxes[:, None, 2] - boxes[:, None, 0])  # (n, size) pixels
    y = boxes[:, None, 1] + steps[None] * (boxes[:, None, 3] - boxes[:, None, 1])
    # One pixel of circular padding, and coordinates modulo the image: bilinear reads across the seam.
    padded = F.pad(masks[:, None].to(torch.float64), (1, 1, 1, 1), mode="circular")
    gx, gy = 2 * (torch.remainder(x, w) + 1) / (w + 2) - 1, 2 * (torch.remainder(y, h) + 1) / (h + 2) - 1
    grid = torch.stack([gx[:, None, :].expand(n, size, size), gy[:, :, None].expand(n, size, size)], -1)
    sampled = F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.reshape(n, size * size)


def _turn_in_box(transform: "Transform", square: "Tensor") -> "Tensor":
    """Turn box-aligned masks ``(..., size, size)`` as ``transform`` turns the image (shifts leave them)."""
    import torch

    if transform.family == "rot90":
        return torch.rot90(square, transform.params["k"], (-2, -1))
    if transform.family == "flip":
        return torch.flip(square, (transform.params["axis"],))
    if transform.family == "group":
        flat = square.reshape(-1, 1, *square.shape[-2:])
        return transform.element.spatial(flat, (-2, -1)).reshape(square.shape)
    return square


def _iou(a: "Tensor", b: "Tensor") -> "Tensor":
    """IoU of xyxy boxes ``a`` and ``b`` of the same shape (..., 4); empty boxes of equal corners count as 1."""
    import torch

    lo = torch.maximum(a[..., :2], b[..., :2])
    hi = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (hi - lo).clamp_min(0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp_min(0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp_min(0).prod(-1)
    union = area_a + area_b - inter
    same = (a == b).all(-1)
    return torch.where(union > 0, inter / union.clamp_min(1e-300), same.to(inter.dtype))


def _ratio(value: "Tensor", tol: "Tensor | float") -> float:
    import torch

    if value.numel() == 0:
        return 0.0
    tol_t = torch.as_tensor(tol, dtype=value.dtype).expand_as(value)
    over = torch.where(tol_t > 0, value / tol_t.clamp_min(1e-300), torch.where(value > 0, math.inf, 0.0))
    return over.max().item()


def detections(
    boxes: Key | None = "boxes",
    labels: Key | None = "labels",
    scores: Key | None = "scores",
    points: Key | None = None,
    *,
    format: str = "xyxy",
    flip_pairs: Sequence[Sequence[int]] = (),
    min_iou: float = 0.5,
    match_distance: float = 4.0,
    max_displacement: float | None = None,
    max_score_change: float | None = None,
    max_unmatched: int = 0,
    max_detections: int = 100,
    masks: Key | None = None,
    mask_size: int = 28,
    max_mask_change: float | None = None,
) -> Detections:
    """Declare the model's output as one set of detections per image, matched before it is compared.

    The output is a list of per-image dicts (torchvision's detectors) or tuples; ``boxes``, ``labels``,
    ``scores`` and ``points`` name their entries (``None``: not there), e.g.
    ``detections(points="keypoints", flip_pairs=COCO_FLIP_PAIRS)`` for a keypoint R-CNN. Boxes are in
    input pixels in ``format``; keypoints ``(n, K, 2)`` or ``(n, K, 3)`` (the third column is ignored).

    Matching pairs detections of the same label with IoU at least ``min_iou`` (keypoint-only sets: mean
    distance at most ``match_distance`` pixels). A trial passes when matched coordinates move by at most
    ``max_displacement`` pixels beyond the transform and scores change by at most ``max_score_change``
    (both default to the dtype's tolerances: exact), and at most ``max_unmatched`` detections per image
    appear or vanish. ``masks`` names instance masks ``(n, 1, H, W)`` (Mask R-CNN's ``"masks"``): each
    is compared inside its box, on a ``mask_size`` square grid, and its probabilities may change by at
    most ``max_mask_change`` (default: exact). See docs/geometry.md.
    """
    if format not in geometry.BOX_FORMATS:
        raise EquivarianceUsageError(f"detections(format={shown(format)}) is not a box format; pass one of "
                                     f"{', '.join(geometry.BOX_FORMATS)}.")
    if masks is not None and boxes is None:
        raise EquivarianceUsageError("detections(masks=...) compares each mask inside its box, so it needs boxes; "
                                     "name the entry that holds them, or drop masks=.")
    if isinstance(mask_size, bool) or not isinstance(mask_size, int) or mask_size < 1:
        raise EquivarianceUsageError(f"detections(mask_size={shown(mask_size)}) is not a size; pass a whole number "
                                     f"of at least 1 (Mask R-CNN's masks are 28).")
    if boxes is None and points is None:
        raise EquivarianceUsageError("detections() with boxes=None and no points= has nothing that moves; name the "
                                     "entry that holds the boxes or the keypoints.")
    for name, value, low, high in (("min_iou", min_iou, 0.0, 1.0), ("match_distance", match_distance, 0.0, math.inf),
                                   ("max_displacement", max_displacement, 0.0, math.inf),
                                   ("max_score_change", max_score_change, 0.0, math.inf),
                                   ("max_mask_change", max_mask_change, 0.0, math.inf)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not low <= value <= high or (name == "min_iou" and value == 0)):
            bounds = "in (0, 1]" if name == "min_iou" else "a number of at least 0"
            raise EquivarianceUsageError(f"detections({name}={shown(value)}) is out of range; pass {bounds}.")
    for name, value in (("max_unmatched", max_unmatched), ("max_detections", max_detections)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "max_unmatched" else 1):
            raise EquivarianceUsageError(f"detections({name}={shown(value)}) is not a count; pass a whole number"
                                         f"{' of at least 0' if name == 'max_unmatched' else ' of at least 1'}.")
    pairs = geometry.points(flip_pairs).flip_pairs
    return Detections(boxes, labels, scores, points, format, pairs, float(min_iou), float(match_distance),
                      None if max_displacement is None else float(max_displacement),
                      None if max_score_change is None else float(max_score_change), max_unmatched, max_detections,
                      masks, mask_size, None if max_mask_change is None else float(max_mask_change))


def refuse_sets(entry: str, output: Any) -> None:
    """Refuse to differentiate a detector's per-image sets: they have no derivative (nor a per-layer profile)."""
    if isinstance(output, (list, tuple)) and output and all(isinstance(item, Mapping) for item in output):
        raise EquivarianceUsageError(
            f"{entry}() differentiates tensor outputs, but the model returns a set of detections per image "
            f"({len(output)} dicts), which has no derivative; pass the backbone or the heatmap head the detections "
            f"are read from (e.g. {entry}(model.backbone, ...))."
        )


def require_compared(trials: Sequence[Any]) -> None:
    """Refuse a check whose detection sets held nothing to compare in any trial: it must not pass."""
    judged = [t for t in trials if t.matched is not None]
    if judged and not any(t.matched or t.appeared or t.vanished for t in judged):
        raise EquivarianceUsageError(
            "No detection lay inside the compared region of any image in any trial, so nothing was compared; "
            "pass images with objects away from the border (or lower the model's score threshold), a smaller "
            "margin=, or mode='circular'."
        )


class Packing:
    """A model whose per-image detection sets are packed into one tensor (what the runner batches)."""

    def __init__(self, model: Any, spec: Detections) -> None:
        self.model, self.spec = model, spec

    def __call__(self, x: "Tensor") -> "Tensor":
        return self.spec.pack(self.model(x), tuple(x.shape[-2:]))

    def modules(self) -> Any:  # the runner hooks the model's layers to size its chunks
        return self.model.modules()


def packed(model: Any, output_geometry: Any) -> Any:
    """Return what the runner calls: ``model``, or ``model`` packing its detection sets when declared."""
    if isinstance(output_geometry, Mapping) and any(isinstance(v, Detections) for v in output_geometry.values()):
        raise EquivarianceUsageError(
            "detections() describes the whole output (one set per image), not one leaf of it; pass "
            "output_fields=detections(...) alone."
        )
    return Packing(model, output_geometry) if isinstance(output_geometry, Detections) else model
