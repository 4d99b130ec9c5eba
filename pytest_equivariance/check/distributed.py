"""Checks under ``torchrun``: each process streams its shard, and the figures are all-reduced exactly.

When a ``torch.distributed`` process group is initialised, every rank reads its own shard of the
data set (a ``DistributedSampler`` in the user's loader), and the statistics behind every figure —
the counts behind each proportion, the sums behind each mean, the maxima and minima — are combined
across ranks before any figure is formed, so every rank (rank 0 reports) holds the figures of the
whole set, as if one process had read it. Nothing here runs without an initialised group.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def world() -> tuple[int, int]:
    """Return ``(rank, world size)``: ``(0, 1)`` unless a process group is initialised."""
    dist = sys.modules.get("torch.distributed")  # a process group needs it imported: never import torch here
    if dist is None or not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main_process() -> bool:
    """Whether this process reports and writes files: rank 0, or the only process."""
    return world()[0] == 0


def reduce(sums: Sequence[float], maxima: Sequence[float]) -> tuple[list[float], list[float]]:
    """Return ``sums`` summed and ``maxima`` maximised over every rank (unchanged in one process).

    Values travel as float64, whose 53-bit mantissa holds every count a data set can have exactly.
    Minima travel as negated maxima.
    """
    if world()[1] == 1:
        return list(sums), list(maxima)
    import torch
    import torch.distributed as dist

    device = _device()
    total = torch.tensor(list(sums), dtype=torch.float64, device=device)
    top = torch.tensor(list(maxima), dtype=torch.float64, device=device)
    if total.numel():
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    if top.numel():
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
    return total.tolist(), top.tolist()


def same_everywhere(n: int) -> bool:
    """Return whether every rank passed the same ``n`` (how many figures it will reduce, say)."""
    if world()[1] == 1:
        return True
    _, (top, neg_bottom) = reduce([], [float(n), -float(n)])
    return top == -neg_bottom


def _device() -> "torch.device":
    import torch
    import torch.distributed as dist

    # NCCL reduces only CUDA tensors; every other backend (gloo, mpi) takes host tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
