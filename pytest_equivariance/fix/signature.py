"""What a safe fix must keep: a model's state-dict shapes and its output shapes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelSignature:
    """What a safe fix keeps: every state-dict entry's shape, and the output shapes."""

    state: tuple[tuple[str, tuple[int, ...]], ...]
    outputs: tuple[tuple[int, ...], ...] | None  # None: the model would not run on meta inputs


def model_signature(model: "nn.Module", input_shape: Sequence[int] | None) -> ModelSignature:
    """Return the state-dict shapes of ``model`` and its output shapes on a meta input of ``input_shape``."""
    import torch

    from pytest_equivariance.check.runner import flatten_output
    from pytest_equivariance.lint.shapes import AssumedValues, meta_weights

    state = tuple((k, tuple(v.shape)) for k, v in model.state_dict().items() if isinstance(v, torch.Tensor))
    outputs = None
    if input_shape:
        try:
            with torch.no_grad(), meta_weights(model), AssumedValues():
                out = model.eval()(torch.empty(tuple(input_shape), device="meta"))
            outputs = tuple(tuple(t.shape) for _, t in flatten_output(out))
        except Exception:  # a model that does not run on meta: its state dict is still compared
            outputs = None
    return ModelSignature(state, outputs)
