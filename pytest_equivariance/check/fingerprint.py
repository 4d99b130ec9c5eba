"""Short fingerprints of a model's weights and of a check's inputs, for robustness baselines.

A baseline compares a run's figures with committed ones; that only means something when both runs
checked the same weights on the same inputs. A fingerprint says whether they did, in 16 hex digits.

The digest is exact — it changes with any bit of any tensor — and cheap: each tensor is read as
16-bit words (a bit-for-bit reinterpretation, not a conversion) and reduced *on its own device* to
two integers, a plain sum and a position-weighted sum. Integer sums are exact and do not depend on
the order of the reduction, so the CPU and a GPU give the same digest for the same bits. Only those
integers, with each tensor's name, dtype and shape, leave the device, to be hashed with SHA-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor, nn

#: Length of a fingerprint in hex digits (64 bits: collisions are not a concern for a baseline).
FINGERPRINT_DIGITS = 16
#: Words reduced at once; bounds the temporary int64 copy to 128 MiB whatever the tensor's size.
_CHUNK = 1 << 24
#: Position weights stay below 2**16, so a word times its weight stays below 2**32 and a chunk's sum
#: below 2**56: no int64 overflow.
_WEIGHT_MODULUS = 65521


def _words(t: "Tensor") -> "Tensor":
    """Return the bits of ``t`` as a flat tensor of non-negative int64 words (8 or 16 bits each)."""
    import torch

    t = t.detach()
    if t.is_complex():
        t = torch.view_as_real(t)
    t = t.contiguous().reshape(-1)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    if t.element_size() == 1:
        return t.view(torch.uint8)
    return t.view(torch.int16)


def tensor_digest(t: "Tensor") -> tuple[int, int]:
    """Return ``(sum, weighted sum)`` of the bits of ``t``, reduced on ``t``'s own device."""
    import torch

    words = _words(t)
    plain = weighted = 0
    for start in range(0, words.numel(), _CHUNK):
        chunk = words[start : start + _CHUNK].to(torch.int64) & 0xFFFF
        position = torch.arange(start, start + chunk.numel(), device=chunk.device, dtype=torch.int64)
        weight = (position * 40503 + 1) % _WEIGHT_MODULUS + 1
        plain += int(chunk.sum())
        weighted += int((chunk * weight).sum())
    return plain, weighted


def fingerprint_tensors(named: Iterable[tuple[str, "Tensor"]]) -> str:
    """Return the fingerprint of named tensors: their names, dtypes, shapes and bits, in order."""
    digest = hashlib.sha256()
    for name, t in named:
        plain, weighted = tensor_digest(t)
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|{plain}|{weighted};".encode())
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
