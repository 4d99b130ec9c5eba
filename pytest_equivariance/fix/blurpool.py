"""Anti-aliased downsampling layers: BlurPool, MaxBlurPool and blurred strided convolutions.

Implements Zhang, "Making Convolutional Networks Shift-Invariant Again" (ICML 2019): a strided op
``op(stride=s)`` is split into its dense form ``op(stride=1)`` and a :class:`BlurPool2d` (a fixed
binomial low-pass filter followed by subsampling by ``s``), so that the subsampling no longer aliases.

Every layer is channel-agnostic (the filter is applied depthwise, expanded to the input's channel
count at call time) and keeps its filter in a *non-persistent* buffer built in ``reset_parameters``:
state dicts are the same as without the blur, and the layers can be built on the ``meta`` device
(after ``model.to_empty(device=...)`` call ``reset_parameters()`` to fill the filter again).

Shapes: along a spatial dim of size ``n``, ``BlurPool(stride=s)`` returns ``ceil(n / s)`` samples;
``MaxBlurPool(kernel_size=k, stride=s, padding=p, dilation=d)`` and ``AntialiasedConv`` return the
same sizes as the strided op they replace (``floor((n + 2p - d(k-1) - 1) / s) + 1``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.fix.filters import _blur_pool, binomial_filter, check_blur_arguments

__all__ = [
    "AntialiasedConv1d",
    "AntialiasedConv2d",
    "AntialiasedConv3d",
    "BlurPool1d",
    "BlurPool2d",
    "BlurPool3d",
    "MaxBlurPool1d",
    "MaxBlurPool2d",
    "MaxBlurPool3d",
    "antialiased_conv",
]


class _BlurPoolNd(nn.Module):
    _ndim: ClassVar[int] = 0
    filter: torch.Tensor

    def __init__(
        self,
        stride: int | tuple[int, ...] = 2,
        filter_size: int = 3,
        padding_mode: str = "reflect",
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_blur_arguments(filter_size, padding_mode, stride)
        self.stride = tuple(stride) if isinstance(stride, (tuple, list)) else stride
        self.filter_size = filter_size
        self.padding_mode = padding_mode
        shape = (filter_size,) * self._ndim
        # Non-persistent: checkpoints of the un-blurred architecture load unchanged.
        self.register_buffer("filter", torch.empty(shape, device=device, dtype=dtype), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fill the filter buffer with the binomial filter (call again after ``to_empty``)."""
        with torch.no_grad():
            self.filter.copy_(binomial_filter(self.filter_size, self._ndim, dtype=self.filter.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _blur_pool(x, self._ndim, self.stride, self.filter_size, self.padding_mode, self.filter)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, filter_size={self.filter_size}, padding_mode={self.padding_mode!r}"


class BlurPool1d(_BlurPoolNd):
    """Blur with a binomial filter, then subsample by ``stride``: ``(N, C, L) -> (N, C, ceil(L/stride))``.

    Zhang 2019's BlurPool for sequences. ``filter_size`` 1..7 (1 = no blur), ``padding_mode`` one of
    ``"reflect"`` (Zhang's default), ``"replicate"``, ``"zeros"``, ``"circular"`` (exactly
    equivariant to circular shifts on the stride lattice).

    >>> BlurPool1d(stride=2)(torch.ones(1, 4, 9)).shape
    torch.Size([1, 4, 5])
    """

    _ndim = 1


class BlurPool2d(_BlurPoolNd):
    """Blur with a binomial filter, then subsample by ``stride``: ``(N, C, H, W) -> (N, C, ceil(H/s), ceil(W/s))``.

    Zhang 2019's BlurPool (``Downsample`` in antialiased-cnns, ``BlurPool2d`` in timm,
    ``BlurPool2D`` in kornia), channel-agnostic. Replaces ``AvgPool2d(s)`` and follows a stride-1
    max pool or conv in place of their stride.

    >>> BlurPool2d(stride=2, filter_size=5)(torch.ones(1, 3, 8, 8)).shape
    torch.Size([1, 3, 4, 4])
    """

    _ndim = 2


class BlurPool3d(_BlurPoolNd):
    """Blur with a binomial filter, then subsample by ``stride``: ``(N, C, D, H, W) -> ceil(. / stride)``.

    Zhang 2019's BlurPool for volumes and video.
    """

    _ndim = 3


_BLUR_POOLS: dict[int, type[_BlurPoolNd]] = {1: BlurPool1d, 2: BlurPool2d, 3: BlurPool3d}


class _MaxBlurPoolNd(nn.Module):
    _ndim: ClassVar[int] = 0

    def __init__(
        self,
        kernel_size: int | tuple[int, ...] = 2,
        stride: int | tuple[int, ...] = 2,
        filter_size: int = 3,
        padding_mode: str = "reflect",
        *,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.padding = padding
        self.dilation = dilation
        self.blur = _BLUR_POOLS[self._ndim](stride, filter_size, padding_mode, device=device, dtype=dtype)

    @property
    def stride(self) -> int | tuple[int, ...]:
        return self.blur.stride

    def reset_parameters(self) -> None:
        """Fill the blur filter (call again after ``to_empty``)."""
        self.blur.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        max_pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[self._ndim - 1]
        x = max_pool(x, self.kernel_size, 1, self.padding, self.dilation)
        return self.blur(x)

    def extra_repr(self) -> str:
        extra = ""
        if self.padding not in (0, (0,) * self._ndim):
            extra += f", padding={self.padding}"
        if self.dilation not in (1, (1,) * self._ndim):
            extra += f", dilation={self.dilation}"
        blur = self.blur
        return (
            f"kernel_size={self.kernel_size}, stride={blur.stride}, filter_size={blur.filter_size}, "
            f"padding_mode={blur.padding_mode!r}{extra}"
        )


class MaxBlurPool1d(_MaxBlurPoolNd):
    """Max pool with stride 1, then :class:`BlurPool1d` by ``stride`` (Zhang 2019's MaxBlurPool).

    Same output size as ``MaxPool1d(kernel_size, stride, padding, dilation)``.
    """

    _ndim = 1


class MaxBlurPool2d(_MaxBlurPoolNd):
    """Max pool with stride 1, then :class:`BlurPool2d` by ``stride`` (Zhang 2019's MaxBlurPool).

    The dense max keeps max pooling's local invariance; the blur removes the aliasing of its stride.
    Same output size as ``MaxPool2d(kernel_size, stride, padding, dilation)``, so it drops in.

    >>> MaxBlurPool2d(kernel_size=3, stride=2, padding=1)(torch.ones(1, 8, 56, 56)).shape
    torch.Size([1, 8, 28, 28])
    """

    _ndim = 2


class MaxBlurPool3d(_MaxBlurPoolNd):
    """Max pool with stride 1, then :class:`BlurPool3d` by ``stride`` (Zhang 2019's MaxBlurPool)."""

    _ndim = 3


_BLUR_POSITIONS = ("before", "after")


class _AntialiasedConv:
    """Mixin for a ``ConvNd`` subclass with a child ``blur``: a :class:`BlurPool2d` applied before
    the conv (``blur_position="before"``, blur stride 1, conv keeps its stride) or after it
    (``"after"``, conv stride 1, blur with the conv's stride: Zhang's ConvBlurPool without the
    activation in between).

    The conv's own parameters stay on the module itself, so ``weight`` and ``bias`` keep their
    names (``layer2.0.conv1.weight``), and the blur's filter is not saved: state dicts of the
    original architecture load with ``strict=True``.
    """

    blur: _BlurPoolNd
    blur_position: str

    def _attach_blur(self, filter_size: int, blur_position: str, padding_mode: str | None) -> None:
        if blur_position not in _BLUR_POSITIONS:
            raise EquivarianceUsageError(
                f"Unsupported blur_position {blur_position!r}; use 'before' (blur, then the strided "
                f"conv) or 'after' (conv with stride 1, then blur with its stride)."
            )
        conv: Any = self
        ndim = len(conv.kernel_size)
        if padding_mode is None:
            padding_mode = "circular" if conv.padding_mode == "circular" else "reflect"
        stride = tuple(conv.stride)
        if blur_position == "after":
            conv.stride = (1,) * ndim
            blur_stride: int | tuple[int, ...] = stride if len(set(stride)) > 1 else stride[0]
        else:
            blur_stride = 1
        self.blur_position = blur_position
        weight = conv.weight
        conv.blur = _BLUR_POOLS[ndim](
            blur_stride, filter_size, padding_mode, device=weight.device, dtype=weight.dtype
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.blur_position == "before":
            return super().forward(self.blur(input))  # type: ignore[misc]
        return self.blur(super().forward(input))  # type: ignore[misc]

    def reset_parameters(self) -> None:
        super().reset_parameters()  # type: ignore[misc]
        blur = self.__dict__.get("_modules", {}).get("blur")
        if blur is not None:
            blur.reset_parameters()


def _conv_init(self: Any, args: tuple, kwargs: dict) -> None:
    filter_size = kwargs.pop("filter_size", 3)
    blur_position = kwargs.pop("blur_position", "before")
    blur_padding_mode = kwargs.pop("blur_padding_mode", None)
    super(_AntialiasedConv, self).__init__(*args, **kwargs)
    self._attach_blur(filter_size, blur_position, blur_padding_mode)


class AntialiasedConv1d(_AntialiasedConv, nn.Conv1d):
    """``nn.Conv1d`` that blurs its input first (or its output, then subsamples): see :class:`AntialiasedConv2d`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _conv_init(self, args, kwargs)


class AntialiasedConv2d(_AntialiasedConv, nn.Conv2d):
    """``nn.Conv2d`` with a binomial blur, so that its stride no longer aliases.

    Takes ``nn.Conv2d``'s arguments plus ``filter_size=3``, ``blur_position="before"`` (blur with
    stride 1, then the strided conv: cheap, the conv runs at the output resolution) or ``"after"``
    (conv with stride 1, then BlurPool with the conv's stride), and ``blur_padding_mode`` (None:
    circular for a circular conv, else reflect). It is still an ``nn.Conv2d`` with the same
    parameter names; the blur filter is a non-persistent buffer.

    >>> AntialiasedConv2d(3, 8, 3, stride=2, padding=1)(torch.ones(1, 3, 32, 32)).shape
    torch.Size([1, 8, 16, 16])
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _conv_init(self, args, kwargs)


class AntialiasedConv3d(_AntialiasedConv, nn.Conv3d):
    """``nn.Conv3d`` that blurs its input first (or its output, then subsamples): see :class:`AntialiasedConv2d`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _conv_init(self, args, kwargs)


_ANTIALIASED_CONVS: dict[type, type] = {
    nn.Conv1d: AntialiasedConv1d,
    nn.Conv2d: AntialiasedConv2d,
    nn.Conv3d: AntialiasedConv3d,
}


def _antialiased_class(conv_class: type) -> type:
    cls = _ANTIALIASED_CONVS.get(conv_class)
    if cls is None:
        # A conv subclass (e.g. weight-standardised or "same"-padded convs): keep its forward by
        # putting the blur mixin in front of it in the MRO.
        cls = type(f"Antialiased{conv_class.__name__}", (_AntialiasedConv, conv_class), {})
        _ANTIALIASED_CONVS[conv_class] = cls
    return cls


def antialiased_conv(
    conv: nn.Module,
    filter_size: int = 3,
    blur_position: str = "before",
    padding_mode: str | None = None,
) -> nn.Module:
    """Return an anti-aliased twin of ``conv`` that shares its parameters, buffers and attributes.

    The twin is an instance of a subclass of ``type(conv)`` (``AntialiasedConv2d`` for
    ``nn.Conv2d``) with a ``blur`` child; ``conv`` itself is left unchanged. Parameter names and
    values are the same, so ``twin.load_state_dict(conv.state_dict(), strict=True)`` works.
    """
    if not isinstance(conv, nn.modules.conv._ConvNd) or conv.transposed:
        raise EquivarianceUsageError(
            f"antialiased_conv expects a Conv1d/2d/3d but got {type(conv).__name__}; "
            f"pass a (non-transposed) convolution module."
        )
    check_blur_arguments(filter_size, padding_mode or "reflect")
    cls = _antialiased_class(type(conv))
    twin = cls.__new__(cls)
    # Copy the instance dict and its containers (parameters, buffers, children, hooks): the twin
    # owns its own registries but holds the very same Parameter objects.
    twin.__dict__.update(
        {k: (v.copy() if isinstance(v, (dict, set)) else v) for k, v in conv.__dict__.items()}
    )
    twin._attach_blur(filter_size, blur_position, padding_mode)
    return twin
