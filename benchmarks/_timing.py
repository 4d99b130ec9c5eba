"""How the benchmarks time a call: the best of several runs, CUDA synchronised around each."""

from __future__ import annotations

import time
from typing import Any, Callable


def best(function: Callable[..., Any], repeats: int, *args: Any) -> tuple[float, Any]:
    """Return the shortest of ``repeats`` wall times of ``function(*args)`` in seconds, and its last value."""
    import torch

    times, value = [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        value = function(*args)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), value
