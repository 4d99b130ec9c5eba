"""Adaptive polyphase sampling: strided layers that are exactly invariant to circular shifts.

Chaman & Dokmanić, "Truly shift-invariant convolutional neural networks" (CVPR 2021): a strided op
``op(stride=s)`` is a dense op ``op(stride=1)`` followed by keeping one of the ``s**ndim`` polyphase
components of its output (``y[..., i::s, j::s]``), always the component ``(0, 0)``. A circular shift
of the input by one pixel moves the content to another component, so the kept samples change. APS
keeps, per sample, the component of largest norm instead: a circular shift permutes the components
and shifts each on the coarse grid, so the same component wins and the output is a circular shift of
the original one. Followed by global pooling, a network of such layers is exactly invariant to every
integer circular shift (LPS, Rojas-Gomez et al. 2022, call this criterion ``max_p_norm``).

The layers here keep the window op's own arguments and parameters (``PolyphaseConv2d`` carries the
conv's ``weight`` and ``bias`` under the conv's names), and return the output size of the strided
op they replace. The dense op gets extra right padding so that its output is a whole number of
stride periods (``out * s`` samples); ``circular=True`` takes those samples circularly, which makes
the dense op a circular window op whenever ``out * s`` equals the input size: the condition for
exactness.

When exact (tested): the input sizes are multiples of the product of the strides, the padding of
every layer is circular (circular convs, pools without padding), no two components tie in norm,
and no two branches of the network subsample the same signal independently (each selects its own
component, so a residual block's strided conv and strided shortcut can pick different ones).
Otherwise the layers still remove the fixed choice of component, and aliasing is reduced, not removed.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pytest_equivariance.errors import EquivarianceUsageError, shown
from pytest_equivariance.layers.filters import (
    _blur_pool,
    _ntuple,
    _pool_output_size,
    check_blur_arguments,
    periodic_pad,
)

__all__ = [
    "CRITERIA",
    "PolyphaseAvgPool1d",
    "PolyphaseAvgPool2d",
    "PolyphaseAvgPool3d",
    "PolyphaseConv1d",
    "PolyphaseConv2d",
    "PolyphaseConv3d",
    "PolyphaseMaxPool1d",
    "PolyphaseMaxPool2d",
    "PolyphaseMaxPool3d",
    "PolyphasePool1d",
    "PolyphasePool2d",
    "PolyphasePool3d",
    "polyphase_conv",
    "polyphase_pool1d",
    "polyphase_pool2d",
    "polyphase_pool3d",
    "share_phases",
    "SharedPhases",
]

#: How a component's size is measured: its l2 norm (APS's default), l1 norm, or largest magnitude.
CRITERIA = ("l2", "l1", "max")


def check_polyphase_arguments(stride: Any, criterion: str, blur: int | None) -> None:
    """Raise :class:`EquivarianceUsageError` unless the polyphase arguments are supported."""
    if not isinstance(criterion, str) or criterion not in CRITERIA:
        raise EquivarianceUsageError(
            f"Unsupported polyphase criterion {shown(criterion)}; use one of {', '.join(map(repr, CRITERIA))}."
        )
    if blur is not None:
        check_blur_arguments(blur, "circular", stride)
    else:
        check_blur_arguments(1, "circular", stride)


def _component_sizes(y: torch.Tensor, stride: tuple[int, ...], criterion: str) -> torch.Tensor:
    """Return ``(N, prod(stride))``: the size of each polyphase component of each sample."""
    n, c = y.shape[:2]
    lengths = [int(size) // s for size, s in zip(y.shape[2:], stride)]
    split = y.reshape(n, c, *[v for pair in zip(lengths, stride) for v in pair])
    # Reduce over channels and the coarse positions; keep one phase axis per spatial dim.
    reduce = (1, *range(2, split.dim(), 2))
    if criterion == "l2":
        sizes = split.pow(2).sum(reduce)
    elif criterion == "l1":
        sizes = split.abs().sum(reduce)
    else:
        sizes = split.abs().amax(reduce)
    return sizes.reshape(n, -1)


def _select(
    y: torch.Tensor, stride: tuple[int, ...], criterion: str, winner: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return, per sample, the polyphase component of ``y`` of largest size (``y`` tiles the strides),
    and the flat index of that component; ``winner`` imposes the index instead."""
    n, c = y.shape[:2]
    lengths = [int(size) // s for size, s in zip(y.shape[2:], stride)]
    if winner is None:
        winner = _component_sizes(y.detach(), stride, criterion).argmax(1)
    split = y.reshape(n, c, *[v for pair in zip(lengths, stride) for v in pair])
    # Unravel the winning phase into one index per spatial dim (last dim fastest).
    phases: list[torch.Tensor] = []
    rest = winner
    for s in reversed(stride):
        phases.insert(0, rest % s)
        rest = rest // s
    index: list[Any] = [torch.arange(n, device=y.device), slice(None)]
    for phase in phases:
        index += [slice(None), phase]
    # Advanced indices that are not adjacent put the batch first: (N, C, *lengths).
    return split[tuple(index)], winner


def _tiled(x: torch.Tensor, ndim: int, strides: tuple[int, ...], blur: int | None) -> torch.Tensor:
    """Return ``x`` padded circularly to whole stride periods, blurred (circularly) when asked."""
    if isinstance(x, torch.Tensor) and x.dim() != ndim + 2:
        raise EquivarianceUsageError(
            f"polyphase_pool{ndim}d expects a (batch, channels, {ndim} spatial dims) tensor but got "
            f"{x.dim()} dims of shape {tuple(x.shape)}; add the missing batch or channel dim."
        )
    # Sizes that are not multiples of the stride wrap around to the next multiple: ceil(n / s)
    # samples, as BlurPool returns.
    extra: list[int] = []
    for size, s in zip(x.shape[2:], strides):
        extra = [0, -int(size) % s] + extra
    if any(extra):
        x = periodic_pad(x, extra)
    if blur is not None and blur > 1:
        x = _blur_pool(x, ndim, 1, blur, "circular")
    return x


def _polyphase_pool(
    x: torch.Tensor, ndim: int, stride: int | Sequence[int], criterion: str, blur: int | None
) -> torch.Tensor:
    strides = _ntuple(stride, ndim)
    return _select(_tiled(x, ndim, strides, blur), strides, criterion)[0]


# A leaf for fx: the selection depends on the values (plain torch.fx keeps it as one call).
torch.fx.wrap("_polyphase_pool")


def polyphase_pool1d(
    x: torch.Tensor, stride: int = 2, criterion: str = "l2", blur: int | None = None
) -> torch.Tensor:
    """Return the polyphase component of largest norm of ``x`` ``(N, C, L)``: ``(N, C, ceil(L / stride))``.

    See :func:`polyphase_pool2d`.
    """
    check_polyphase_arguments(stride, criterion, blur)
    return _polyphase_pool(x, 1, stride, criterion, blur)


def polyphase_pool2d(
    x: torch.Tensor, stride: int | tuple[int, int] = 2, criterion: str = "l2", blur: int | None = None
) -> torch.Tensor:
    """Return, per sample, the polyphase component of largest norm of ``x`` ``(N, C, H, W)``.

    Output ``(N, C, ceil(H / stride), ceil(W / stride))``. ``criterion``: ``"l2"`` (Chaman &
    Dokmanić's APS), ``"l1"`` or ``"max"``; computed over all channels of a sample. ``blur``: a
    binomial filter size (2..7) applied at stride 1, circularly, before the selection (APS with a
    low-pass filter); None selects from ``x`` itself. Sizes that are not multiples of ``stride``
    are padded circularly to the next multiple first.

    >>> polyphase_pool2d(torch.randn(2, 3, 9, 8)).shape
    torch.Size([2, 3, 5, 4])
    """
    check_polyphase_arguments(stride, criterion, blur)
    return _polyphase_pool(x, 2, stride, criterion, blur)


def polyphase_pool3d(
    x: torch.Tensor, stride: int | tuple[int, int, int] = 2, criterion: str = "l2", blur: int | None = None
) -> torch.Tensor:
    """Return the polyphase component of largest norm of ``x`` ``(N, C, D, H, W)``. See :func:`polyphase_pool2d`."""
    check_polyphase_arguments(stride, criterion, blur)
    return _polyphase_pool(x, 3, stride, criterion, blur)


_FUNCTIONS = {1: polyphase_pool1d, 2: polyphase_pool2d, 3: polyphase_pool3d}


class _PolyphasePoolNd(nn.Module):
    _ndim: ClassVar[int] = 0
    #: Set by :func:`share_phases`: the components chosen so far in the running forward pass.
    _phases: "SharedPhases | None" = None

    def __init__(self, stride: int | tuple[int, ...] = 2, criterion: str = "l2", blur: int | None = None) -> None:
        super().__init__()
        check_polyphase_arguments(stride, criterion, blur)
        self.stride = tuple(stride) if isinstance(stride, (tuple, list)) else stride
        self.criterion = criterion
        self.blur = blur

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phases = self._phases
        if phases is None or not phases.active:
            return _polyphase_pool(x, self._ndim, self.stride, self.criterion, self.blur)
        strides = _ntuple(self.stride, self._ndim)
        y = _tiled(x, self._ndim, strides, self.blur)
        key = (y.shape[0], tuple(y.shape[2:]), strides, y.device)
        out, phases.chosen[key] = _select(y, strides, self.criterion, phases.chosen.get(key))
        return out

    def extra_repr(self) -> str:
        blur = f", blur={self.blur}" if self.blur is not None else ""
        return f"stride={self.stride}, criterion={self.criterion!r}{blur}"


class SharedPhases:
    """The polyphase components chosen during one forward pass of a model, by map shape and stride.

    A residual block subsamples the same signal twice (its strided conv and its strided shortcut);
    if each kept its own largest component, a shift could make them pick components that no longer
    line up, and the sum would not be a shifted copy. Chaman & Dokmanić pass the main branch's
    indices to the shortcut by hand; here every selection on a map of the same shape and stride in
    one forward pass keeps the component the first one chose. In a circular-padded network all maps
    of one shape shift alike, so this keeps the layers exactly invariant. Active only while the
    model's own forward runs (its hooks open and close it); layers called on their own select alone.
    """

    def __init__(self) -> None:
        self.active = False
        self.chosen: dict[tuple[Any, ...], torch.Tensor] = {}

    def open(self, *_: Any) -> None:
        self.chosen.clear()
        self.active = True

    def close(self, *_: Any) -> None:
        self.chosen.clear()
        self.active = False


def share_phases(model: nn.Module) -> nn.Module:
    """Make the polyphase layers of ``model`` that subsample maps of one shape share their component.

    Returns ``model`` with two hooks on it that scope the sharing to its forward pass (see
    :class:`SharedPhases`). ``antialias(model, method="polyphase")`` does this for you.
    """
    phases = SharedPhases()
    pools = [m for m in model.modules() if isinstance(m, _PolyphasePoolNd)]
    for pool in pools:
        pool._phases = phases
    if pools:
        model.register_forward_pre_hook(phases.open)
        model.register_forward_hook(phases.close, always_call=True)
    return model


class PolyphasePool1d(_PolyphasePoolNd):
    """Keep the polyphase component of largest norm: ``(N, C, L) -> (N, C, ceil(L / stride))``."""

    _ndim = 1


class PolyphasePool2d(_PolyphasePoolNd):
    """Keep, per sample, the polyphase component of largest norm (APS, Chaman & Dokmanić 2021).

    ``(N, C, H, W) -> (N, C, ceil(H / stride), ceil(W / stride))``; see :func:`polyphase_pool2d`.
    Put it after a stride-1 op in place of the op's stride; no parameters or buffers.

    >>> PolyphasePool2d(stride=2)(torch.randn(1, 4, 8, 8)).shape
    torch.Size([1, 4, 4, 4])
    """

    _ndim = 2


class PolyphasePool3d(_PolyphasePoolNd):
    """Keep the polyphase component of largest norm: ``(N, C, D, H, W) -> ceil(. / stride)``."""

    _ndim = 3


_POOLS: dict[int, type[_PolyphasePoolNd]] = {1: PolyphasePool1d, 2: PolyphasePool2d, 3: PolyphasePool3d}


def _tiling_padding(
    x: torch.Tensor,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil_mode: bool,
    around: tuple[int, ...] | None = None,
) -> list[int]:
    """Return the ``F.pad`` amounts (last dim first) after which a stride-1 window op has
    ``out * stride`` outputs, ``out`` being the strided op's output size: whole stride periods.

    The extra samples go on the right; ``around`` (one amount per dim) is added on both sides, for
    ops whose own padding is done by the same ``F.pad``.
    """
    pad: list[int] = []
    for i, (size, k, s, p, d) in enumerate(zip(x.shape[2:], kernel_size, stride, padding, dilation)):
        out = _pool_output_size(size, k, s, p, d, ceil_mode)
        dense = int(size) + 2 * p - d * (k - 1)
        both = around[i] if around is not None else 0
        pad = [both, both + max(0, out * s - dense)] + pad
    return pad


# Leaves for fx: the padding depends on the input's size, not on its values.
torch.fx.wrap("_tiling_padding")
torch.fx.wrap("periodic_pad")


def _no_padding(extra: Any) -> bool:
    # Under fx the amounts are a proxy: always pad (by zero where none is needed).
    return isinstance(extra, list) and not any(extra)


class _PolyphaseWindowNd(nn.Module):
    """A strided pool run at stride 1 on a tiling input, then :class:`PolyphasePoolNd` by its stride."""

    _ndim: ClassVar[int] = 0

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        *,
        dilation: int | tuple[int, ...] = 1,
        ceil_mode: bool = False,
        criterion: str = "l2",
        blur: int | None = None,
        circular: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.padding = padding
        self.dilation = dilation
        self.ceil_mode = ceil_mode
        self.circular = circular
        stride = kernel_size if stride is None or stride == [] else stride
        self.select = _POOLS[self._ndim](stride, criterion, blur)

    @property
    def stride(self) -> int | tuple[int, ...]:
        return self.select.stride

    def _tile(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Return ``x`` padded so that the stride-1 pool tiles the stride, and the pool's own padding."""
        n = self._ndim
        shape = (_ntuple(self.kernel_size, n), _ntuple(self.stride, n), _ntuple(self.padding, n),
                 _ntuple(self.dilation, n), self.ceil_mode)
        if self.circular:
            # The pool's own padding wraps around too: in a circular-padded network the pool is
            # then a circular window op like the convs, which exactness needs.
            return periodic_pad(x, _tiling_padding(x, *shape, around=shape[2])), 0
        extra = _tiling_padding(x, *shape)
        if _no_padding(extra):
            return x, self.padding
        # Replicating the edge keeps every extra window's values real (a max pool's -inf padding
        # could fill a whole window, whose norm would then win).
        return F.pad(x, extra, mode="replicate"), self.padding

    def extra_repr(self) -> str:
        extra = f", padding={self.padding}" if self.padding not in (0, (0,) * self._ndim) else ""
        extra += f", dilation={self.dilation}" if self.dilation not in (1, (1,) * self._ndim) else ""
        extra += ", ceil_mode=True" if self.ceil_mode else ""
        extra += ", circular=True" if self.circular else ""
        select = self.select
        blur = f", blur={select.blur}" if select.blur is not None else ""
        return f"kernel_size={self.kernel_size}, stride={self.stride}{extra}, criterion={select.criterion!r}{blur}"


class _PolyphaseMaxPoolNd(_PolyphaseWindowNd):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[self._ndim - 1]
        x, padding = self._tile(x)
        return self.select(pool(x, self.kernel_size, 1, padding, self.dilation))


class PolyphaseMaxPool1d(_PolyphaseMaxPoolNd):
    """``nn.MaxPool1d`` with adaptive polyphase sampling: see :class:`PolyphaseMaxPool2d`."""

    _ndim = 1


class PolyphaseMaxPool2d(_PolyphaseMaxPoolNd):
    """``nn.MaxPool2d(kernel_size, stride, padding)`` that keeps the component of largest norm.

    The max runs at stride 1, then :class:`PolyphasePool2d` subsamples by ``stride``; the output size
    is the max pool's (``dilation`` and ``ceil_mode`` too). The extra windows that make the dense
    output tile the stride repeat the edge values; with ``circular=True`` they wrap around, and so
    does the pool's own ``padding`` (instead of ``-inf``): exact invariance to circular shifts, for
    circular-padded networks.

    >>> PolyphaseMaxPool2d(2, circular=True)(torch.randn(1, 8, 16, 16)).shape
    torch.Size([1, 8, 8, 8])
    """

    _ndim = 2


class PolyphaseMaxPool3d(_PolyphaseMaxPoolNd):
    """``nn.MaxPool3d`` with adaptive polyphase sampling: see :class:`PolyphaseMaxPool2d`."""

    _ndim = 3


class _PolyphaseAvgPoolNd(_PolyphaseWindowNd):
    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        *,
        criterion: str = "l2",
        blur: int | None = None,
        circular: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode, criterion=criterion, blur=blur,
                         circular=circular)
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self._ndim
        kwargs: dict[str, Any] = {"count_include_pad": self.count_include_pad}
        if n > 1:
            kwargs["divisor_override"] = self.divisor_override
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
        x, padding = self._tile(x)
        return self.select(pool(x, self.kernel_size, 1, padding, **kwargs))


class PolyphaseAvgPool1d(_PolyphaseAvgPoolNd):
    """``nn.AvgPool1d`` with adaptive polyphase sampling: see :class:`PolyphaseAvgPool2d`."""

    _ndim = 1


class PolyphaseAvgPool2d(_PolyphaseAvgPoolNd):
    """``nn.AvgPool2d``'s arguments and output size; the box filter at stride 1, then :class:`PolyphasePool2d`.

    Extra windows are filled by replicating the edge; with ``circular=True`` they and the pool's own
    ``padding`` wrap around (every window is then full, as with ``count_include_pad=True``).
    """

    _ndim = 2


class PolyphaseAvgPool3d(_PolyphaseAvgPoolNd):
    """``nn.AvgPool3d`` with adaptive polyphase sampling: see :class:`PolyphaseAvgPool2d`."""

    _ndim = 3


_CONVS: dict[int, type] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class _PolyphaseConvNd(nn.Module):
    """A strided convolution run at stride 1, then :class:`PolyphasePoolNd` by its stride.

    Like ``AntialiasedConvNd`` it carries the conv's own attributes and parameters (``weight``,
    ``bias``, ``padding_mode``, ...) and runs ``nn.ConvNd``'s convolution, so parameter names are the
    conv's and checkpoints load with ``strict=True``. ``stride`` stays the conv's: the stride of
    the selection, while the convolution itself runs at stride 1.
    """

    _ndim: ClassVar[int] = 0
    select: _PolyphasePoolNd
    circular: bool
    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, *args: Any, criterion: str = "l2", blur: int | None = None, circular: bool | None = None,
                 **kwargs: Any) -> None:
        super().__init__()
        self._adopt(_CONVS[self._ndim](*args, **kwargs), criterion, blur, circular)

    @classmethod
    def from_conv(cls, conv: nn.Module, criterion: str = "l2", blur: int | None = None,
                  circular: bool | None = None) -> "_PolyphaseConvNd":
        """Return a polyphase twin of ``conv`` holding the very same ``Parameter`` objects."""
        twin = cls.__new__(cls)
        twin._adopt(conv, criterion, blur, circular)
        return twin

    def _adopt(self, conv: nn.Module, criterion: str, blur: int | None, circular: bool | None) -> None:
        if isinstance(conv.padding, str):
            raise EquivarianceUsageError(
                f"A polyphase conv needs integer padding but the conv has padding={conv.padding!r}; "
                f"give the padding as numbers."
            )
        # Take over the conv's instance state; copy its registries so that ``conv`` stays untouched.
        self.__dict__.update(
            {k: (v.copy() if isinstance(v, (dict, set)) else v) for k, v in conv.__dict__.items()}
        )
        stride = tuple(self.stride)
        self.circular = conv.padding_mode == "circular" if circular is None else circular
        self.select = _POOLS[self._ndim](stride if len(set(stride)) > 1 else stride[0], criterion, blur)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self._ndim
        conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
        shape = (tuple(self.kernel_size), tuple(self.stride), tuple(self.padding), tuple(self.dilation), False)
        if self.padding_mode == "circular" and self.circular:
            # The conv's own padding and the tiling extra in one circular pad: one circular window op.
            x = periodic_pad(x, _tiling_padding(x, *shape, around=tuple(self.padding)))
            return self.select(conv(x, self.weight, self.bias, 1, 0, self.dilation, self.groups))
        padding: Any = self.padding
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
            shape = (shape[0], shape[1], (0,) * n, shape[3], False)
        extra = _tiling_padding(x, *shape)
        if not _no_padding(extra):
            # Zero-padded convs see zeros in the extra windows, others their edge values.
            fill = "circular" if self.circular else "constant" if self.padding_mode == "zeros" else "replicate"
            x = periodic_pad(x, extra) if fill == "circular" else F.pad(x, extra, mode=fill)
        return self.select(conv(x, self.weight, self.bias, 1, padding, self.dilation, self.groups))

    extra_repr = nn.modules.conv._ConvNd.extra_repr
    #: Re-initialise the conv's weights as ``nn.ConvNd`` does.
    reset_parameters = nn.modules.conv._ConvNd.reset_parameters


class PolyphaseConv1d(_PolyphaseConvNd):
    """A strided 1-d convolution with adaptive polyphase sampling: see :class:`PolyphaseConv2d`."""

    _ndim = 1


class PolyphaseConv2d(_PolyphaseConvNd):
    """A strided 2-d convolution with adaptive polyphase sampling, a drop-in for ``nn.Conv2d``.

    Takes ``nn.Conv2d``'s arguments plus ``criterion="l2"``, ``blur=None`` (a binomial size to
    blur with before the selection) and ``circular`` (None: as the conv's ``padding_mode``). The conv
    runs at stride 1 (``stride**2`` times its FLOPs) and :class:`PolyphasePool2d` keeps the
    component of largest norm, in the output size of the strided conv. Parameters are ``nn.Conv2d``'s;
    build one from an existing conv, sharing its parameters, with :meth:`from_conv`.

    >>> PolyphaseConv2d(3, 8, 3, stride=2, padding=1, padding_mode="circular")(torch.ones(1, 3, 16, 16)).shape
    torch.Size([1, 8, 8, 8])
    """

    _ndim = 2


class PolyphaseConv3d(_PolyphaseConvNd):
    """A strided 3-d convolution with adaptive polyphase sampling: see :class:`PolyphaseConv2d`."""

    _ndim = 3


_POLYPHASE_CONVS: dict[type, type[_PolyphaseConvNd]] = {
    nn.Conv1d: PolyphaseConv1d,
    nn.Conv2d: PolyphaseConv2d,
    nn.Conv3d: PolyphaseConv3d,
}


def polyphase_conv(conv: nn.Module, criterion: str = "l2", blur: int | None = None,
                   circular: bool | None = None) -> nn.Module:
    """Return a polyphase twin of ``conv`` (a ``PolyphaseConvNd``) that shares its parameters.

    Only ``nn.Conv1d/2d/3d`` and subclasses that keep their ``forward`` are accepted.
    """
    base = next((c for c in _POLYPHASE_CONVS if isinstance(conv, c)), None)
    if base is None or type(conv).forward is not base.forward:
        raise EquivarianceUsageError(
            f"polyphase_conv expects an nn.Conv1d/2d/3d but got {type(conv).__name__}, which "
            f"{'overrides forward' if base else 'is not one'}; put a PolyphasePool2d after a stride-1 copy of it."
        )
    check_polyphase_arguments(conv.stride, criterion, blur)
    return _POLYPHASE_CONVS[base].from_conv(conv, criterion, blur, circular)
