"""Binomial low-pass filters and blur pooling as pure functions.

Blur pooling (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019) low-pass
filters a feature map with a small binomial kernel before subsampling it, so that frequencies the
coarser grid cannot represent are attenuated instead of folding back (aliasing) into the output.
A binomial filter of size ``k >= 2`` has a zero at the Nyquist frequency and unit gain at DC.

The modules in :mod:`pytest_equivariance.layers.blurpool` are thin wrappers over these functions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

from pytest_equivariance.errors import EquivarianceUsageError, shown

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
            f"Unsupported blur filter_size {shown(filter_size)}; use an integer from 1 to 7 "
            f"(3 is Zhang 2019's default, 5 blurs more)."
        )
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        modes = ", ".join(repr(m) for m in PADDING_MODES)
        raise EquivarianceUsageError(
            f"Unsupported blur padding_mode {shown(padding_mode)}; use one of {modes}."
        )
    strides = stride if isinstance(stride, (tuple, list)) else (stride,)
    if not strides or any(not isinstance(s, int) or s < 1 for s in strides):
        raise EquivarianceUsageError(
            f"Unsupported blur stride {shown(stride)}; use a positive integer (or one per spatial dim)."
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
        raise EquivarianceUsageError(f"Unsupported number of spatial dims {shown(ndim)}; use 1, 2 or 3.")
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


def periodic_pad(x: "torch.Tensor", amounts: Sequence[int]) -> "torch.Tensor":
    """Pad ``x`` periodically by ``amounts`` (``F.pad`` order: last dim first, left then right).

    Unlike ``F.pad(mode="circular")`` this wraps around as often as needed, so a 7x7 convolution
    still pads a 2x2 map (deep layers of small test images).
    """
    import torch

    # Indexing rather than F.pad: profiles patch F.pad with this very function.
    for i in range(len(amounts) // 2):
        left, right = amounts[2 * i], amounts[2 * i + 1]
        if not (left or right):
            continue
        dim = x.dim() - 1 - i
        n = x.shape[dim]
        index = torch.arange(-left, n + right, device=x.device) % n
        x = x.index_select(dim, index)
    return x


def _ntuple(value: int | tuple[int, ...], n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Return the output size of a strided window op (pool or conv) along one dim, as torch computes it."""
    span = int(size) + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= int(size) + p:  # torch: the last window must start inside the input
        out -= 1
    return out


def _ceil_mode_padding(
    x: "torch.Tensor",
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> list[int]:
    """Return the ``F.pad`` amounts (last dim first) that give a stride-1 max pool followed by
    ``BlurPool(stride)`` the output size of a max pool with ``ceil_mode=True``.

    ceil_mode adds a last, partial window when the strided windows do not tile the input; padding
    the input on the right with ``-inf`` adds the same window to the dense max pool.
    """
    pad: list[int] = []
    for size, k, s, p, d in zip(x.shape[2:], kernel_size, stride, padding, dilation):
        span = int(size) + 2 * p - d * (k - 1) - 1
        out = _pool_output_size(size, k, s, p, d, True)
        pad = [0, max(0, (out - 1) * s - span)] + pad
    return pad


def _box_then_blur(
    x: "torch.Tensor",
    ndim: int,
    kernel_size: int | Sequence[int],
    padding: int | Sequence[int],
    count_include_pad: bool,
    divisor_override: int | None,
    blur: Callable[["torch.Tensor"], "torch.Tensor"],
) -> "torch.Tensor":
    """Average pool at stride 1, then ``blur`` (a BlurPool with the pool's stride): the pool's output size.

    The dense box filter has ``m = n + 2p - k + 1`` samples and a BlurPool keeps ``ceil(m / s)`` of
    them, which is ``floor((n + 2p - k) / s) + 1``: the strided pool's size. For ``ceil_mode`` the
    caller first pads the input on the right with :func:`_ceil_mode_padding` (edge values).
    """
    import torch.nn.functional as F

    kernel, pad = _ntuple(kernel_size, ndim), _ntuple(padding, ndim)
    if any(k != 1 for k in kernel) or any(pad):
        kwargs: dict[str, Any] = {"count_include_pad": count_include_pad}
        if ndim > 1:
            kwargs["divisor_override"] = divisor_override
        x = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[ndim - 1](x, kernel, 1, pad, **kwargs)
    return blur(x)


def _blur_avg_pool(
    x: "torch.Tensor",
    ndim: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None,
    padding: int | Sequence[int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
    filter_size: int,
    padding_mode: str,
) -> "torch.Tensor":
    import torch.nn.functional as F

    stride = kernel_size if stride is None or stride == [] else stride
    check_blur_arguments(filter_size, padding_mode, stride)
    if ceil_mode:
        extra = _ceil_mode_padding(x, _ntuple(kernel_size, ndim), _ntuple(stride, ndim), _ntuple(padding, ndim),
                                   (1,) * ndim)
        x = F.pad(x, extra, mode="replicate")
    return _box_then_blur(x, ndim, kernel_size, padding, count_include_pad, divisor_override,
                          lambda y: _blur_pool(y, ndim, stride, filter_size, padding_mode))


def blur_avg_pool1d(
    x: "torch.Tensor",
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    filter_size: int = 3,
    padding_mode: str = "reflect",
) -> "torch.Tensor":
    """Return ``F.avg_pool1d(x, ...)`` anti-aliased: the same arguments and output size. See :func:`blur_avg_pool2d`."""
    return _blur_avg_pool(x, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None,
                          filter_size, padding_mode)


def blur_avg_pool2d(
    x: "torch.Tensor",
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    filter_size: int = 3,
    padding_mode: str = "reflect",
) -> "torch.Tensor":
    """Return ``F.avg_pool2d(x, ...)`` anti-aliased: the same arguments and output size.

    The box filter runs at stride 1 and a binomial BlurPool subsamples by ``stride``; see
    :class:`~pytest_equivariance.layers.blurpool.BlurAvgPool2d`, its module form.
    """
    return _blur_avg_pool(x, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                          filter_size, padding_mode)


def blur_avg_pool3d(
    x: "torch.Tensor",
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    *,
    filter_size: int = 3,
    padding_mode: str = "reflect",
) -> "torch.Tensor":
    """Return ``F.avg_pool3d(x, ...)`` anti-aliased: the same arguments and output size. See :func:`blur_avg_pool2d`."""
    return _blur_avg_pool(x, 3, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                          filter_size, padding_mode)


def blur_pool1d(
    x: "torch.Tensor", stride: int = 2, filter_size: int = 3, padding_mode: str = "reflect"
) -> "torch.Tensor":
    """Return ``x`` of shape ``(N, C, L)`` blurred with a binomial filter and subsampled by ``stride``.

    Output shape ``(N, C, ceil(L / stride))``. See :class:`~pytest_equivariance.layers.blurpool.BlurPool1d`.
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
