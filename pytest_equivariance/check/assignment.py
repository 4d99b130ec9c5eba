"""Optimal assignment (the Hungarian method): the pairing of two sets that minimises a total cost.

Detection sets are compared by matching them first (:mod:`.detections`); this is the solver, with no
dependency beyond torch. It is the shortest-augmenting-path form of Kuhn and Munkres' method with
potentials (Jonker & Volgenant's refinement, as in scipy's ``linear_sum_assignment``): ``O(n² m)``
for an ``n × m`` matrix, each step a vector operation over the columns, so sets of a hundred
detections solve in milliseconds.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


def linear_sum_assignment(cost: "Tensor") -> list[tuple[int, int]]:
    """Return the ``(row, column)`` pairs of a minimum-cost assignment of the ``n × m`` matrix ``cost``.

    Every row is assigned when ``n <= m`` (else every column): ``min(n, m)`` pairs, sorted by row.
    Costs must be finite; forbid a pair by giving it a cost larger than any allowed total.
    """
    import torch

    if cost.dim() != 2:
        raise ValueError(f"cost must be a matrix, got shape {tuple(cost.shape)}")
    if cost.numel() == 0:
        return []
    transposed = cost.shape[0] > cost.shape[1]
    c = (cost.T if transposed else cost).detach().to(torch.float64, copy=True).cpu()
    if not bool(torch.isfinite(c).all()):
        raise ValueError("cost must be finite; forbid a pair with a large finite cost instead")
    n, m = c.shape
    # Potentials u (rows) and v (columns, plus a virtual column 0); match[j] is the 1-based row of
    # column j (0: free), way[j] the column before j on the shortest path.
    u = torch.zeros(n + 1, dtype=torch.float64)
    v = torch.zeros(m + 1, dtype=torch.float64)
    match = torch.zeros(m + 1, dtype=torch.long)
    a = torch.zeros(n + 1, m + 1, dtype=torch.float64)
    a[1:, 1:] = c
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = torch.full((m + 1,), math.inf, dtype=torch.float64)
        used = torch.zeros(m + 1, dtype=torch.bool)
        way = torch.zeros(m + 1, dtype=torch.long)
        while True:
            used[j0] = True
            i0 = int(match[j0])
            # Reduced costs of the free columns from row i0, relaxing the path lengths.
            reduced = a[i0] - u[i0] - v
            better = (~used) & (reduced < minv)
            minv = torch.where(better, reduced, minv)
            way[better] = j0
            candidates = minv.masked_fill(used, math.inf)
            j1 = int(torch.argmin(candidates))
            delta = candidates[j1]
            # Shift the potentials along the tree so that the new column's edge becomes tight.
            u[match[used]] += delta
            v = torch.where(used, v - delta, v)
            minv = torch.where(used, minv, minv - delta)
            j0 = j1
            if int(match[j0]) == 0:
                break
        path = way.tolist()
        while j0:  # flip the augmenting path
            j1 = path[j0]
            match[j0] = match[j1]
            j0 = j1
    rows = match.tolist()
    pairs = [(rows[j] - 1, j - 1) for j in range(1, m + 1) if rows[j]]
    if transposed:
        pairs = [(col, row) for row, col in pairs]
    return sorted(pairs)
