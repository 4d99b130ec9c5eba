"""What every public entry checks before it runs: the model, the tensors, the example input, and sizes.

Each check raises :class:`~pytest_equivariance.errors.EquivarianceUsageError` with one sentence that
names the argument and the remedy, so that nothing from torch reaches the user for a mistake of
theirs, and nothing is allocated before a size is known to fit. ``entry`` is the name of the function
the user called (``"check_shift_equivariant"``, ``"lie_derivative"``, ``"lint_model"``), so the
sentence says where the mistake is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pytest_equivariance import forms
from pytest_equivariance.errors import EquivarianceUsageError, InputShapeError, shown

if TYPE_CHECKING:
    import torch
    from torch import nn


def require_module(model: Any, entry: str) -> None:
    """Raise unless ``model`` is an ``nn.Module`` instance (its class, or a factory's result, is named)."""
    from torch import nn

    if isinstance(model, type) and issubclass(model, nn.Module):
        raise EquivarianceUsageError(
            f"{entry} got the class {model.__name__}, not an instance of it; pass the model instance, e.g. "
            f"{model.__name__}(...)."
        )
    if not isinstance(model, nn.Module):
        raise EquivarianceUsageError(
            f"{entry} got {type(model).__name__} as its model, not a torch.nn.Module; pass the model instance "
            f"(call the factory first)."
        )


def shipped_module(model: Any, entry: str) -> "nn.Module":
    """Return the module that runs ``model`` (an ``ExportedProgram``'s ``.module()``), raising unless it is
    one; compiled, exported and scripted models are told apart by :mod:`pytest_equivariance.forms`."""
    model = forms.runnable(model)
    require_module(model, entry)
    return model


def eager_module(model: Any, entry: str) -> "nn.Module":
    """Return the eager module ``entry`` hooks or differentiates: a compiled model's original module;
    raise in one sentence for an exported or scripted model, which keeps none."""
    return forms.eager(shipped_module(model, entry), entry)


def require_materialised(model: Any, entry: str) -> None:
    """Raise when ``model`` has weights or buffers on the ``meta`` device, which hold no values to run."""
    for name, tensor in _tensors(model):
        if tensor.is_meta:
            raise EquivarianceUsageError(
                f"{entry} must run the model, but its {name or 'tensor'} is on the meta device and holds no "
                f"values; build the model on a real device, or call model.to_empty(device='cpu') and load "
                f"its weights first."
            )


def require_tensor(
    value: Any,
    name: str,
    entry: str,
    *,
    floating: bool = False,
) -> None:
    """Raise unless ``value`` is a tensor with values (not meta), with no empty dim, floating if asked."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise EquivarianceUsageError(
            f"{entry} needs {name} as a tensor, got {type(value).__name__}; pass a tensor shaped "
            f"(batch, channels, *spatial)."
        )
    if value.is_meta:
        raise EquivarianceUsageError(
            f"{entry} got {name} on the meta device, which holds no values to compare; pass a tensor on a "
            f"real device (or input_shape= for generated images)."
        )
    if floating and not (value.is_floating_point() or value.is_complex()):
        raise EquivarianceUsageError(
            f"{entry} needs floating-point {name}, got {str(value.dtype).removeprefix('torch.')}; convert them "
            f"with {name}.float() (or .double() for exact comparisons)."
        )
    shape = tuple(value.shape)
    if 0 in shape:
        what = "an empty batch" if shape and shape[0] == 0 else "an empty dim"
        raise EquivarianceUsageError(
            f"{entry} got {name} with {what} (shape {shape}); pass at least one example with every dim "
            f"at least 1."
        )


def require_shape(shape: Any, name: str, entry: str, *, min_ndim: int = 2) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of positive ints, or raise :class:`InputShapeError` saying what is wrong."""
    if isinstance(shape, (tuple, list)) and len(shape) >= min_ndim and all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        return tuple(shape)
    raise InputShapeError(
        f"{entry} got {name}={shown(shape)}, which is not a shape; pass {min_ndim} or more positive integers, "
        f"batch and channels first, e.g. (2, 3, 64, 64)."
    )


def require_example(example: Any, name: str, entry: str) -> None:
    """Raise unless ``example`` is what the linter reads: None, a shape, a tensor, or tensors.

    Only shapes are used, so tensors on any device (meta included) are welcome; a list or tuple of
    ints is a shape and must be one.
    """
    import torch

    if example is None or isinstance(example, torch.Tensor):
        return
    if isinstance(example, (tuple, list)) and example and all(isinstance(v, int) and not isinstance(v, bool)
                                                              for v in example):
        require_shape(example, name, entry, min_ndim=1)
        return
    if isinstance(example, (tuple, list)) and example and all(isinstance(v, torch.Tensor) for v in example):
        return
    if isinstance(example, dict) and example and all(isinstance(k, str) for k in example):
        return
    raise EquivarianceUsageError(
        f"{entry} got {name}={shown(example)}, which is neither a shape nor tensors; pass a shape such as "
        f"(1, 3, 224, 224), a tensor, a tuple of tensors, a dict of keyword tensors, or None to infer one."
    )


def require_flag(value: Any, name: str, entry: str) -> None:
    """Raise unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise EquivarianceUsageError(f"{entry} got {name}={shown(value)}; pass True or False.")


def require_names(value: Any, name: str, entry: str, *, example: str) -> tuple[str, ...]:
    """Return ``value`` as a tuple of strings: one string, or an iterable of them."""
    if isinstance(value, str):
        return (value,)
    try:
        items = tuple(value) if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)) else None
    except TypeError:  # a 0-d tensor is iterable by type, not in fact
        items = None
    if items is None or not all(isinstance(item, str) for item in items):
        raise EquivarianceUsageError(
            f"{entry} got {name}={shown(value)}; pass a string or a list of strings, e.g. {name}={example}."
        )
    return items


def require_fits(shape: tuple[int, ...], dtype: "torch.dtype", device: "torch.device", what: str,
                 remedy: str) -> None:
    """Raise before allocating a tensor of ``shape`` that alone would exceed the device's memory.

    ``what`` says which argument asked for it (``"input_shape=(...)"``), ``remedy`` what to pass instead.
    The bound is the device's whole memory, so no run that could succeed is refused.
    """
    import torch

    itemsize = torch.empty((), dtype=dtype).element_size()
    needed = math.prod(shape) * itemsize
    total = device_memory(device)
    if total is not None and needed > total:
        where = "this machine's memory" if device.type == "cpu" else f"the memory of {device}"
        raise EquivarianceUsageError(
            f"{what} needs {_bytes(needed)} for the inputs alone, more than the {_bytes(total)} of {where}; "
            f"{remedy}."
        )


def device_memory(device: "torch.device") -> int | None:
    """Return the bytes of memory of ``device`` (the machine's RAM for the CPU), or None when unknown."""
    import torch

    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "cpu":
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (AttributeError, ValueError, OSError):  # pragma: no cover - platforms without sysconf
            return None
    return None


def _bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def _tensors(model: Any) -> Iterable[tuple[str, "torch.Tensor"]]:
    # The registries directly: named_parameters() would skip shared tensors, and this runs per check.
    for prefix, module in model.named_modules():
        for registry in (module._parameters, module._buffers):
            for key, tensor in registry.items():
                if tensor is not None:
                    yield (f"{prefix}.{key}" if prefix else key), tensor
