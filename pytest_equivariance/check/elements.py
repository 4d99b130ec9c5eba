"""Elements that act on point clouds and graphs: E(3) and its subgroups, and node or edge permutations.

Each family draws ``k`` elements from a seed and acts on all of them at once: on the model's inputs
(:meth:`on_inputs`, every transformed tensor as ``(k, ...)``) and on a reference output leaf
(:meth:`on_output`, what the model's output on each transformed input should be). The actions are
computed in float64 and the inputs cast back to their own dtype; expected outputs stay float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance.check import so3
from pytest_equivariance.check.graphs import GraphInputs
from pytest_equivariance.check.irreps import INVARIANT, Field

if TYPE_CHECKING:
    from torch import Tensor

#: The E(3) groups a check draws from: their printed name, whether they hold improper elements
#: (inversions) and translations.
E3_GROUPS: dict[str, tuple[str, bool, bool]] = {
    "E3": ("E(3)", True, True),
    "SE3": ("SE(3)", False, True),
    "O3": ("O(3)", True, False),
    "SO3": ("SO(3)", False, False),
}

#: What a permutation check permutes.
PERMUTED = ("nodes", "edges")


@dataclass
class EuclideanElements:
    """``k`` elements ``x ↦ R x + t`` of an E(3) group; ``t`` moves only fields declared "points"."""

    group: str
    rotations: "Tensor"  # (k, 3, 3) float64
    translations: "Tensor"  # (k, 3) float64
    input_fields: dict[Any, Field]
    output_fields: dict[str, Field]
    labels: list[str] = field(default_factory=list)

    @classmethod
    def draw(cls, group: str, count: int, seed: int, scale: float, input_fields: dict[Any, Field],
             output_fields: dict[str, Field]) -> "EuclideanElements":
        """Draw ``count`` Haar elements of ``group`` from ``seed``; translations are normal with std ``scale``."""
        import torch

        name, improper, translated = E3_GROUPS[group]
        rotations = so3.random_orthogonal(count, seed) if improper else so3.random_rotations(count, seed)
        if translated:
            generator = torch.Generator().manual_seed(seed + 2)
            translations = torch.randn(count, 3, dtype=torch.float64, generator=generator) * scale
        else:
            translations = torch.zeros(count, 3, dtype=torch.float64)
        labels = [f"{name} #{i}" for i in range(count)]
        return cls(group, rotations, translations, input_fields, output_fields, labels)

    def params(self, i: int) -> dict[str, Any]:
        """The element's parameters as a baseline stores them: the matrix, its determinant, the translation."""
        R = self.rotations[i]  # noqa: N806
        return {"rotation": [[round(v, 12) for v in row] for row in R.tolist()],
                "det": round(float(R.det())), "translation": [round(v, 12) for v in self.translations[i].tolist()]}

    def on_inputs(self, graph: GraphInputs, rows: slice) -> dict[Any, "Tensor"]:
        """Every declared input tensor under elements ``rows``, as ``(k, ...)`` in its own dtype."""
        R, t = self.rotations[rows], self.translations[rows]  # noqa: N806
        out = {}
        for key, fld in self.input_fields.items():
            if fld.kind != INVARIANT:
                value = graph.tensors[key]
                out[key] = fld.act(R.to(value.device), value, t.to(value.device)).to(value.dtype)
        return out

    def on_output(self, path: str, reference: "Tensor", rows: slice) -> "Tensor":
        """What output leaf ``path`` should be under elements ``rows``: ``(k, ...)`` float64."""
        import torch

        fld = self.output_fields.get(path, Field(INVARIANT))
        R, t = self.rotations[rows].to(reference.device), self.translations[rows].to(reference.device)  # noqa: N806
        return fld.act(R, reference, t).to(torch.float64)

    def linear_part(self, i: int) -> "EuclideanElements":
        """Element ``i`` without its translation (the per-layer profile measures under it)."""
        import torch

        return EuclideanElements(self.group, self.rotations[i:i + 1], torch.zeros(1, 3, dtype=torch.float64),
                                 self.input_fields, self.output_fields, [self.labels[i]])


@dataclass
class Permutations:
    """``k`` random permutations of a graph's nodes (``edge_index`` renumbered) or of its edges (reordered).

    A PyG Batch is permuted within each of its graphs, so every node stays in the graph it belongs to.
    """

    permuted: str  # "nodes" | "edges"
    orders: "Tensor"  # (k, n) long: copy i's item j is the original item orders[i, j]
    output_roles: dict[str, str]  # output leaf -> "node" | "edge" | "graph"
    labels: list[str] = field(default_factory=list)

    @classmethod
    def draw(cls, permuted: str, graph: GraphInputs, count: int, seed: int,
             output_roles: dict[str, str]) -> "Permutations":
        """Draw ``count`` uniform permutations of ``graph``'s nodes or edges from ``seed``."""
        import torch

        generator = torch.Generator().manual_seed(seed)
        segments = graph.segments() if permuted == "nodes" else graph.edge_segments()
        size = graph.nodes if permuted == "nodes" else graph.edges
        orders = torch.empty(count, size, dtype=torch.long)
        for i in range(count):
            for start, stop in segments:
                orders[i, start:stop] = torch.randperm(stop - start, generator=generator) + start
        name = "node" if permuted == "nodes" else "edge"
        return cls(permuted, orders, output_roles, [f"{name} permutation #{i}" for i in range(count)])

    def params(self, i: int) -> dict[str, Any]:
        return {self.permuted: self.orders[i].tolist()}

    def on_inputs(self, graph: GraphInputs, rows: slice) -> dict[Any, "Tensor"]:
        """Every input tensor the permutation reorders or renumbers, as ``(k, ...)``."""
        import torch

        orders = self.orders[rows]
        moved = ("node", "batch") if self.permuted == "nodes" else ("edge",)  # a batch vector moves with its nodes
        out = {}
        for key, t in graph.tensors.items():
            index = orders.to(t.device)
            if graph.roles[key] in moved and key != "ptr" and t.dim() and t.shape[0] == index.shape[1]:
                out[key] = t[index]
            elif graph.roles[key] == "edge_index" and self.permuted == "nodes":
                inverse = torch.empty_like(index)
                inverse.scatter_(1, index, torch.arange(index.shape[1], device=t.device).expand_as(index))
                out[key] = torch.stack([inverse.gather(1, t[0].expand(len(index), -1)),
                                        inverse.gather(1, t[1].expand(len(index), -1))], dim=1)
            elif graph.roles[key] == "edge_index":
                out[key] = t[:, index].transpose(0, 1)
        return out

    def on_output(self, path: str, reference: "Tensor", rows: slice) -> "Tensor":
        """What output leaf ``path`` should be: reordered when it is per node (per edge) and those move."""
        import torch

        orders = self.orders[rows].to(reference.device)
        role = "node" if self.permuted == "nodes" else "edge"
        if self.output_roles.get(path) == role:
            return reference[orders].to(torch.float64)
        return reference.expand(len(orders), *reference.shape).to(torch.float64)
