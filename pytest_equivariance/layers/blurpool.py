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

from pytest_equivariance.errors import EquivarianceUsageError, shown
from pytest_equivariance.layers.filters import (
    _blur_pool,
    _box_then_blur,
    _ceil_mode_padding,
    _ntuple,
    binomial_filter,
    check_blur_arguments,
)

__all__ = [
    "AntialiasedConv1d",
    "AntialiasedConv2d",
    "AntialiasedConv3d",
    "BlurAvgPool1d",
    "BlurAvgPool2d",
    "BlurAvgPool3d",
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
    """Blur with a binomial filter, then subsample by ``stride``: ``(N, C, H, W) -> ceil(. / stride)``.

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


# A leaf for fx: the padding depends on the input's size, not on its values.
torch.fx.wrap("_ceil_mode_padding")


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
        ceil_mode: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.padding = padding
        self.dilation = dilation
        self.ceil_mode = ceil_mode
        self.blur = _BLUR_POOLS[self._ndim](stride, filter_size, padding_mode, device=device, dtype=dtype)

    @property
    def stride(self) -> int | tuple[int, ...]:
        return self.blur.stride

    def reset_parameters(self) -> None:
        """Fill the blur filter (call again after ``to_empty``)."""
        self.blur.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        max_pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[self._ndim - 1]
        if self.ceil_mode:
            n = self._ndim
            extra = _ceil_mode_padding(
                x, _ntuple(self.kernel_size, n), _ntuple(self.stride, n), _ntuple(self.padding, n),
                _ntuple(self.dilation, n),
            )  # fmt: skip
            x = F.pad(x, extra, value=float("-inf"))
        x = max_pool(x, self.kernel_size, 1, self.padding, self.dilation)
        return self.blur(x)

    def extra_repr(self) -> str:
        extra = ""
        if self.padding not in (0, (0,) * self._ndim):
            extra += f", padding={self.padding}"
        if self.dilation not in (1, (1,) * self._ndim):
            extra += f", dilation={self.dilation}"
        if self.ceil_mode:
            extra += ", ceil_mode=True"
        blur = self.blur
        return (
            f"kernel_size={self.kernel_size}, stride={blur.stride}, filter_size={blur.filter_size}, "
            f"padding_mode={blur.padding_mode!r}{extra}"
        )


class MaxBlurPool1d(_MaxBlurPoolNd):
    """Max pool with stride 1, then :class:`BlurPool1d` by ``stride`` (Zhang 2019's MaxBlurPool).

    Same output size as ``MaxPool1d(kernel_size, stride, padding, dilation, ceil_mode)``.
    """

    _ndim = 1


class MaxBlurPool2d(_MaxBlurPoolNd):
    """Max pool with stride 1, then :class:`BlurPool2d` by ``stride`` (Zhang 2019's MaxBlurPool).

    The dense max keeps max pooling's local invariance; the blur removes the aliasing of its stride.
    Same output size as ``MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode)``, so it
    drops in.

    >>> MaxBlurPool2d(kernel_size=3, stride=2, padding=1)(torch.ones(1, 8, 56, 56)).shape
    torch.Size([1, 8, 28, 28])
    """

    _ndim = 2


class MaxBlurPool3d(_MaxBlurPoolNd):
    """Max pool with stride 1, then :class:`BlurPool3d` by ``stride`` (Zhang 2019's MaxBlurPool)."""

    _ndim = 3


class _BlurAvgPoolNd(nn.Module):
    _ndim: ClassVar[int] = 0

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        *,
        filter_size: int = 3,
        padding_mode: str = "reflect",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if divisor_override is not None and self._ndim == 1:
            raise EquivarianceUsageError(
                "BlurAvgPool1d has no divisor_override (nn.AvgPool1d has none either); leave it None."
            )
        self.kernel_size = kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override
        stride = kernel_size if stride is None or stride == [] else stride
        self.blur = _BLUR_POOLS[self._ndim](stride, filter_size, padding_mode, device=device, dtype=dtype)

    @property
    def stride(self) -> int | tuple[int, ...]:
        return self.blur.stride

    def reset_parameters(self) -> None:
        """Fill the blur filter (call again after ``to_empty``)."""
        self.blur.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self._ndim
        if self.ceil_mode:
            extra = _ceil_mode_padding(x, _ntuple(self.kernel_size, n), _ntuple(self.stride, n),
                                       _ntuple(self.padding, n), (1,) * n)
            x = F.pad(x, extra, mode="replicate")
        return _box_then_blur(x, n, self.kernel_size, self.padding, self.count_include_pad, self.divisor_override,
                              self.blur)

    def extra_repr(self) -> str:
        blur = self.blur
        extra = f", padding={self.padding}" if self.padding not in (0, (0,) * self._ndim) else ""
        extra += ", ceil_mode=True" if self.ceil_mode else ""
        extra += ", count_include_pad=False" if not self.count_include_pad else ""
        extra += f", divisor_override={self.divisor_override}" if self.divisor_override is not None else ""
        return (f"kernel_size={self.kernel_size}, stride={blur.stride}{extra}, filter_size={blur.filter_size}, "
                f"padding_mode={blur.padding_mode!r}")


class BlurAvgPool1d(_BlurAvgPoolNd):
    """Average pool at stride 1, then :class:`BlurPool1d`: see :class:`BlurAvgPool2d`."""

    _ndim = 1


class BlurAvgPool2d(_BlurAvgPoolNd):
    """An anti-aliased ``nn.AvgPool2d``: the same arguments and output size, a binomial low-pass before subsampling.

    The box filter runs at stride 1 (so the smoothing and the output size are the pool's, for odd
    sizes, ``padding``, ``ceil_mode`` and ``count_include_pad`` too), then a :class:`BlurPool2d` with
    the pool's stride removes what the box's side lobes would alias: box(2) followed by binomial(3)
    is binomial(4). No parameters and a non-persistent filter, so checkpoints load unchanged.
    With ``ceil_mode=True`` the extra partial window averages replicated edge values.

    >>> BlurAvgPool2d(2)(torch.ones(1, 3, 7, 7)).shape   # as nn.AvgPool2d(2)
    torch.Size([1, 3, 3, 3])
    """

    _ndim = 2


class BlurAvgPool3d(_BlurAvgPoolNd):
    """Average pool at stride 1, then :class:`BlurPool3d`: see :class:`BlurAvgPool2d`."""

    _ndim = 3


_BLUR_POSITIONS = ("before", "after")
_CONVS: dict[int, type] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class _AntialiasedConvNd(nn.Module):
    """A convolution with a binomial blur before it (``blur_position="before"``: blur with stride 1,
    then the conv with its stride) or after it (``"after"``: the conv with stride 1, then BlurPool
    with the conv's stride: Zhang's ConvBlurPool without the activation in between).

    It carries the conv's own attributes and parameters (``weight``, ``bias``, ``stride``, ...) on
    itself and runs ``nn.ConvNd``'s convolution, so parameter names are the conv's
    (``layer2.0.conv1.weight``) and the blur's filter is not saved: state dicts of the original
    architecture load with ``strict=True``. It is deliberately *not* an ``nn.ConvNd`` subclass: tools
    (the linter among them) read a ``ConvNd``'s ``stride`` as the stride of its input, which the
    blur has already low-passed.
    """

    _ndim: ClassVar[int] = 0
    blur: _BlurPoolNd
    blur_position: str
    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        *args: Any,
        filter_size: int = 3,
        blur_position: str = "before",
        blur_padding_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        conv = _CONVS[self._ndim](*args, **kwargs)
        self._adopt(conv, filter_size, blur_position, blur_padding_mode)

    @classmethod
    def from_conv(
        cls,
        conv: nn.Module,
        filter_size: int = 3,
        blur_position: str = "before",
        blur_padding_mode: str | None = None,
    ) -> "_AntialiasedConvNd":
        """Return an anti-aliased twin of ``conv`` holding the very same ``Parameter`` objects."""
        twin = cls.__new__(cls)
        twin._adopt(conv, filter_size, blur_position, blur_padding_mode)
        return twin

    def _adopt(
        self, conv: nn.Module, filter_size: int, blur_position: str, padding_mode: str | None
    ) -> None:
        if blur_position not in _BLUR_POSITIONS:
            raise EquivarianceUsageError(
                f"Unsupported blur_position {shown(blur_position)}; use 'before' (blur, then the strided "
                f"conv) or 'after' (conv with stride 1, then blur with its stride)."
            )
        if padding_mode is None:
            padding_mode = "circular" if getattr(conv, "padding_mode", "") == "circular" else "reflect"
        check_blur_arguments(filter_size, padding_mode)
        # Take over the conv's instance state; copy its registries (parameters, buffers, hooks) so
        # that adding the blur child leaves ``conv`` itself untouched.
        self.__dict__.update(
            {k: (v.copy() if isinstance(v, (dict, set)) else v) for k, v in conv.__dict__.items()}
        )
        stride = tuple(self.stride)
        if blur_position == "after":
            self.stride = (1,) * self._ndim
            blur_stride: int | tuple[int, ...] = stride if len(set(stride)) > 1 else stride[0]
        else:
            blur_stride = 1
        self.blur_position = blur_position
        self.blur = _BLUR_POOLS[self._ndim](
            blur_stride, filter_size, padding_mode, device=self.weight.device, dtype=self.weight.dtype
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur_position == "before":
            return self._conv_forward(self.blur(x), self.weight, self.bias)
        return self.blur(self._conv_forward(x, self.weight, self.bias))

    # nn.ConvNd's own machinery, reused so that every conv option (padding modes, groups, ...) works.
    _conv_forward: Any
    _reset_conv_parameters = nn.modules.conv._ConvNd.reset_parameters
    extra_repr = nn.modules.conv._ConvNd.extra_repr

    def reset_parameters(self) -> None:
        """Re-initialise the conv's weights as ``nn.ConvNd`` does and fill the blur filter."""
        self._reset_conv_parameters()
        self.blur.reset_parameters()


class AntialiasedConv1d(_AntialiasedConvNd):
    """A strided 1-d convolution that does not alias: see :class:`AntialiasedConv2d`."""

    _ndim = 1
    _conv_forward = nn.Conv1d._conv_forward


class AntialiasedConv2d(_AntialiasedConvNd):
    """A strided 2-d convolution that does not alias: a binomial blur, then ``nn.Conv2d``.

    Takes ``nn.Conv2d``'s arguments plus ``filter_size=3``, ``blur_position="before"`` (blur with
    stride 1, then the strided conv: cheap, the conv still runs at the output resolution) or
    ``"after"`` (conv with stride 1, then BlurPool with the conv's stride: ``stride**2`` times the
    conv's FLOPs), and ``blur_padding_mode`` (None: circular for a circular conv, else reflect).
    Its parameters are named and shaped as ``nn.Conv2d``'s; the blur filter is a non-persistent
    buffer. Build one from an existing conv, sharing its parameters, with :meth:`from_conv`.

    >>> AntialiasedConv2d(3, 8, 3, stride=2, padding=1)(torch.ones(1, 3, 32, 32)).shape
    torch.Size([1, 8, 16, 16])
    """

    _ndim = 2
    _conv_forward = nn.Conv2d._conv_forward


class AntialiasedConv3d(_AntialiasedConvNd):
    """A strided 3-d convolution that does not alias: see :class:`AntialiasedConv2d`."""

    _ndim = 3
    _conv_forward = nn.Conv3d._conv_forward


_ANTIALIASED_CONVS: dict[type, type[_AntialiasedConvNd]] = {
    nn.Conv1d: AntialiasedConv1d,
    nn.Conv2d: AntialiasedConv2d,
    nn.Conv3d: AntialiasedConv3d,
}


def antialiased_conv(
    conv: nn.Module,
    filter_size: int = 3,
    blur_position: str = "before",
    padding_mode: str | None = None,
) -> nn.Module:
    """Return an anti-aliased twin of ``conv`` (an ``AntialiasedConvNd``) that shares its parameters.

    ``conv`` itself is left unchanged. Parameter names and values are the same, so
    ``twin.load_state_dict(conv.state_dict(), strict=True)`` works. Only ``nn.Conv1d/2d/3d`` and
    subclasses that keep their ``forward`` are accepted: a custom forward (weight standardisation,
    dynamic "same" padding) would be lost.
    """
    base = next((c for c in _ANTIALIASED_CONVS if isinstance(conv, c)), None)
    if base is None or type(conv).forward is not base.forward:
        raise EquivarianceUsageError(
            f"antialiased_conv expects an nn.Conv1d/2d/3d but got {type(conv).__name__}, which "
            f"{'overrides forward' if base else 'is not one'}; wrap it by hand as "
            f"nn.Sequential(BlurPool2d(stride=1), conv)."
        )
    return _ANTIALIASED_CONVS[base].from_conv(conv, filter_size, blur_position, padding_mode)
