"""Build models without initialising or allocating their large weights: what the linter needs and no more.

The linter reads shapes, module types, constructor arguments and the values of a few small frozen
filters — never the random numbers a constructor draws. Inside :func:`empty_weights` every
parameter a module registers is moved to the ``meta`` device as it is registered, so the
initialisers that run next (``kaiming_uniform_``, ``trunc_normal_``, ...) act on tensors without
storage and cost nothing, and a 632M-parameter model holds no weight memory.

What stays real, because rules read its values (the spirit of ``accelerate.init_empty_weights``
with buffers left alone):

* buffers: BlurPool filters, batch-norm statistics, index tables;
* small parameters (at most :data:`SMALL_PARAMETER` elements), and every parameter with the layout
  of a depthwise kernel ``(C, 1, *taps)``: a frozen low-pass conv is recognised by its values,
  which its constructor writes after registering the weight.

A constructor that needs real values (one that calls ``.item()`` on a weight, or an operation
without a meta kernel) raises inside the block; :func:`build_empty` then builds the model normally
and says why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

#: Parameters of at most this many elements stay real (initialising them costs next to nothing).
SMALL_PARAMETER = 1 << 16
#: ``torch.nn.init`` functions that return at once for a meta tensor inside :func:`empty_weights`:
#: on meta some of them still run a Python reference implementation, for nothing.
INITIALISERS = (
    "constant_", "dirac_", "eye_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
    "orthogonal_", "sparse_", "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
)  # fmt: skip


def _stays_real(tensor: Any) -> bool:
    shape = tuple(tensor.shape)
    depthwise_kernel = len(shape) >= 3 and shape[1] == 1
    return tensor.numel() <= SMALL_PARAMETER or depthwise_kernel


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Within the block, parameters registered by any module go to ``meta`` unless they are small.

    ``torch.nn.init`` functions return meta tensors untouched meanwhile. Not thread-safe: it patches
    ``nn.Module.register_parameter`` and ``torch.nn.init`` for the duration.
    """
    from torch import nn

    original = nn.Module.register_parameter
    initialisers = {name: getattr(nn.init, name) for name in INITIALISERS if hasattr(nn.init, name)}

    def register_parameter(module: nn.Module, name: str, param: Any) -> None:
        original(module, name, param)
        param = module._parameters.get(name)
        if param is None or isinstance(param, nn.parameter.UninitializedTensorMixin):
            return  # absent, or a lazy layer's parameter, which has no shape yet
        if param.is_meta or _stays_real(param):
            return
        meta = param.detach().to("meta")
        module._parameters[name] = type(param)(meta, requires_grad=param.requires_grad)

    def skipping_meta(init: Callable[..., Any]) -> Callable[..., Any]:
        def initialise(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            return tensor if getattr(tensor, "is_meta", False) else init(tensor, *args, **kwargs)

        return initialise

    nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
    for name, init in initialisers.items():
        setattr(nn.init, name, skipping_meta(init))
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]
        for name, init in initialisers.items():
            setattr(nn.init, name, init)


@dataclass(frozen=True)
class EmptyBuild:
    """A model built for linting, and how: ``empty`` (large weights on meta) or ``initialised``."""

    model: "nn.Module"
    empty: bool
    note: str | None = None  # why the model was built with initialised weights, for --verbose


def build_empty(build: Callable[[], "nn.Module"], errors: tuple[type[BaseException], ...] = ()) -> EmptyBuild:
    """Return ``build()`` run under :func:`empty_weights`; if that raises, ``build()`` run normally.

    Either way the build records where each layer is constructed, so findings point at the
    constructor call itself (:func:`~pytest_equivariance.lint.locations.recording_constructions`).

    ``errors`` are exceptions that are the user's to see whatever the build mode (a constructor
    that needs arguments, say): they propagate from the first attempt, without a second build.
    """
    from pytest_equivariance.lint.locations import recording_constructions

    try:
        with empty_weights(), recording_constructions():
            return EmptyBuild(build(), empty=True)
    except errors:
        raise
    except Exception as exc:  # the constructor needs real values: build it the usual way
        text = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    with recording_constructions():
        model = build()
    return EmptyBuild(model, empty=False,
                      note=f"built with initialised weights: building it with empty weights raised {reason}")
