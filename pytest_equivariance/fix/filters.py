"""Binomial low-pass filters and blur pooling as pure functions.

Blur pooling (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019) low-pass
filters a feature map with a small binomial kernel before subsampling it, so that frequencies the
coarser grid cannot represent are attenuated instead of folding back (aliasing) into the output.
A binomial filter of size ``k >= 2`` has a zero at the Nyquist frequency and unit gain at DC.

The modules in :mod:`pytest_equivariance.fix.blurpool` are thin wrappers over these functions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    import torch

#: Supported binomial filter sizes (1 = no blur: plain subsampling, for ablations).
FILTER_SIZES = range(1, 8)
#: Supported padding modes, named as in ``nn.Conv2d(padding_mode=...)``.
PADDING_MODES = ("reflect", "replicate", "zeros", "circular")
# padding_mode -> F.pad mode
_PAD_MODE = {"reflect": "reflect", "replicate": "replicate", "zeros": "constant", "circular": "circular"}


def check_blur_arguments(filter_size: int, padding_mode: str, stride: object = 1) -> None:
    """Raise :class:`EquivarianceUsageError` unless the blur arguments are supported."""
    if not isinstance(filter_size, int) or filter_size not in FILTER_SIZES:
        raise EquivarianceUsageError(
            f"Unsupported blur filter_size {filter_size!r}; use an integer from 1 to 7 "
            f"(3 is Zhang 2019's default, 5 blurs more)."
        )
    if padding_mode not in PADDING_MODES:
        modes = ", ".join(repr(m) for m in PADDING_MODES)
        raise EquivarianceUsageError(
            f"Unsupported blur padding_mode {padding_mode!r}; use one of {modes}."
        )
    strides = stride if isinstance(stride, (tuple, list)) else (stride,)
    if not strides or any(not isinstance(s, int) or s < 1 for s in strides):
        raise EquivarianceUsageError(
            f"Unsupported blur stride {stride!r}; use a positive integer (or one per spatial dim)."
        )


def binomial_coefficients(size: int) -> list[float]:
    """Return the normalised binomial coefficients ``C(size-1, k) / 2**(size-1)`` (they sum to 1).

    Size 3 gives ``[1, 2, 1] / 4``, size 5 ``[1, 4, 6, 4, 1] / 16``: the taps of ``(1 + z^-1)^(size-1)``,
    whose frequency response ``cos(w/2)^(size-1)`` is 1 at DC and 0 at Nyquist for ``size >= 2``.
    """
    check_blur_arguments(size, "reflect")
    scale = 2.0 ** (size - 1)
    return [math.comb(size - 1, k) / scale for k in range(size)]


def binomial_filter(
    size: int,
    ndim: int,
    *,
    dtype: "torch.dtype | None" = None,
    device: "torch.device | str | None" = None,
) -> "torch.Tensor":
    """Return the separable ``ndim``-d binomial filter of shape ``(size,) * ndim``, summing to 1.

    The outer product of :func:`binomial_coefficients` along each of the ``ndim`` spatial dims.
    """
    import torch

    if ndim not in (1, 2, 3):
        raise EquivarianceUsageError(f"Unsupported number of spatial dims {ndim!r}; use 1, 2 or 3.")
    taps = torch.tensor(binomial_coefficients(size), dtype=torch.float64)
    out = taps
    for _ in range(ndim - 1):
        out = out.unsqueeze(-1) * taps
    return out.to(dtype=dtype or torch.get_default_dtype(), device=device)


def blur_padding(filter_size: int, ndim: int) -> list[int]:
    """Return the ``F.pad`` amounts (last dim first) that keep a stride-1 blur's output size.

    Odd sizes pad symmetrically; even sizes put the extra sample on the right, as antialiased-cnns
    does. With stride ``s`` the output then has ``ceil(n / s)`` samples along a dim of size ``n``.
    """
    left = (filter_size - 1) // 2
    right = filter_size - 1 - left
    return [left, right] * ndim


def _blur_pool(
    x: "torch.Tensor",
    ndim: int,
    stride: int | Sequence[int],
    filter_size: int,
    padding_mode: str,
    kernel: "torch.Tensor | None" = None,
) -> "torch.Tensor":
    """Return ``x`` blurred depthwise with ``kernel`` (the binomial filter when None), then subsampled.

    ``"reflect"`` padding falls back to ``"replicate"`` on maps too small to reflect.
    """
    import torch
    import torch.nn.functional as F

    if kernel is None:
        check_blur_arguments(filter_size, padding_mode, stride)
        kernel = binomial_filter(filter_size, ndim, dtype=x.dtype, device=x.device)
    # fx proxies are not tensors: the check runs eagerly and is skipped (not traced) by fx.
    if isinstance(x, torch.Tensor) and x.dim() != ndim + 2:
        raise EquivarianceUsageError(
            f"blur_pool{ndim}d expects a (batch, channels, {ndim} spatial dims) tensor but got "
            f"{x.dim()} dims of shape {tuple(x.shape)}; add the missing batch or channel dim."
        )
    if filter_size > 1:
        pad = blur_padding(filter_size, ndim)
        mode = _PAD_MODE[padding_mode]
        # Reflection needs more samples than the pad; tiny maps (1x1 at the end of a deep net)
        # fall back to replicate instead of failing.
        if mode == "reflect" and isinstance(x, torch.Tensor) and min(x.shape[2:]) <= max(pad):
            mode = "replicate"
        x = F.pad(x, pad, mode=mode)
    channels = x.shape[1]
    # Depthwise: one copy of the filter per channel, made at call time so the layer need not know
    # its channel count. Materialised (C * k**ndim numbers): CPU kernels are ~100x slower on an
    # expanded, stride-0 weight.
    weight = kernel.to(dtype=x.dtype).expand(channels, 1, *kernel.shape).contiguous()
    conv = (F.conv1d, F.conv2d, F.conv3d)[ndim - 1]
    return conv(x, weight, stride=stride, groups=channels)


def blur_pool1d(
    x: "torch.Tensor", stride: int = 2, filter_size: int = 3, padding_mode: str = "reflect"
) -> "torch.Tensor":
    """Return ``x`` of shape ``(N, C, L)`` blurred with a binomial filter and subsampled by ``stride``.

    Output shape ``(N, C, ceil(L / stride))``. See :class:`~pytest_equivariance.fix.blurpool.BlurPool1d`.
    """
    return _blur_pool(x, 1, stride, filter_size, padding_mode)


def blur_pool2d(
    x: "torch.Tensor",
    stride: int | tuple[int, int] = 2,
    filter_size: int = 3,
    padding_mode: str = "reflect",
) -> "torch.Tensor":
    """Return ``x`` of shape ``(N, C, H, W)`` blurred with a binomial filter and subsampled by ``stride``.

    Output shape ``(N, C, ceil(H / stride), ceil(W / stride))`` (Zhang 2019's BlurPool).
    """
    return _blur_pool(x, 2, stride, filter_size, padding_mode)


def blur_pool3d(
    x: "torch.Tensor",
    stride: int | tuple[int, int, int] = 2,
    filter_size: int = 3,
    padding_mode: str = "reflect",
) -> "torch.Tensor":
    """Return ``x`` of shape ``(N, C, D, H, W)`` blurred with a binomial filter and subsampled by ``stride``.

    Output shape ``(N, C, ceil(D / stride), ceil(H / stride), ceil(W / stride))``.
    """
    return _blur_pool(x, 3, stride, filter_size, padding_mode)
