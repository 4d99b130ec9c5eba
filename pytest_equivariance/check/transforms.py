"""Group actions on tensors: shifts, quarter turns, flips, rotations by any angle, custom pairs.

A :class:`Transform` is one group element ``g``. It acts on the model's input (:meth:`Transform.on_input`)
and on its output (:meth:`Transform.on_output`), where the output grid may be ``stride`` times coarser
than the input's. Equivariance means ``model(g·x) == g·model(x)``; invariance ``model(g·x) == model(x)``.

Spatial dims are the trailing dims of a ``(batch, channels, *spatial)`` tensor, always written as
negative indices (``(-2, -1)`` for images). Three ways to shift, because real models pad differently:

- ``circular``: ``torch.roll``. Exact for circular-padded models, so any difference is the model's.
- ``crop``: the model sees crops of a larger canvas at different offsets (Zhang 2019's protocol); the
  content at the borders is real, so zero-padded models are judged fairly. The canvas is ``margin``
  pixels larger than the crop on each side; :meth:`Transform.reference` is the central crop.
- ``zero``: content shifted in with zeros. Only the part of the output the border cannot reach is
  compared (:meth:`Transform.mask`).

Rotations by quarter turns and flips (``mode="exact"``) permute pixels exactly; rotations by other
angles (``mode="interp"``) resample with bilinear interpolation, and only the disk inscribed in the
image is compared, because the corners leave the frame.

Rescalings (``family="scale"``, :func:`rescale`) change the size of what they act on; their
resamplers and the scale-channel field are in :mod:`.rescaling`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from pytest_equivariance.check.resample import fourier_shift

if TYPE_CHECKING:
    from torch import Tensor

SHIFT_MODES = ("circular", "crop", "zero")
ROTATION_MODES = ("exact", "interp")
#: The resamplers of a rescaling (check.rescaling.RESAMPLERS).
SCALE_MODES = ("fourier", "antialias")
#: Flips a rotation check accepts by name beside angles, and the plane axis each mirrors (0: rows, 1: columns).
FLIP_NAMES = {"hflip": 1, "vflip": 0}

_AXIS_NAMES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}
_DIM_NAMES = {-1: "W", -2: "H", -3: "D"}


@dataclass(frozen=True)
class Transform:
    """One group element acting on a model's input and output spatial dims.

    ``params`` is machine-readable (``{"shift": (1, -3)}`` in input pixels, ``{"k": 1}``,
    ``{"axis": -1}``, ``{"angle": 30.0}``); ``label`` is what a report prints.
    """

    label: str
    family: str  # "shift" | "crop" | "embed" | "rot90" | "flip" | "angle" | "group" | "scale" | "custom"
    params: dict[str, Any] = field(hash=False)
    dims: tuple[int, ...] = ()
    mode: str = "custom"  # "circular" | "crop" | "zero" | "exact" | "interp" | "custom"
    # crop mode: how far the canvas extends beyond the crop on each side of each dim, in pixels.
    canvas: tuple[int, ...] | None = None
    input_fn: Callable[["Tensor"], "Tensor"] | None = field(default=None, compare=False, repr=False)
    output_fn: Callable[["Tensor"], "Tensor"] | None = field(default=None, compare=False, repr=False)
    # family "group": the element (check.groups.Element), family "scale": the check.rescaling.Rescaling;
    # for a group element, how it acts on the input's channels and
    # on each output leaf's (``(tensor, leaf path) -> tensor``); None acts trivially.
    element: Any = field(default=None, compare=False, repr=False)
    fiber_in: Callable[["Tensor"], "Tensor"] | None = field(default=None, compare=False, repr=False)
    fiber_out: Callable[["Tensor", str], "Tensor"] | None = field(default=None, compare=False, repr=False)

    # -- acting on tensors -------------------------------------------------------------------

    def reference(self, x: "Tensor") -> "Tensor":
        """Return the untransformed model input that goes with ``x``.

        The identity for every mode except ``crop`` (the central crop of the canvas) and ``interp``
        (the image masked to its inscribed disk, so that corners do not count on either side).
        """
        if self.family in ("crop", "embed"):  # a window or a paste at an offset: the one it names
            return self.on_input(x)
        if self.mode == "crop":
            return _crop(x, self.dims, self.canvas, (0,) * len(self.dims))
        if self.mode == "interp" and self.family != "group":  # group checks taper their inputs once
            return x * disk_mask(x.shape, self.dims, dtype=x.dtype, device=x.device)
        return x

    def on_input(self, x: "Tensor") -> "Tensor":
        """Return ``g·x`` (in crop mode ``x`` is the canvas and the result a shifted crop of it)."""
        import torch

        family, p = self.family, self.params
        if family == "shift":
            shift = p["shift"]
            if self.mode == "circular":
                return fourier_shift(x, shift, self.dims)  # torch.roll for integer shifts
            if self.mode == "crop":
                whole = tuple(math.floor(d) for d in shift)
                rest = tuple(d - w for d, w in zip(shift, whole))
                if any(rest):  # resample the canvas band-limitedly, then crop on the pixel grid
                    x = fourier_shift(x, rest, self.dims)
                return _crop(x, self.dims, self.canvas, whole)
            return _shift_zero(x, shift, self.dims)
        if family == "crop":
            for dim, start, size in zip(self.dims, p["offset"], p["size"]):
                x = x.narrow(dim, start, size)
            return x
        if family == "embed":
            return _embed(x, self.dims, p["offset"], p["size"], p["canvas"])
        if family == "rot90":
            return torch.rot90(x, p["k"], self.dims)
        if family == "flip":
            return torch.flip(x, (p["axis"],))
        if family == "angle":
            return rotate(self.reference(x), p["angle"], self.dims)
        if family == "group":
            moved = self.element.spatial(self.reference(x), self.dims)
            return moved if self.fiber_in is None else self.fiber_in(moved)
        if family == "scale":
            return self.element.on_input(x, self.dims)
        if family == "custom":
            assert self.input_fn is not None
            return self.input_fn(x)
        raise ValueError(f"unknown transform family {family!r}")

    def on_output(self, y: "Tensor", stride: tuple[int, ...] | None = None, leaf: str = "") -> "Tensor":
        """Return ``g·y`` for an output whose grid is ``stride`` times coarser than the input's.

        A shift by ``Δ`` input pixels is a shift by ``Δ / stride`` output pixels; the caller makes
        sure it divides (see :func:`output_shift`). In crop and zero modes the result is rolled, and
        :meth:`mask` marks which part of it is meaningful.
        """
        import torch

        family, p = self.family, self.params
        if family == "shift":
            return fourier_shift(y, output_shift(p["shift"], stride), self.dims)
        if family in ("crop", "embed"):
            raise ValueError(f"a {family} at an offset has no counterpart on the output; it is for invariance only")
        if family == "rot90":
            return torch.rot90(y, p["k"], self.dims)
        if family == "flip":
            return torch.flip(y, (p["axis"],))
        if family == "angle":
            return rotate(y, p["angle"], self.dims)
        if family == "group":
            moved = self.element.spatial(y, self.dims)
            return moved if self.fiber_out is None else self.fiber_out(moved, leaf)
        if family == "scale":  # resized to the rescaled input's output grid, its scale channels moved
            return self.element.on_output(y, self.dims, leaf)
        if family == "custom":
            return y if self.output_fn is None else self.output_fn(y)
        raise ValueError(f"unknown transform family {family!r}")

    def comparable(self, a: "Tensor") -> "Tensor":
        """Return the model's output on ``g·x`` as it is compared with ``g·y``: all of it, except under an
        ideal rescaling, whose band is limited to what both grids hold (:mod:`.rescaling`)."""
        return self.element.comparable(a, self.dims) if self.family == "scale" else a

    def mask(
        self,
        shape: tuple[int, ...],
        stride: tuple[int, ...] | None = None,
        margin: tuple[int, ...] | int = 0,
        device: Any = None,
        leaf: str = "",
    ) -> "Tensor | None":
        """Return a boolean mask over ``shape`` of the output elements worth comparing, or None for all.

        Shifts in crop and zero modes exclude what was shifted in at the border, plus ``margin``
        output pixels at every border (the reach of the model's padding); rotations by interpolation
        keep the inscribed disk, shrunk by ``margin``. Rescalings leave out ``margin`` pixels at every
        border of the rescaled output, and the scale channels of leaf ``leaf`` that have no partner.
        """
        import torch

        nd = len(self.dims)
        margins = (margin,) * nd if isinstance(margin, int) else tuple(margin)
        if self.family == "shift" and self.mode in ("crop", "zero"):
            out_shift = output_shift(self.params["shift"], stride)
            keep = torch.ones(shape, dtype=torch.bool, device=device)
            for dim, s, m in zip(self.dims, out_shift, margins):
                n = shape[dim]
                # A fractional shift smears one more pixel in at the border.
                lo, hi = m + max(math.ceil(s), 0), n - m + min(math.floor(s), 0)
                index = torch.arange(n, device=device)
                line = (index >= lo) & (index < hi)
                view = [1] * len(shape)
                view[dim] = n
                keep = keep & line.view(view)
            return keep
        if self.family == "angle" or (self.family == "group" and self.mode == "interp"):
            return disk_mask(shape, self.dims, margin=max(margins, default=0), device=device) > 0.5
        if self.family == "scale":
            return _scale_mask(shape, self.dims, margins, self.element.kept(shape, leaf, device), device)
        return None


# -- constructors ----------------------------------------------------------------------------


def shift(
    delta: tuple[float, ...], dims: tuple[int, ...], mode: str = "circular", canvas: tuple[int, ...] | None = None
) -> Transform:
    """Return the shift by ``delta`` input pixels along ``dims`` (content moves towards higher indices).

    Integer entries stay integers (exact: ``torch.roll`` and crops); fractional ones are sub-pixel
    shifts, resampled band-limitedly (:func:`~pytest_equivariance.check.resample.fourier_shift`).
    """
    delta = tuple(int(d) if float(d).is_integer() else float(d) for d in delta)
    names = _AXIS_NAMES.get(len(dims), [str(i) for i in range(len(dims))])
    parts = ", ".join(f"d{n}={d:+d}" if isinstance(d, int) else f"d{n}={d:+g}" for n, d in zip(names, delta))
    return Transform(
        label=f"shift ({parts})",
        family="shift",
        params={"shift": delta},
        dims=tuple(dims),
        mode=mode,
        canvas=tuple(canvas) if canvas is not None else None,
    )


def crop_at(offset: tuple[int, ...], size: tuple[int, ...], dims: tuple[int, ...]) -> Transform:
    """Return the window of ``size`` pixels at ``offset`` (its first pixel) along ``dims`` of a larger image.

    Zhang's and Azulay & Weiss's protocols compare crops of one canvas at two offsets; a crop has no
    action on the output, so it serves invariance only.
    """
    offset, size = tuple(int(o) for o in offset), tuple(int(s) for s in size)
    return Transform(
        label=f"crop at {offset if len(offset) > 1 else offset[0]}",
        family="crop",
        params={"offset": offset, "size": size},
        dims=tuple(dims),
        mode="crop",
    )


def embed_at(
    offset: tuple[int, ...], size: tuple[int, ...], canvas: tuple[int, ...], dims: tuple[int, ...]
) -> Transform:
    """Return the image resized to ``size`` pixels and pasted at ``offset`` into a zero ``canvas`` along ``dims``.

    Azulay & Weiss's embedding protocols paste a small image into a larger black one and move it
    (by a pixel) or grow it (by a pixel) there. The image is resized only when ``size`` differs from
    its own, by anti-aliased bilinear interpolation (what torchvision's ``Resize`` does), which
    resizes image planes only. Like a crop, it has no action on the output: it serves invariance only.
    """
    offset, size, canvas = (tuple(int(v) for v in t) for t in (offset, size, canvas))
    at = offset if len(offset) > 1 else offset[0]
    return Transform(
        label=f"{'x'.join(map(str, size))} image at {at}",
        family="embed",
        params={"offset": offset, "size": size, "canvas": canvas},
        dims=tuple(dims),
        mode="embed",
    )


def rot90(k: int, dims: tuple[int, int] = (-2, -1)) -> Transform:
    """Return the rotation by ``k`` quarter turns in the plane ``dims`` (counter-clockwise, as torch.rot90)."""
    return Transform(label=f"rot90 ×{k % 4}", family="rot90", params={"k": k % 4}, dims=tuple(dims), mode="exact")


def flip(axis: int, dims: tuple[int, ...] = (-2, -1)) -> Transform:
    """Return the mirror image along spatial dim ``axis``."""
    name = _DIM_NAMES.get(axis, str(axis))
    return Transform(label=f"flip {name}", family="flip", params={"axis": axis}, dims=tuple(dims), mode="exact")


def rotation(angle: float, dims: tuple[int, int] = (-2, -1)) -> Transform:
    """Return the rotation by ``angle`` degrees (counter-clockwise) resampled by bilinear interpolation."""
    angle = float(angle)
    return Transform(
        label=f"rotate {angle:g}°", family="angle", params={"angle": angle}, dims=tuple(dims), mode="interp"
    )


def group_element(
    element: Any,
    dims: tuple[int, ...],
    mode: str,
    fiber_in: Callable[["Tensor"], "Tensor"] | None = None,
    fiber_out: Callable[["Tensor", str], "Tensor"] | None = None,
) -> Transform:
    """Return the transform of a group element (:class:`check.groups.Element`) acting on fields."""
    return Transform(
        element.label, "group", element.params, tuple(dims), mode,
        element=element, fiber_in=fiber_in, fiber_out=fiber_out,
    )


def rescale(factor: float, dims: tuple[int, ...], mode: str = "fourier", fields: Any = None) -> Transform:
    """Return the rescaling that magnifies by ``factor`` along ``dims`` with the resampler ``mode``.

    ``fields`` maps output leaves to their :class:`~.rescaling.ScaleChannels` (None: scalar maps).
    """
    from pytest_equivariance.check.rescaling import RESAMPLERS, Rescaling

    factor = float(factor)
    return Transform(
        label=f"scale ×{factor:g}", family="scale", params={"scale": factor}, dims=tuple(dims), mode=mode,
        element=Rescaling(factor, RESAMPLERS[mode], dict(fields or {})),
    )


def custom(
    input_fn: Callable[["Tensor"], "Tensor"],
    output_fn: Callable[["Tensor"], "Tensor"] | None,
    dims: tuple[int, ...] = (),
    label: str | None = None,
) -> Transform:
    """Return a transform that applies ``input_fn`` to inputs and ``output_fn`` (None: nothing) to outputs."""
    name = label or getattr(input_fn, "__name__", "custom")
    if name == "<lambda>":
        name = "custom"
    return Transform(
        label=name,
        family="custom",
        params={},
        dims=tuple(dims),
        mode="custom",
        input_fn=input_fn,
        output_fn=output_fn,
    )


# -- helpers -----------------------------------------------------------------------------------


def output_shift(delta: tuple[float, ...], stride: tuple[int, ...] | None) -> tuple[float, ...]:
    """Return the shift in output pixels for ``delta`` input pixels on a grid ``stride`` times coarser.

    A whole-pixel shift must be a multiple of the stride (the lattice). A sub-pixel shift (any
    fractional entry) is band-limited, so it acts on the output's own grid as ``delta / stride``
    output pixels along every dim, its whole-pixel entries included: ``(1, 0.5)`` at stride 2 is
    ``(0.5, 0.25)``.
    """
    if stride is None:
        return tuple(delta)
    subpixel = any(not float(d).is_integer() for d in delta)
    out: list[float] = []
    for d, k in zip(delta, stride):
        if d % k == 0:
            out.append(int(d) // k)
        elif subpixel:
            out.append(d / k)
        else:
            raise ValueError(f"shift {d} is not a multiple of the output stride {k}")
    return tuple(out)


def _scale_mask(
    shape: tuple[int, ...], dims: tuple[int, ...], margins: tuple[int, ...], channels: "Tensor | None", device: Any
) -> "Tensor | None":
    """The mask of a rescaled output: ``margins`` pixels off every border, and the scale ``channels`` kept."""
    import torch

    if not any(margins) and channels is None:
        return None
    keep = torch.ones(shape, dtype=torch.bool, device=device)
    for dim, m in zip(dims, margins):
        m = min(m, shape[dim])  # a margin wider than the map leaves nothing (the caller says so)
        index = torch.arange(shape[dim], device=device)
        view = [1] * len(shape)
        view[dim] = shape[dim]
        keep = keep & ((index >= m) & (index < shape[dim] - m)).view(view)
    return keep if channels is None else keep & channels


def _crop(x: "Tensor", dims: tuple[int, ...], canvas: tuple[int, ...] | None, delta: tuple[int, ...]) -> "Tensor":
    # Content moving by +d means the window moves by -d over the canvas.
    assert canvas is not None
    for dim, m, d in zip(dims, canvas, delta):
        size = x.shape[dim] - 2 * m
        x = x.narrow(dim, m - d, size)
    return x


def _embed(
    x: "Tensor", dims: tuple[int, ...], offset: tuple[int, ...], size: tuple[int, ...], canvas: tuple[int, ...]
) -> "Tensor":
    import torch

    from pytest_equivariance.check.rescaling import antialias_resize

    if tuple(x.shape[d] for d in dims) != tuple(size):
        x = antialias_resize(x, size, dims)
    shape = list(x.shape)
    for dim, n in zip(dims, canvas):
        shape[dim] = n
    out = torch.zeros(shape, dtype=x.dtype, device=x.device)
    window = out
    for dim, start, n in zip(dims, offset, size):
        window = window.narrow(dim, start, n)
    window.copy_(x)
    return out


def _shift_zero(x: "Tensor", delta: tuple[int, ...], dims: tuple[int, ...]) -> "Tensor":
    import torch

    out = torch.roll(x, delta, dims)
    for dim, d in zip(dims, delta):
        if d > 0:
            out.narrow(dim, 0, min(d, out.shape[dim])).zero_()
        elif d < 0:
            n = min(-d, out.shape[dim])
            out.narrow(dim, out.shape[dim] - n, n).zero_()
    return out


def disk_mask(
    shape: tuple[int, ...],
    dims: tuple[int, ...] = (-2, -1),
    *,
    margin: int = 0,
    dtype: Any = None,
    device: Any = None,
) -> "Tensor":
    """Return a 0/1 tensor broadcastable to ``shape``: 1 inside the disk inscribed in the plane ``dims``
    (the ball inscribed in the volume, for three dims).

    The radius is half the smallest side less ``margin`` pixels, measured between pixel centres
    about the centre, so the region is symmetric under quarter turns and flips.
    """
    import torch

    r, radius = _radii(shape, dims, device)
    inside = r <= radius - margin
    return _grid_view(inside, shape, dims).to(dtype=dtype or torch.get_default_dtype())


def _radii(shape: tuple[int, ...], dims: tuple[int, ...], device: Any) -> tuple["Tensor", float]:
    """Return each sample's distance from the centre of the grid ``dims`` (between pixel centres),
    as a float64 tensor over those dims, and the radius of the inscribed disk (or ball)."""
    import torch

    sizes = [shape[d] for d in dims]
    axes = [torch.arange(n, dtype=torch.float64, device=device) - (n - 1) / 2 for n in sizes]
    squares = sum(a.view([-1 if i == j else 1 for j in range(len(axes))]) ** 2 for i, a in enumerate(axes))
    return squares.sqrt(), min(sizes) / 2  # type: ignore[union-attr]


def _grid_view(grid: "Tensor", shape: tuple[int, ...], dims: tuple[int, ...]) -> "Tensor":
    """Return a tensor over the dims ``dims`` (in that order) shaped to broadcast against ``shape``."""
    ndim = len(shape)
    positions = [d % ndim for d in dims]
    order = sorted(range(len(dims)), key=lambda i: positions[i])
    view = [1] * ndim
    for d in positions:
        view[d] = shape[d]
    return grid.permute(order).reshape(view)


def soft_disk(
    shape: tuple[int, ...], dims: tuple[int, ...] = (-2, -1), *, taper: float = 0.3, dtype: Any = None,
    device: Any = None,
) -> "Tensor":
    """Return a window broadcastable to ``shape``: 1 inside ``1 - taper`` of the inscribed disk's
    (or ball's) radius, falling as ``sin²`` to 0 at its edge.

    A hard disk edge is not band-limited, so resampling it rings; a tapered one rotates cleanly.
    """
    import torch

    r, radius = _radii(shape, dims, device)
    window = torch.sin(((radius - r) / (taper * radius)).clamp(0, 1) * math.pi / 2) ** 2
    return _grid_view(window, shape, dims).to(dtype=dtype or torch.get_default_dtype())


def rotate(x: "Tensor", angle: float, dims: tuple[int, ...] = (-2, -1), *, before_centre: float = 0.0) -> "Tensor":
    """Return ``x`` rotated by ``angle`` degrees counter-clockwise about the centre of the plane ``dims``.

    Bilinear interpolation (``grid_sample``, zeros outside); quarter turns land on pixel centres, so
    they agree with ``torch.rot90`` up to rounding. Pixel coordinates are used rather than normalised
    ones, so non-square planes rotate rigidly too.
    """
    import torch
    import torch.nn.functional as F

    ndim = x.dim()
    a, b = dims[0] % ndim, dims[1] % ndim
    # Move the plane to the last two dims and fold everything else into the batch.
    perm = [d for d in range(ndim) if d not in (a, b)] + [a, b]
    moved = x.permute(perm)
    lead = moved.shape[:-2]
    h, w = moved.shape[-2:]
    work_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    flat = moved.reshape(-1, 1, h, w).to(work_dtype)
    theta = math.radians(angle)
    cos, sin = math.cos(theta), math.sin(theta)
    ys = torch.arange(h, dtype=torch.float64, device=x.device) - (h - 1) / 2
    xs = torch.arange(w, dtype=torch.float64, device=x.device) - (w - 1) / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    # About a point ``before_centre`` pixels before the grid's centre on both axes (an oversampled
    # grid's samples keep the coarse grid's centre there), then back to the grid's own coordinates.
    yy, xx = yy + before_centre, xx + before_centre
    # Inverse map: each output pixel samples the input at the point the rotation carries onto it.
    # Rows grow downwards, so the signs are those that make θ = 90° equal torch.rot90(k=1).
    src_x = cos * xx - sin * yy - before_centre
    src_y = sin * xx + cos * yy - before_centre
    grid = torch.stack((src_x / (w / 2), src_y / (h / 2)), dim=-1)
    grid = grid.to(work_dtype).unsqueeze(0).expand(flat.shape[0], h, w, 2)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out.reshape(*lead, h, w).to(x.dtype)
    inverse = [perm.index(d) for d in range(ndim)]
    return out.permute(inverse).contiguous()
