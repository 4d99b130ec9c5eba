"""Seed every global random generator a model build may draw from, and put them back afterwards.

A randomly initialised model is only the same model in two runs when its build drew the same
numbers. :func:`seeded` seeds torch's CPU generator (and the CUDA generators, which torch seeds
lazily), Python's :mod:`random` and numpy's legacy global state, runs the block, then restores the
states they had before, so a seeded test changes nothing for the tests after it.

Unlike :func:`torch.random.fork_rng`, it never initialises CUDA to save its state: the CUDA
generators are saved and restored only when CUDA was already initialised before the block, and
re-seeded with the process's own seed when the block initialised it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch, ``random`` and numpy seeded from ``seed``; restore their states after."""
    import torch

    numpy = _numpy()
    python_state = random.getstate()
    numpy_state = numpy.random.get_state() if numpy is not None else None
    torch_state = torch.random.get_rng_state()
    torch_initial = torch.initial_seed()
    # is_initialized() alone: it is False without CUDA, and never queries the driver (this runs per test).
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        random.seed(seed)
        if numpy is not None:
            numpy.random.seed(seed % 2**32)
        torch.manual_seed(seed)  # CPU now; every CUDA device now or when CUDA starts
        yield
    finally:
        random.setstate(python_state)
        if numpy is not None and numpy_state is not None:
            numpy.random.set_state(numpy_state)
        torch.random.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        elif torch.cuda.is_initialized():  # the block started CUDA: seed it as the process had
            torch.cuda.manual_seed_all(torch_initial)


def rng_states() -> dict[str, Any]:
    """Return a snapshot of the global generators' states, comparable with ``==``.

    What a test asserts to show that seeding leaked nothing: the snapshot before and after a block.
    """
    import torch

    numpy = _numpy()
    state: dict[str, Any] = {
        "random": random.getstate(),
        "torch": torch.random.get_rng_state().tolist(),
    }
    if numpy is not None:
        kind, keys, pos, has_gauss, cached = numpy.random.get_state()
        state["numpy"] = (kind, keys.tolist(), pos, has_gauss, cached)
    if torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state
