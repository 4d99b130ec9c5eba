"""Rescaling sampled images: the resamplers a scale check chooses, and the scale-channel field.

"Scale by ``s``" magnifies the content by ``s`` on the pixel grid: an image of ``n`` pixels becomes
one of ``s·n`` pixels showing the same field of view, so a feature ``p`` pixels wide becomes ``s·p``
pixels wide. It is the finite form of the ``scale`` Lie derivative of :mod:`.lie`, which magnifies by
``e^t``: ``s = e^t``. A scale check compares ``model(D_s x)`` with ``D_s model(x)``, where ``D_s`` is
one of two resamplers, kept here as data (:data:`RESAMPLERS`):

- ``"fourier"``: the ideal band-limited resampler. The image is one period of a band-limited
  periodic signal; downscaling crops its spectrum, upscaling zero-pads it
  (:func:`~.resample.resample_fourier`). Exact for such signals in both directions, so a network
  of 1×1 convolutions commutes with it to rounding. It scales about the grid's first sample, which
  on a periodic grid is no different from any other point (a circular model cannot tell).
  A signal on ``n`` samples and its rescaled copy on ``m`` share only the frequencies below
  ``min(n, m)/2``: the comparison is limited to that band on both sides (:meth:`Resampler.band`), and
  the Nyquist bin of an even size, whose frequency's sign is ambiguous, is left out, as Rahman & Yeh
  (NeurIPS 2023) do.
- ``"antialias"``: ``F.interpolate(mode="bilinear", antialias=True)``, what data pipelines do. It
  scales about the image centre (``align_corners=False``) and is not exact: it blurs as it
  downscales and interpolates as it upscales, so it judges what a user's pipeline would do. Edges
  are clamped, so the border of the compared output is left out (``margin``).

A scale-equivariant network (SESN, DISCO) returns, beside its spatial dims, an axis of ``n`` scale
channels: filters at scales ``σ_i = σ_0·base^i``. Magnifying its input by ``base^k`` moves channel
``i`` to ``i + k`` (the filter ``base^k`` times larger sees what the smaller one saw before) and
rescales each map; channels whose partner falls outside the ``n`` computed are not compared.
:func:`scale_channels` declares such an output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class Resampler:
    """How a scale check resizes images: ``resize`` to a size, and ``band`` to what both grids hold."""

    name: str
    exact: bool  # whether band-limited periodic signals are resampled exactly
    resize: Callable[["Tensor", Sequence[int], Sequence[int]], "Tensor"] = field(repr=False)
    band: Callable[["Tensor", Sequence[int], Sequence[int]], "Tensor"] = field(repr=False)
    spatial_dims: tuple[int, ...] = (1, 2, 3)  # how many spatial dims it resizes


def fourier_resize(x: "Tensor", size: Sequence[int], dims: Sequence[int]) -> "Tensor":
    """Return ``x`` resampled to ``size`` along ``dims`` by cropping or zero-padding its spectrum."""
    from pytest_equivariance.check.resample import resample_fourier

    return resample_fourier(x, size, dims)


def fourier_band(y: "Tensor", keep: Sequence[int], dims: Sequence[int]) -> "Tensor":
    """Return ``y`` with every frequency at or above ``keep/2`` cycles per image along ``dims`` removed.

    What a grid of ``keep`` samples holds without ambiguity: for an even ``keep`` its Nyquist bin
    goes too. The identity where ``keep`` is larger than ``y``'s own size.
    """
    import torch

    work = y if y.dtype in (torch.float32, torch.float64) else y.float()
    spectrum = None
    for dim, k in zip(dims, keep):
        n = work.shape[dim]
        if k > n or (k == n and n % 2):
            continue
        if spectrum is None:
            spectrum = torch.fft.fftn(work, dim=list(dims))
        freqs = torch.fft.fftfreq(n, d=1.0 / n, device=y.device).abs()
        inside = (freqs < k / 2).to(spectrum.real.dtype)
        view = [1] * y.dim()
        view[dim] = n
        spectrum = spectrum * inside.view(view)
    if spectrum is None:
        return y
    return torch.fft.ifftn(spectrum, dim=list(dims)).real.to(y.dtype)


def antialias_resize(x: "Tensor", size: Sequence[int], dims: Sequence[int]) -> "Tensor":
    """Return ``x`` resized to ``size`` along its image plane ``dims`` by anti-aliased bilinear interpolation."""
    import torch
    import torch.nn.functional as F

    ndim = x.dim()
    a, b = dims[0] % ndim, dims[1] % ndim
    moved = x.movedim((a, b), (-2, -1))
    lead = moved.shape[:-2]
    work_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    flat = moved.reshape(-1, 1, *moved.shape[-2:]).to(work_dtype)
    out = F.interpolate(flat, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return out.reshape(*lead, *out.shape[-2:]).to(x.dtype).movedim((-2, -1), (a, b))


def _unchanged(y: "Tensor", keep: Sequence[int], dims: Sequence[int]) -> "Tensor":
    return y


#: The resamplers a scale check's ``mode=`` names.
RESAMPLERS: dict[str, Resampler] = {
    "fourier": Resampler("fourier", True, fourier_resize, fourier_band),
    "antialias": Resampler("antialias", False, antialias_resize, _unchanged, spatial_dims=(2,)),
}


def scaled_size(n: int, factor: float) -> int | None:
    """Return ``factor·n`` when it is a whole number of samples (to 1e-6), else None."""
    m = factor * n
    return int(round(m)) if abs(m - round(m)) < 1e-6 and round(m) > 0 else None


# --------------------------------------------------------------------------------------------
# Scale channels: an output field


@dataclass(frozen=True)
class ScaleChannels:
    """Channels along ``axis`` that hold ``n`` scales ``σ_0·base^i`` (blocks of ``n`` when the axis is longer)."""

    n: int
    axis: int = 2
    base: float = 2.0

    def describe(self) -> str:
        return f"scale_channels({self.n}, axis={self.axis}, base={self.base:g})"

    def steps(self, factor: float) -> int | None:
        """Return ``k`` with ``factor == base**k``, or None when ``factor`` is not a whole number of steps."""
        k = math.log(factor) / math.log(self.base)
        return int(round(k)) if abs(k - round(k)) < 1e-6 else None

    def validate(self, leaf: "Tensor", where: str, spatial: int) -> None:
        axis = self.axis % leaf.dim() if -leaf.dim() <= self.axis < leaf.dim() else None
        if axis is None or axis == 0 or axis >= leaf.dim() - spatial:
            raise EquivarianceUsageError(
                f"scale_channels(axis={self.axis}) does not name a channel axis of the {where}, which has shape "
                f"{tuple(leaf.shape)}; pass the axis between the batch and the spatial dims that holds the scales."
            )
        if leaf.shape[axis] % self.n:
            raise EquivarianceUsageError(
                f"The {where} has {leaf.shape[axis]} entries along axis {self.axis}, which is not a whole number of "
                f"blocks of {self.n} scales; pass scale_channels(n) with n dividing it."
            )

    def _blocks(self, y: "Tensor") -> "Tensor":
        axis = self.axis % y.dim()
        shape = list(y.shape)
        return y.reshape(shape[:axis] + [shape[axis] // self.n, self.n] + shape[axis + 1:])

    def act(self, y: "Tensor", k: int) -> "Tensor":
        """Return ``y`` with scale channel ``i`` of each block moved to ``i + k`` (zeros where none comes)."""
        import torch

        axis = self.axis % y.dim()
        blocks = self._blocks(y)
        out = torch.zeros_like(blocks)
        if abs(k) < self.n:
            src = blocks.narrow(axis + 1, max(0, -k), self.n - abs(k))
            out.narrow(axis + 1, max(0, k), self.n - abs(k)).copy_(src)
        return out.reshape(y.shape)

    def kept(self, shape: Sequence[int], k: int, device: Any = None) -> "Tensor":
        """Return a boolean mask broadcastable to ``shape``: the channels that received a partner."""
        import torch

        axis = self.axis % len(shape)
        index = torch.arange(self.n, device=device)
        line = ((index >= k) & (index < self.n + k)).repeat(shape[axis] // self.n)
        view = [1] * len(shape)
        view[axis] = shape[axis]
        return line.view(view)


def scale_channels(n: int, *, axis: int = 2, base: float = 2.0) -> ScaleChannels:
    """Declare an output whose ``axis`` holds ``n`` scale channels, ``base`` apart (SESN, DISCO).

    Magnifying the input by ``base**k`` moves channel ``i`` to ``i + k`` and rescales every map
    (module docstring). ``axis=2`` is SESN's ``(batch, channels, scales, H, W)``; ``axis=1`` with
    ``channels = C·n`` reads the channels as ``C`` blocks of ``n`` consecutive scales.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise EquivarianceUsageError(f"scale_channels(n={shown(n)}) needs a positive number of scales; pass e.g. n=4.")
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise EquivarianceUsageError(f"scale_channels(axis={shown(axis)}) is not an axis; pass an integer, e.g. axis=2.")
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not math.isfinite(base) or base <= 1:
        raise EquivarianceUsageError(
            f"scale_channels(base={shown(base)}) is not a scale step; pass the ratio of neighbouring scales, above 1, "
            f"e.g. base=2 or base=2 ** 0.5."
        )
    return ScaleChannels(n, axis, float(base))


@dataclass(frozen=True)
class Rescaling:
    """One rescaling as a check applies it: the factor, the resampler, and the output leaves' scale fields."""

    factor: float
    resampler: Resampler
    fields: Mapping[str, ScaleChannels] = field(default_factory=dict)

    def sizes(self, y: "Tensor", dims: Sequence[int]) -> list[int]:
        out = []
        for d in dims:
            m = scaled_size(y.shape[d], self.factor)
            if m is None:
                raise EquivarianceUsageError(
                    f"scale ×{self.factor:g} of {y.shape[d]} pixels is not a whole number of pixels; pass factors "
                    f"that map every input and output size onto whole pixels (e.g. 0.5 or 2 for even sizes)."
                )
            out.append(m)
        return out

    def on_input(self, x: "Tensor", dims: Sequence[int]) -> "Tensor":
        return self.resampler.resize(x, self.sizes(x, dims), dims)

    def on_output(self, y: "Tensor", dims: Sequence[int], leaf: str) -> "Tensor":
        size = self.sizes(y, dims)
        moved = self.resampler.resize(y, size, dims)
        moved = self.resampler.band(moved, [min(n, y.shape[d]) for n, d in zip(size, dims)], dims)
        fields = self.fields.get(leaf)
        if fields is not None:
            steps = fields.steps(self.factor)
            assert steps is not None, "factors are checked against the scale fields when drawn"
            moved = fields.act(moved, steps)
        return moved

    def comparable(self, a: "Tensor", dims: Sequence[int]) -> "Tensor":
        """Return the output on the rescaled input limited to the band its counterpart can hold."""
        keep = [min(a.shape[d], int(round(a.shape[d] / self.factor))) for d in dims]
        return self.resampler.band(a, keep, dims)

    def kept(self, shape: Sequence[int], leaf: str, device: Any) -> "Tensor | None":
        fields = self.fields.get(leaf)
        if fields is None:
            return None
        steps = fields.steps(self.factor)
        return fields.kept(shape, steps or 0, device)
