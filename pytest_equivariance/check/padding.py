"""Circular padding for the duration of a profile: borders that a check leaves out are not blamed.

Under a circular shift, a layer with circular padding is exactly as equivariant as its interior, so
a profile taken with every padded layer made circular measures what happens inside the image and not
the zero, reflect or replicate border that crop and zero modes exclude by design (and that circular
mode, which wraps the input, would otherwise charge to the first padded layer, even a stride-1 blur).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pytest_equivariance.layers.filters import periodic_pad

__all__ = ["circular_pad_for", "circular_padding", "periodic_pad"]

if TYPE_CHECKING:
    from torch import Tensor, nn

#: Padding modes made circular; "circular" itself is left alone.
_BORDERS = ("zeros", "reflect", "replicate", "constant")


@contextlib.contextmanager
def circular_padding(model: "nn.Module", enabled: bool = True, *, ndim: int = 4) -> Iterator[None]:
    """Make padded layers of ``model`` pad circularly while the block runs, when ``enabled``.

    Convolutions (``padding_mode``), the package's blur layers (their ``padding_mode``) and every
    ``F.pad`` of an ``ndim``-dimensional feature map over its spatial dims (timm's and
    antialiased-cnns' blur layers, reflection-pad modules, explicit calls) wrap around instead.
    Pooling layers keep their padding: it is part of their window, not a border.
    """
    import torch.nn.functional as F
    from torch import nn

    if not enabled:
        yield
        return
    changed: list[tuple[Any, str]] = []
    for module in model.modules():
        mode = getattr(module, "padding_mode", None)
        if isinstance(module, nn.modules.conv._ConvNd) and module.transposed:
            continue
        if isinstance(mode, str) and mode in _BORDERS:
            changed.append((module, mode))
            module.padding_mode = "circular"
    original = F.pad
    F.pad = circular_pad_for(ndim, original)
    try:
        yield
    finally:
        F.pad = original
        for module, mode in changed:
            module.padding_mode = mode


def circular_pad_for(ndim: int, original: Any = None) -> Any:
    """Return an ``F.pad`` that pads ``ndim``-dimensional maps circularly over their spatial dims."""
    import torch.nn.functional as F

    pad_fn = original or F.pad

    def pad(input: "Tensor", pad: Any, mode: str = "constant", value: float | None = None) -> "Tensor":
        amounts = list(pad)
        spatial = len(amounts) // 2
        fits = input.dim() == ndim and 0 < spatial <= ndim - 2 and all(p >= 0 for p in amounts)
        if fits and (mode in _BORDERS or mode == "circular"):
            return periodic_pad(input, amounts)
        return pad_fn(input, pad, mode=mode, value=value) if value is not None else pad_fn(input, pad, mode=mode)

    pad.__wrapped__ = pad_fn  # type: ignore[attr-defined]
    return pad
