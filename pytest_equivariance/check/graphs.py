"""The graph space: a model's inputs as nodes, edges and graph-level values, and unions of copies.

A point-cloud or graph model takes its inputs in one of four shapes, and :class:`GraphInputs` reads all
of them the same way:

- one tensor (positions ``(N, 3)``), called ``model(x)``;
- a tuple of tensors (and other values), called ``model(*args)``; keys are the positions 0, 1, ...;
- a mapping (nequip's ``AtomicDataDict`` style), called ``model(mapping)``; keys are the mapping's;
- a PyG ``Data`` or ``Batch``, called ``model(data)``; keys are its attributes.

Each tensor is *per node* (its first dim is the number of nodes ``N``), *per edge* (the number of
edges ``E``), the ``edge_index`` ``(2, E)``, or *per graph* (anything else). PyG objects say it by their
own rule (``is_node_attr`` / ``is_edge_attr``); otherwise sizes decide, and when ``N == E`` a tensor
counts as per node unless named in ``edge_attrs``.

A check runs many transformed copies at once as one *disjoint union*: per-node and per-edge tensors
concatenated, ``edge_index`` offset by ``N`` per copy (PyG's ``Batch.from_data_list`` for PyG
objects). Per-graph tensors have no union without a batch vector the model reads, so such inputs run
copy by copy. A :class:`GraphSource` is what a check compares: one graph's inputs, or a loader of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    from torch import Tensor

def is_pyg(value: Any) -> bool:
    """Whether ``value`` is a PyG ``Data`` or ``Batch`` (by its class, without importing PyG)."""
    return any(c.__module__.startswith("torch_geometric.data") and c.__name__ in ("Data", "BaseData")
               for c in type(value).__mro__)


def _is_batch(value: Any) -> bool:
    return is_pyg(value) and hasattr(value, "ptr") and getattr(value, "ptr", None) is not None


@dataclass
class GraphInputs:
    """A model's inputs as keyed tensors with roles: what an element acts on, and how copies unite."""

    form: str  # "tensor" | "tuple" | "mapping" | "pyg"
    original: Any
    tensors: dict[Any, "Tensor"]
    nodes: int
    edges: int
    edge_index: Any | None  # the key of edge_index, when there is one
    roles: dict[Any, str] = field(default_factory=dict)  # key -> "node" | "edge" | "graph" | "edge_index"

    @classmethod
    def read(
        cls, inputs: Any, *, positions: Any = None, edge_index: Any = None, edge_attrs: Sequence[Any] = (),
    ) -> "GraphInputs":
        """Return ``inputs`` read as a graph; ``positions`` / ``edge_index`` name keys when they are not inferred."""
        import torch

        if isinstance(inputs, torch.Tensor):
            form, tensors = "tensor", {0: inputs}
        elif is_pyg(inputs):
            form = "pyg"
            tensors = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        elif isinstance(inputs, Mapping):
            form, tensors = "mapping", {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        elif isinstance(inputs, (tuple, list)):
            form, tensors = "tuple", {i: v for i, v in enumerate(inputs) if isinstance(v, torch.Tensor)}
        else:
            raise EquivarianceUsageError(
                f"The inputs are {type(inputs).__name__}, not a graph; pass positions as a tensor, a tuple of the "
                f"model's arguments, a mapping, or a PyG Data/Batch."
            )
        if not tensors:
            raise EquivarianceUsageError(
                "The inputs hold no tensor; pass the model's positions and features (a tuple, a mapping or a PyG Data)."
            )
        for name, key in (("positions", positions), ("edge_index", edge_index)):
            if key is not None and (not isinstance(key, (str, int)) or key not in tensors):
                raise EquivarianceUsageError(
                    f"{name}={shown(key)} names no tensor of the inputs (their keys: "
                    f"{', '.join(map(repr, tensors))}); name one of those."
                )
        if edge_index is None:
            edge_index = _find_edge_index(tensors)
        nodes = _count_nodes(inputs, form, tensors, positions, edge_index)
        graph = cls(form, inputs, tensors, nodes, 0, edge_index)
        if edge_index is not None:
            graph.edges = _check_edge_index(tensors[edge_index], nodes, graph.where(edge_index))
        graph.roles = {key: graph._role(key, edge_attrs) for key in tensors}
        return graph

    def where(self, key: Any) -> str:
        """How a report names the input ``key``: ``inputs[0]``, ``inputs['pos']``, ``data.pos``."""
        if self.form == "tensor":
            return "inputs"
        return f"data.{key}" if self.form == "pyg" else f"inputs[{key!r}]"

    def _role(self, key: Any, edge_attrs: Sequence[Any]) -> str:
        t = self.tensors[key]
        if key == self.edge_index:
            return "edge_index"
        if self.form == "pyg":
            if key in ("batch", "ptr"):
                return "batch"
            if self.original.is_edge_attr(key) and self.edges:
                return "edge"
            return "node" if self.original.is_node_attr(key) else "graph"
        first = t.shape[0] if t.dim() else None
        if first == self.edges and self.edges and (key in edge_attrs or first != self.nodes):
            return "edge"
        return "node" if first == self.nodes else "graph"

    @property
    def can_unite(self) -> bool:
        """Whether copies can run as one disjoint union (no per-graph tensor outside PyG's batching)."""
        return self.form == "pyg" or all(role != "graph" for role in self.roles.values())

    def build(self, values: Mapping[Any, "Tensor"]) -> Any:
        """Return the model's input with the tensors of ``values`` in place of the original ones."""
        if self.form == "tensor":
            return values.get(0, self.original)
        if self.form == "tuple":
            return type(self.original)(values.get(i, v) for i, v in enumerate(self.original))
        if self.form == "mapping":
            return {**self.original, **values}
        data = self.original.clone()
        for key, value in values.items():
            setattr(data, key, value)
        return data

    def unite(self, copies: Mapping[Any, "Tensor"], count: int) -> Any:
        """Return one input holding ``count`` copies as a disjoint union; ``copies[key]`` is ``(count, ...)``.

        Keys not in ``copies`` are the same in every copy.
        """
        import torch

        if self.form == "pyg":
            from torch_geometric.data import Batch

            parts = [self.build({k: v[i] for k, v in copies.items()}) for i in range(count)]
            if _is_batch(self.original):
                parts = [graph for part in parts for graph in part.to_data_list()]
            return Batch.from_data_list(parts)
        united = {}
        for key, t in self.tensors.items():
            stacked = copies[key] if key in copies else t.expand(count, *t.shape)
            if self.roles[key] == "edge_index":
                offsets = torch.arange(count, device=t.device, dtype=t.dtype).view(count, 1, 1) * self.nodes
                united[key] = (stacked + offsets).transpose(0, 1).reshape(2, -1)
            else:
                united[key] = stacked.reshape(-1, *t.shape[1:])
        return self.build(united)

    def copy(self, copies: Mapping[Any, "Tensor"], index: int) -> Any:
        """Return the input of copy ``index`` alone."""
        return self.build({k: v[index] for k, v in copies.items()})

    def segments(self) -> list[tuple[int, int]]:
        """The node ranges of the graphs in the input: one for a single graph, ``ptr``'s for a PyG Batch."""
        if _is_batch(self.original):
            ptr = self.original.ptr.tolist()
            return list(zip(ptr[:-1], ptr[1:]))
        return [(0, self.nodes)]

    def edge_segments(self) -> list[tuple[int, int]]:
        """The edge ranges of the graphs (a PyG Batch keeps each graph's edges together)."""
        if _is_batch(self.original) and self.edge_index is not None:
            owner = self.original.batch[self.tensors[self.edge_index][0]]
            counts = [int(c) for c in owner.bincount(minlength=self.original.num_graphs).tolist()]
            starts = [sum(counts[:i]) for i in range(len(counts))]
            return [(s, s + c) for s, c in zip(starts, counts)]
        return [(0, self.edges)]


class GraphSource:
    """The graphs a check compares: one input, or every item of a loader (read as they are needed)."""

    def __init__(self, first: GraphInputs, rest: Iterator[Any], streamed: bool, read: Callable[[Any, int], GraphInputs]):
        self.first, self._rest, self.streamed, self._read = first, rest, streamed, read
        self.count = 0

    @classmethod
    def open(cls, inputs: Any, entry: str, dev: Any, *, limit: int | None = None, **keys: Any) -> "GraphSource":
        """Read ``inputs`` — a graph, or a loader of graphs (:func:`is_graph_source`), of which the first
        ``limit`` items."""
        def read(value: Any, index: int) -> GraphInputs:
            graph = GraphInputs.read(value, **keys)
            where = f" (item {index + 1} of the loader)" if streamed else ""
            for key, t in graph.tensors.items():
                if t.is_meta:
                    raise EquivarianceUsageError(
                        f"{entry} got {graph.where(key)}{where} on the meta device, which holds no values to "
                        f"compare; pass tensors on a real device.")
            if graph.nodes == 0:
                raise EquivarianceUsageError(f"{entry} got a graph of no nodes{where}; pass at least one point.")
            if any(t.device != dev for t in graph.tensors.values()):
                moved = value.to(dev) if graph.form == "pyg" else graph.build(
                    {k: t.to(dev) for k, t in graph.tensors.items()})
                graph = GraphInputs.read(moved, **{**keys, "edge_index": graph.edge_index})
            return graph

        from pytest_equivariance.check.batches import require_shards

        streamed = is_graph_source(inputs)
        if not streamed:
            return cls(read(inputs, 0), iter(()), False, read)
        require_shards(inputs, entry, "graph")
        items = iter(inputs) if limit is None else itertools.islice(inputs, limit)
        first = next(items, None)
        if first is None:
            raise EquivarianceUsageError(f"{entry} got a loader that yields no graph; pass one that yields at least one.")
        return cls(read(first, 0), items, True, read)

    def __iter__(self) -> Iterator[GraphInputs]:
        self.count = 1
        yield self.first
        for index, value in enumerate(self._rest, start=1):
            self.count = index + 1
            yield self._read(value, index)


def is_graph_source(inputs: Any) -> bool:
    """Whether ``inputs`` is a loader of graphs rather than one graph: an iterable that is no tensor, tuple,
    mapping or PyG object (those are one graph's inputs), nor a list of the model's arguments; a list
    of PyG objects, of mappings or of tuples (each one graph's inputs) is a set of graphs."""
    import torch

    if isinstance(inputs, list):
        return bool(inputs) and all(is_pyg(v) or isinstance(v, (Mapping, tuple)) for v in inputs)
    if isinstance(inputs, (torch.Tensor, tuple, Mapping, str, bytes)) or is_pyg(inputs):
        return False
    return isinstance(inputs, Iterable)


def _find_edge_index(tensors: Mapping[Any, "Tensor"]) -> Any | None:
    """The key of ``edge_index``: so named, or the one integer tensor of shape ``(2, E)``."""
    if "edge_index" in tensors:
        return "edge_index"
    found = [k for k, t in tensors.items() if t.dim() == 2 and t.shape[0] == 2 and not t.is_floating_point()
             and not t.is_complex() and t.dtype.is_signed]
    return found[0] if len(found) == 1 else None


def _count_nodes(inputs: Any, form: str, tensors: Mapping[Any, "Tensor"], positions: Any, edge_index: Any) -> int:
    if form == "pyg" and inputs.num_nodes is not None:
        return int(inputs.num_nodes)
    if positions is not None:
        return int(tensors[positions].shape[0])
    for key in ("pos", "positions", "x"):
        if key in tensors and tensors[key].dim():
            return int(tensors[key].shape[0])
    for key, t in tensors.items():
        if key != edge_index and t.is_floating_point() and t.dim():
            return int(t.shape[0])
    raise EquivarianceUsageError(
        "No input gives the number of nodes (no floating-point tensor beside edge_index); pass positions or "
        "node features, or name them with positions=."
    )


def _check_edge_index(t: "Tensor", nodes: int, where: str) -> int:
    """Return the number of edges, raising in one sentence unless ``t`` is an ``edge_index`` for ``nodes`` nodes."""
    if t.dim() != 2 or t.shape[0] != 2 or t.is_floating_point():
        raise EquivarianceUsageError(
            f"{where} is the edge_index but has shape {tuple(t.shape)} ({t.dtype}); pass integer node indices of "
            f"shape (2, E), as PyG does."
        )
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= nodes):
        raise EquivarianceUsageError(
            f"{where} holds node indices from {int(t.min())} to {int(t.max())}, outside 0..{nodes - 1} for the "
            f"{nodes} nodes; fix edge_index, or pass positions= naming the tensor of all the nodes."
        )
    return int(t.shape[1])
