"""Small point-cloud and graph models whose symmetries are known exactly, and graphs to run them on."""

from __future__ import annotations

import torch
from torch import nn


def graph(nodes: int = 8, features: int = 4, seed: int = 0, dtype: torch.dtype = torch.float32):
    """Positions ``(N, 3)``, node features ``(N, F)`` and a complete directed ``edge_index``."""
    generator = torch.Generator().manual_seed(seed)
    pos = torch.randn(nodes, 3, generator=generator, dtype=dtype)
    h = torch.randn(nodes, features, generator=generator, dtype=dtype)
    pairs = [(a, b) for a in range(nodes) for b in range(nodes) if a != b]
    return pos, h, torch.tensor(pairs).T.contiguous()


def _seeded(build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


class EGNNLayer(nn.Module):
    """Satorras et al. 2021: messages from features and squared distances (invariant), positions moved
    along relative positions (equivariant). E(3)-equivariant and node-permutation-equivariant."""

    def __init__(self, features: int = 4, hidden: int = 16) -> None:
        super().__init__()
        self.message = nn.Sequential(nn.Linear(2 * features + 1, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.weight = nn.Linear(hidden, 1)
        self.update = nn.Linear(features + hidden, features)

    def forward(self, pos, h, edge_index):
        i, j = edge_index
        d = pos[i] - pos[j]
        m = self.message(torch.cat([h[i], h[j], (d * d).sum(-1, keepdim=True)], -1))
        moved = pos + torch.zeros_like(pos).index_add_(0, i, d * self.weight(m))
        aggregated = torch.zeros(h.shape[0], m.shape[1], dtype=h.dtype, device=h.device).index_add_(0, i, m)
        return moved, self.update(torch.cat([h, aggregated], -1))


def egnn(features: int = 4, dtype: torch.dtype = torch.float32) -> EGNNLayer:
    return _seeded(lambda: EGNNLayer(features)).to(dtype)


def coordinate_mlp() -> nn.Module:
    """An MLP on raw coordinates, point by point: neither rotation- nor translation-equivariant."""
    return _seeded(lambda: nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3)))


class MessagePassing(nn.Module):
    """Sum of messages MLP(h_i, h_j) over incoming edges: node-permutation equivariant."""

    def __init__(self, features: int = 4) -> None:
        super().__init__()
        self.message = nn.Sequential(nn.Linear(2 * features, features), nn.Tanh())
        self.update = nn.Linear(2 * features, features)

    def forward(self, h, edge_index):
        src, dst = edge_index
        m = self.message(torch.cat([h[dst], h[src]], -1))
        return self.update(torch.cat([h, torch.zeros_like(h).index_add_(0, dst, m)], -1))


def message_passing() -> MessagePassing:
    return _seeded(MessagePassing)


class IndexEmbedding(MessagePassing):
    """The same layer with a learned embedding of each node's index added: breaks node permutations."""

    def __init__(self, features: int = 4) -> None:
        super().__init__(features)
        self.position = nn.Embedding(64, features)

    def forward(self, h, edge_index):
        return super().forward(h + self.position(torch.arange(h.shape[0])), edge_index)


def index_embedding() -> IndexEmbedding:
    return _seeded(IndexEmbedding)


class EdgeScores(nn.Module):
    """One score per edge from its endpoints and attribute: edge-permutation equivariant; with
    ``by_position`` the edge's index is added, which breaks it."""

    def __init__(self, features: int = 4, by_position: bool = False) -> None:
        super().__init__()
        self.score = nn.Linear(2 * features + 1, 2)
        self.by_position = by_position

    def forward(self, h, edge_index, edge_attr):
        src, dst = edge_index
        out = self.score(torch.cat([h[src], h[dst], edge_attr], -1))
        return out + torch.arange(out.shape[0], dtype=out.dtype)[:, None] if self.by_position else out


def edge_scores(by_position: bool = False) -> EdgeScores:
    return _seeded(lambda: EdgeScores(by_position=by_position))


class Centred(nn.Module):
    """Positions minus their mean, scaled by a weight: E(3)-equivariant up to the translation it removes
    (so checked under O(3)); the mean mixes every node, so copies of a union would mix."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, pos):
        return (pos - pos.mean(0)) * self.scale


class Energy(nn.Module):
    """Sum over pairs of a function of distances: one E(3)-invariant number per graph (0-d)."""

    def forward(self, pos):
        d = torch.cdist(pos, pos)
        return torch.exp(-d).sum()


class Forces(nn.Module):
    """Forces as minus the gradient of a pair energy, by autograd inside the forward (as force fields do):
    E(3)-equivariant vectors; ``tilt`` adds a fixed field along x, which breaks rotations."""

    def __init__(self, tilt: float = 0.0) -> None:
        super().__init__()
        self.tilt = tilt

    def forward(self, pos):
        pos = pos.detach().requires_grad_(True)
        energy = torch.exp(-torch.pdist(pos)).sum() + self.tilt * pos[:, 0].sum()
        (gradient,) = torch.autograd.grad(energy, pos)
        return -gradient


#: The irreps of the tensor-product convolution's node features and outputs.
TP_IRREPS_IN, TP_IRREPS_OUT = "4x0e + 2x1o", "4x0e + 2x1o + 1x2e"


def tensor_product_net() -> nn.Module:
    """An e3nn convolution: messages are a tensor product of the sender's features (``TP_IRREPS_IN``)
    with the edge's spherical harmonics up to l = 2, summed at the receiver (``TP_IRREPS_OUT``)."""
    from e3nn import o3

    class Convolution(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.irreps_sh = o3.Irreps.spherical_harmonics(2)
            self.tp = o3.FullyConnectedTensorProduct(TP_IRREPS_IN, self.irreps_sh, TP_IRREPS_OUT)

        def forward(self, pos, x, edge_index):
            src, dst = edge_index
            sh = o3.spherical_harmonics(self.irreps_sh, pos[src] - pos[dst], normalize=True,
                                        normalization="component")
            message = self.tp(x[src], sh)
            out = torch.zeros(x.shape[0], message.shape[1], dtype=message.dtype, device=message.device)
            return out.index_add_(0, dst, message)

    return _seeded(Convolution)
