"""Recognise fixed low-pass filters: the layers the linter must never flag.

One definition of "this is an anti-aliased downsampler", shared by the rules and by
:func:`pytest_equivariance.antialias`: the known BlurPool classes (this project's, antialiased-cnns,
timm, kornia), matched by class so that none of those libraries is imported here, and any strided
depthwise convolution whose kernel is a fixed (non-trainable) low-pass filter — non-negative and
normalised to unit sum, with more than one tap.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

#: (top-level package, class name) of third-party fixed low-pass layers. Matched by name so the
#: libraries need not be importable; any class in the MRO counts, so subclasses match too.
KNOWN_LOWPASS_CLASSES: frozenset[tuple[str, str]] = frozenset(
    {
        ("antialiased_cnns", "BlurPool"),
        ("antialiased_cnns", "BlurPool1D"),
        ("timm", "BlurPool2d"),
        ("kornia", "BlurPool2D"),
        ("kornia", "MaxBlurPool2D"),
        ("kornia", "EdgeAwareBlurPool2D"),
        ("kornia", "GaussianBlur2d"),
        ("kornia", "BoxBlur"),
    }
)

_TOLERANCE = 1e-3


@functools.lru_cache(maxsize=1)
def _own_classes() -> tuple[type, ...]:
    # This project's layers. Polyphase sampling does not low-pass filter, but its component choice
    # follows the signal, so it is never flagged either. Imported here: they import torch.
    from pytest_equivariance.layers import blurpool, polyphase

    return (blurpool._BlurPoolNd, blurpool._MaxBlurPoolNd, blurpool._BlurAvgPoolNd,
            polyphase._PolyphasePoolNd, polyphase._PolyphaseWindowNd)


def is_known_lowpass_class(module: "nn.Module") -> bool:
    """Return whether ``module`` is an instance of a known BlurPool-like class (ours or a library's)."""
    own = _own_classes()
    if own and isinstance(module, own):
        return True
    for cls in type(module).__mro__:
        package = (cls.__module__ or "").split(".", 1)[0]
        if (package, cls.__name__) in KNOWN_LOWPASS_CLASSES:
            return True
    return False


def is_lowpass_kernel(kernel: "torch.Tensor") -> bool | None:
    """Return whether every output channel of a conv kernel is a non-negative, unit-sum average.

    ``kernel`` has the conv layout ``(out, in / groups, *taps)``, or is a bare filter ``(*taps)``.
    A delta (one tap) is subsampling, not low-pass filtering, so it does not count. Returns ``None``
    when the values are unknown (a meta tensor): only the structure could be checked.
    """
    if kernel.dim() < 1 or kernel.numel() == 0 or not kernel.is_floating_point():
        return False
    if kernel.is_meta:
        return None
    k = kernel.detach().double().cpu()
    # One filter per output channel for conv layouts; a bare 1-d or 2-d filter is a single one.
    per_filter = k.flatten(1) if k.dim() > 2 else k.reshape(1, -1)
    if per_filter.shape[-1] <= 1:
        return False
    if bool((per_filter < -_TOLERANCE).any()):
        return False
    sums = per_filter.sum(-1)
    if not bool(((sums - 1).abs() <= _TOLERANCE * max(1, per_filter.shape[-1])).all()):
        return False
    return bool((per_filter.amax(-1) < 1 - _TOLERANCE).all())


def _as_tuple(value: object) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    try:
        return tuple(int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return ()


def _is_frozen_depthwise_lowpass_conv(module: "nn.Module") -> bool:
    from torch import nn

    if not isinstance(module, nn.modules.conv._ConvNd) or module.transposed:
        return False
    # Read through _parameters: while fx traces, attribute access returns proxies.
    weight = module._parameters.get("weight")
    if weight is None or weight.requires_grad and isinstance(weight, nn.Parameter):
        return False
    depthwise = module.groups == module.in_channels == module.out_channels and weight.shape[1] == 1
    if not depthwise or math.prod(module.kernel_size) <= 1:
        return False
    return is_lowpass_kernel(weight) is not False


def _has_lowpass_buffer(module: "nn.Module") -> bool:
    # A parameter-free module that holds a low-pass filter as a buffer (the usual BlurPool
    # implementation): (C or 1, 1, *taps) with several taps per spatial dim. The registries are
    # read directly: this runs for every layer of every linted model, and the public iterators
    # cost more than the check.
    buffers = [b for b in module._buffers.values() if b is not None and b.dim() >= 3]
    if not buffers or module._modules:
        return False
    if any(p is not None and p.requires_grad for p in module._parameters.values()):
        return False
    for buffer in buffers:
        if buffer.shape[1] != 1 or min(buffer.shape[2:]) < 2:
            continue
        if is_lowpass_kernel(buffer) is not False:
            return True
    return False


def is_antialiased_downsampler(module: "nn.Module") -> bool:
    """Return whether ``module`` is a fixed low-pass filter (optionally subsampling): never flagged.

    True for this project's ``BlurPool*`` / ``MaxBlurPool*`` / ``BlurAvgPool*`` and polyphase
    pools (``PolyphasePool*``, ``PolyphaseMaxPool*``, ``PolyphaseAvgPool*``), antialiased-cnns ``BlurPool``, timm
    ``BlurPool2d``, kornia ``BlurPool2D`` / ``MaxBlurPool2D`` (and its Gaussian / box blurs), a
    depthwise ``nn.ConvNd`` whose weight is frozen and low-pass, and a parameter-free module holding
    a low-pass filter buffer. Kernel values are checked when they are known (not on ``meta``).
    """
    return (
        is_known_lowpass_class(module)
        or _is_frozen_depthwise_lowpass_conv(module)
        or _has_lowpass_buffer(module)
    )


def lowpass_stride(module: "nn.Module") -> tuple[int, ...] | None:
    """Return the subsampling stride of a fixed low-pass module, or ``None`` if it is not one.

    ``(1,)`` means a pure blur (stride 1): placed directly before a strided op it anti-aliases it.
    """
    if not is_antialiased_downsampler(module):
        return None
    stride = _as_tuple(getattr(module, "stride", 1))
    return stride or (1,)
