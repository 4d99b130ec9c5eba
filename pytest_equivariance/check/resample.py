"""Band-limited (Fourier) resampling of sampled images: sub-pixel shifts and spectral derivatives.

A sampled image is read as one period of a band-limited periodic signal. Shifting it by a fraction
of a pixel multiplies its spectrum by a phase ramp, and differentiating it multiplies the spectrum
by ``i·2π·k / N``: both exact for such signals, and both commuting with any circular convolution —
so a circular, linear, stride-1 network is exactly equivariant to them, as it is to ``torch.roll``.

The Nyquist bin of an even-sized axis is real-valued and its frequency's sign is ambiguous
(``+N/2`` and ``-N/2`` alias): its phase ramp is replaced by the real part (``cos``), and its
derivative is zero, so that real inputs stay real and the operators stay symmetric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import Tensor


def _frequencies(n: int, *, like: "Tensor") -> "Tensor":
    """Return the angular frequencies ``2π·k/n`` of an axis of ``n`` samples, Nyquist included."""
    import torch

    return 2 * math.pi * torch.fft.fftfreq(n, d=1.0, device=like.device, dtype=_real(like))


def _real(x: "Tensor") -> "torch.dtype":
    import torch

    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _axis_view(v: "Tensor", dim: int, ndim: int) -> "Tensor":
    shape = [1] * ndim
    shape[dim] = v.numel()
    return v.reshape(shape)


def fourier_shift(x: "Tensor", shift: Sequence[float], dims: Sequence[int]) -> "Tensor":
    """Return ``x`` shifted by ``shift`` samples along ``dims`` (positive: toward higher indices).

    For integer shifts this equals ``torch.roll(x, shift, dims)`` up to rounding; for fractional
    ones it is the band-limited interpolation (Whittaker–Shannon on the periodic signal).
    """
    import torch

    shift = [float(s) for s in shift]
    if all(s == round(s) for s in shift):
        return torch.roll(x, [int(round(s)) for s in shift], list(dims))
    spectrum = torch.fft.fftn(x.to(_complex(x)), dim=list(dims))
    for s, dim in zip(shift, dims):
        if s == 0:
            continue
        n = x.shape[dim]
        omega = _frequencies(n, like=x)
        phase = torch.exp(-1j * omega * s)
        if n % 2 == 0:
            phase[n // 2] = math.cos(math.pi * s)  # the real Nyquist bin (see the module docstring)
        spectrum = spectrum * _axis_view(phase.to(spectrum.dtype), dim % x.dim(), x.dim())
    return torch.fft.ifftn(spectrum, dim=list(dims)).real.to(x.dtype)


def spectral_derivative(x: "Tensor", dim: int) -> "Tensor":
    """Return ``∂x/∂u`` along ``dim`` per sample, exact for band-limited periodic signals."""
    import torch

    n = x.shape[dim]
    omega = _frequencies(n, like=x)
    if n % 2 == 0:
        omega[n // 2] = 0.0
    spectrum = torch.fft.fft(x.to(_complex(x)), dim=dim)
    spectrum = spectrum * _axis_view((1j * omega).to(spectrum.dtype), dim % x.dim(), x.dim())
    return torch.fft.ifft(spectrum, dim=dim).real.to(x.dtype)


def _complex(x: "Tensor") -> "torch.dtype":
    import torch

    return torch.complex128 if x.dtype == torch.float64 else torch.complex64


def resample_fourier(x: "Tensor", size: Sequence[int], dims: Sequence[int]) -> "Tensor":
    """Return ``x`` resampled to ``size`` samples along ``dims`` by zero-padding or cropping its spectrum.

    Exact for band-limited periodic signals in both directions (a round trip up and down returns the
    input); downsampling discards the frequencies the coarser grid cannot hold. An even-sized axis's
    Nyquist bin is split evenly between ``±N/2`` when upsampling and folded back when downsampling.
    """
    import torch

    out = x.to(_real(x))
    for dim, m in zip(dims, size):
        n = out.shape[dim]
        if m == n:
            continue
        spectrum = torch.fft.fft(out, dim=dim)
        keep = min(n, m)
        low = (keep + 1) // 2  # non-negative frequencies 0 .. low-1
        high = keep // 2  # negative frequencies -high .. -1
        pos = spectrum.narrow(dim, 0, low)
        neg = spectrum.narrow(dim, n - high, high) if high else spectrum.narrow(dim, 0, 0)
        shape = list(spectrum.shape)
        shape[dim] = m
        new = spectrum.new_zeros(shape)
        new.narrow(dim, 0, low).copy_(pos)
        if high:
            new.narrow(dim, m - high, high).copy_(neg)
        if keep % 2 == 0 and keep == n and m > n:  # upsampling an even axis: split its Nyquist bin
            nyquist = spectrum.narrow(dim, n // 2, 1) / 2
            new.narrow(dim, m - n // 2, 1).copy_(nyquist)
            new.narrow(dim, n // 2, 1).copy_(nyquist)
        elif keep % 2 == 0 and keep == m and m < n:  # downsampling to an even axis: fold ±m/2 together
            folded = spectrum.narrow(dim, m // 2, 1) + spectrum.narrow(dim, n - m // 2, 1)
            new.narrow(dim, m - m // 2, 1).copy_(folded)
        out = torch.fft.ifft(new, dim=dim).real * (m / n)
    return out.to(x.dtype)


def resample_trailing(x: "Tensor", size: Sequence[int]) -> "Tensor":
    """Resample the last ``len(size)`` dims of ``x`` to ``size`` by zero-padding or cropping its real spectrum.

    One ``rfftn`` and one ``irfftn``: the fast form of :func:`resample_fourier` for a plane or a
    volume (an even axis's Nyquist bin is kept on one side, which band-limited inputs leave near
    zero). The band-limited rotations of :mod:`.groups` and :mod:`.volume_groups` oversample with it.
    """
    import itertools

    import torch

    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    k = len(size)
    old = tuple(work.shape[-k:])
    axes = tuple(range(-k, 0))
    spectrum = torch.fft.rfftn(work, dim=axes)
    out = spectrum.new_zeros((*spectrum.shape[:-k], *size[:-1], size[-1] // 2 + 1))
    parts: list[list[tuple[slice, slice]]] = []
    for n, big in zip(old[:-1], size[:-1]):
        rows = min(n, big)
        low, high = (rows + 1) // 2, rows // 2
        parts.append([(slice(0, low), slice(0, low))] + ([(slice(n - high, n), slice(big - high, big))] if high else []))
    cols = min(old[-1], size[-1]) // 2 + 1
    parts.append([(slice(0, cols), slice(0, cols))])
    for pieces in itertools.product(*parts):
        out[(..., *(dst for _, dst in pieces))] = spectrum[(..., *(src for src, _ in pieces))]
    scale = math.prod(size) / math.prod(old)
    return (torch.fft.irfftn(out, s=tuple(size), dim=axes) * scale).to(x.dtype)
