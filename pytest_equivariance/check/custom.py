"""``check_equivariant``: a check over custom ``(input_fn, output_fn)`` pairs or Transform objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from pytest_equivariance.check import transforms as transforms_mod  # `transforms` is also an argument name
from pytest_equivariance.check.result import CheckResult
from pytest_equivariance.check.run import run_check
from pytest_equivariance.check.spec import CheckSpec, check_trials
from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn


def check_equivariant(
    model: "nn.Module",
    inputs: "Tensor | Iterable[Any] | None" = None,
    transforms: Iterable[Any] = (),
    *,
    input_shape: Sequence[int] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    min_consistency: float | None = None,
    seed: int | None = None,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    localize: bool | None = None,
    trials: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    min_accuracy: float | None = None,
    max_accuracy_drop: float | None = None,
) -> CheckResult:
    """Return how far ``model(f(x))`` is from ``g(model(x))`` for each custom pair ``(f, g)`` in ``transforms``.

    ``g`` is applied to each output tensor; ``g=None`` means invariance under ``f``. Items may also
    be :class:`~pytest_equivariance.check.transforms.Transform` objects, which act on the outputs
    too (pass ``(t.on_input, None)`` for invariance under one). ``trials`` is accepted for
    uniformity with the other checks and ignored: every given transform is one trial.
    """
    check_trials(trials)
    try:
        items = list(transforms) if not isinstance(transforms, (str, bytes)) else None
    except TypeError:
        items = None
    if items is None:
        raise EquivarianceUsageError(
            f"transforms={shown(transforms)} is not a list; pass a list of (input_fn, output_fn) pairs, "
            f"e.g. [(flip_x, flip_y)]."
        )
    if not items:
        raise EquivarianceUsageError(
            "transforms is empty; pass a list of (input_fn, output_fn) pairs, e.g. [(flip_x, flip_y)]."
        )
    built: list[transforms_mod.Transform] = []
    for i, item in enumerate(items):
        if isinstance(item, transforms_mod.Transform):
            built.append(item)
            continue
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and callable(item[0])):
            raise EquivarianceUsageError(
                f"transforms[{i}] is {type(item).__name__}, not an (input_fn, output_fn) pair; "
                f"pass pairs of callables (output_fn may be None for invariance)."
            )
        f, g = item
        if g is not None and not callable(g):
            raise EquivarianceUsageError(f"transforms[{i}][1] is not callable; pass a function or None.")
        built.append(transforms_mod.custom(f, g, label=_pair_label(f, i)))
    # Transform objects act on outputs as group elements; pairs with output_fn=None mean invariance.
    equivariant = any(t.output_fn is not None or t.family != "custom" for t in built)
    spec = CheckSpec(
        kind="custom", equivariant=equivariant, model=model, inputs=inputs, input_shape=input_shape, dims=None,
        atol=atol, rtol=rtol, min_consistency=min_consistency, seed=seed, device=device,
        batch_size=batch_size, localize=localize, grid=False, mode="custom", margin=0, limit=limit,
        progress=progress, min_accuracy=min_accuracy, max_accuracy_drop=max_accuracy_drop,
    )
    return run_check(spec, lambda ctx: built)


def _pair_label(f: Callable[..., Any], index: int) -> str:
    """A report label for a custom pair: the transform's or function's name, else its position."""
    owner = getattr(f, "__self__", None)
    if isinstance(owner, transforms_mod.Transform):
        return owner.label
    name = getattr(f, "__name__", "")
    return name if name and name != "<lambda>" else f"custom #{index}"
