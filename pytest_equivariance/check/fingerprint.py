"""Short fingerprints of a model's weights and of a check's inputs, for robustness baselines.

A baseline compares a run's figures with committed ones; that only means something when both runs
checked the same weights on the same inputs. A fingerprint says whether they did, in 16 hex digits.

It is the SHA-256 of every tensor's name, dtype, shape and raw bytes, so it changes with any bit of
any tensor and is the same whichever device holds the tensor. Hashing is the cheap part: about
50 ms for resnet18's 45 MB on one CPU core, a small fraction of one forward pass of the check's
batch; a GPU tensor is first copied to the host, which costs a few milliseconds more.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor, nn

#: Length of a fingerprint in hex digits (64 bits: collisions are not a concern for a baseline).
FINGERPRINT_DIGITS = 16


def _raw_bytes(t: "Tensor") -> bytes:
    """Return the bytes of ``t``'s values in row-major order, read off a contiguous host copy."""
    t = t.detach()
    if t.is_meta:
        return b"meta"  # no values to read: the name, dtype and shape are all there is
    if t.device.type != "cpu":
        t = t.to("cpu")
    t = t.contiguous()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()) if t.numel() else b""


def fingerprint_tensors(named: Iterable[tuple[str, "Tensor"]]) -> str:
    """Return the fingerprint of named tensors: their names, dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for name, t in named:
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)};".encode())
        digest.update(_raw_bytes(t))
    return digest.hexdigest()[:FINGERPRINT_DIGITS]


def fingerprint_state(state: Mapping[str, Any]) -> str:
    """Return the fingerprint of a state dict (non-tensor entries, such as extra state, by repr)."""
    import torch

    tensors = [(k, v) for k, v in state.items() if isinstance(v, torch.Tensor)]
    other = [(k, repr(v)) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    head = fingerprint_tensors(tensors)
    if not other:
        return head
    return hashlib.sha256((head + repr(other)).encode()).hexdigest()[:FINGERPRINT_DIGITS]


def fingerprint_model(model: "nn.Module") -> str:
    """Return the fingerprint of a model's parameters and persistent buffers (its state dict)."""
    return fingerprint_state(model.state_dict())


#: Values of each batch a stream's fingerprint reads, at most (spread evenly over the batch).
STREAM_SAMPLE = 1 << 16


class StreamFingerprint:
    """The fingerprint of a check's inputs, built batch by batch as a stream goes past.

    One tensor (``whole=True``) is hashed whole, as :func:`fingerprint_tensors` does. A stream of
    batches is read once and may be the size of a data set, so each batch contributes its shape,
    dtype, labels and an even sample of :data:`STREAM_SAMPLE` of its values: any change of the data
    that matters to a baseline (other images, another order, other labels, other sizes) changes it,
    at a cost that stays small beside the model's forward passes.
    """

    def __init__(self, *, whole: bool) -> None:
        self.whole = whole
        self._digest = hashlib.sha256()
        self._tensors: list[tuple[str, "Tensor"]] = []

    def add(self, images: "Tensor", labels: "Tensor | None") -> None:
        """Take one batch (as the check framed it) and its labels into the fingerprint."""
        if self.whole:
            self._tensors.append(("inputs", images))
            return
        flat = images.detach().reshape(-1)
        step = max(1, flat.numel() // STREAM_SAMPLE)
        self._digest.update(f"{images.dtype}|{tuple(images.shape)};".encode())
        self._digest.update(_raw_bytes(flat[::step]))
        if labels is not None:
            self._digest.update(_raw_bytes(labels))

    def digest(self) -> str:
        """Return the fingerprint of everything added so far."""
        if self.whole:
            return fingerprint_tensors(self._tensors)
        return self._digest.hexdigest()[:FINGERPRINT_DIGITS]
