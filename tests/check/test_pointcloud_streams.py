"""Point-cloud and graph checks over a loader: every graph is compared, and the figures are the set's.

The statistics of each element are additive over graphs, as the image checks' streams are, so a
loader's trial is exactly the worst (``max_abs``) and the pooled mean (``mean_abs``) of the same trial
run on each graph alone.
"""

from __future__ import annotations

import pytest
import torch
from cloud_models import coordinate_mlp, egnn, graph, index_embedding, message_passing
from torch.utils.data import DataLoader

from pytest_equivariance import (
    EquivarianceUsageError,
    check_e3_equivariant,
    check_e3_invariant,
    check_permutation_equivariant,
    check_permutation_invariant,
)

EGNN_FIELDS = {"input_fields": ("points", "4x0e", None), "output_fields": ("points", "4x0e")}


def graphs(count=3, nodes=(5, 8, 6)):
    return [graph(nodes=nodes[i % len(nodes)], seed=i) for i in range(count)]


def test_a_loader_of_graphs_gives_the_worst_and_pooled_figures_of_each_graph():
    data = [g[0] for g in graphs()]  # positions only: an MLP on coordinates fails
    loader = DataLoader(data, batch_size=None)
    streamed = check_e3_equivariant(coordinate_mlp(), loader, output_fields="points", group="SO3", trials=4,
                                    localize=False)
    alone = [check_e3_equivariant(coordinate_mlp(), pos, output_fields="points", group="SO3", trials=4,
                                  localize=False) for pos in data]
    assert not streamed.passed
    for i, trial in enumerate(streamed.trials):
        assert trial.transform == alone[0].trials[i].transform  # rotations: the same elements on every graph
        assert trial.max_abs == max(r.trials[i].max_abs for r in alone)
        # mean_abs pools every coordinate: the graphs weigh by their nodes
        pooled = sum(r.trials[i].mean_abs * len(pos) for r, pos in zip(alone, data)) / sum(map(len, data))
        assert trial.mean_abs == pytest.approx(pooled, rel=1e-9)
    assert streamed.notes[0] == ("streamed 3 graphs from the loader; the same rotations act on every graph, "
                                 "translations scaled to each")


def test_an_equivariant_model_passes_a_loader_and_one_bad_graph_fails_it():
    items = graphs(4)  # of 5, 8, 6 and 5 nodes
    assert check_e3_equivariant(egnn(), iter(items), **EGNN_FIELDS, trials=8).passed

    class BreaksOnLarge(torch.nn.Module):  # equivariant, except on graphs of more than 7 nodes
        def __init__(self):
            super().__init__()
            self.inner = egnn()

        def forward(self, pos, h, edge_index):
            moved, features = self.inner(pos, h, edge_index)
            return (moved + pos[:, :1] if len(pos) > 7 else moved), features

    assert check_e3_equivariant(BreaksOnLarge(), items[0], **EGNN_FIELDS, trials=4).passed  # 5 nodes alone
    result = check_e3_equivariant(BreaksOnLarge(), (g for g in items), **EGNN_FIELDS, trials=4, localize=False)
    assert not result.passed and result.worst_error > 0.01


def test_the_profile_is_measured_on_the_graph_that_broke_it():
    class Skewed(torch.nn.Module):  # adds x to every coordinate: not rotation-equivariant
        def forward(self, pos):
            return pos + pos[:, :1]

    class SkewsLarge(torch.nn.Module):  # equivariant on graphs of up to 7 nodes
        def __init__(self):
            super().__init__()
            self.inner, self.skew = egnn(), Skewed()

        def forward(self, pos, h, edge_index):
            moved, features = self.inner(pos, h, edge_index)
            return (self.skew(moved) if len(pos) > 7 else moved), features

    result = check_e3_equivariant(SkewsLarge(), iter(graphs(3)), **EGNN_FIELDS, group="SO3", trials=4)
    assert not result.passed
    assert result.profile is not None and result.profile.culprit.qualname == "skew"  # on the 8-node graph


def test_translations_are_scaled_to_each_cloud_so_a_correct_model_passes_clouds_of_any_size():
    class Centred(torch.nn.Module):  # positions relative to their centroid: E(3)-equivariant as a vector field
        def forward(self, pos):
            return pos - pos.mean(0)

    big_first = [graph(nodes=8, seed=0)[0] * 1000, graph(nodes=6, seed=1)[0]]
    for clouds in (big_first, big_first[::-1]):
        result = check_e3_equivariant(Centred(), iter(clouds), output_fields="1x1o", trials=16)
        assert result.passed, result.worst_error  # unit-size clouds are not moved by thousand-unit translations


def test_node_permutations_are_drawn_for_each_graph_of_its_size():
    items = [(h, edges) for _, h, edges in graphs(3)]
    passed = check_permutation_equivariant(message_passing(), iter(items), trials=6)
    assert passed.passed and passed.worst_error < 1e-5
    assert len(passed.trials[0].params["nodes"]) == 5  # the first graph's permutation is the one kept
    assert "each graph's permutations are drawn" in passed.notes[0]
    failed = check_permutation_equivariant(index_embedding(), iter(items), trials=6, localize=False)
    assert not failed.passed


def test_a_pyg_loader_streams_batches_of_graphs():
    pyg = pytest.importorskip("torch_geometric")
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader as GraphLoader

    data = [Data(x=h, edge_index=edges, pos=pos) for pos, h, edges in graphs(5)]

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = message_passing()

        def forward(self, batch):
            out = self.inner(batch.x, batch.edge_index)
            return torch.zeros(batch.num_graphs, out.shape[1]).index_add_(0, batch.batch, out)

    assert pyg is not None
    result = check_permutation_invariant(Pooled(), GraphLoader(data, batch_size=2), trials=4)
    assert result.passed and result.notes[0].startswith("streamed 3 graphs from the loader")  # 3 batches
    class Summed(Pooled):  # one Data at a time: no batch vector
        def forward(self, data):
            return self.inner(data.x, data.edge_index).sum(0)

    listed = check_permutation_invariant(Summed(), data, trials=4)  # a list of Data is a set of graphs too
    assert listed.passed and listed.notes[0].startswith("streamed 5 graphs from the loader")


def test_limit_reads_the_first_items_of_a_loader():
    items = [(h, edges) for _, h, edges in graphs(5)]
    result = check_permutation_equivariant(message_passing(), items, trials=2, limit=2)  # a list of tuples
    assert result.notes[0].startswith("streamed 2 graphs from the loader")
    with pytest.raises(EquivarianceUsageError, match=r"limit=0; pass a positive number of the loader's items"):
        check_permutation_equivariant(message_passing(), iter(items), limit=0)


def test_a_loader_misuse_is_one_sentence():
    with pytest.raises(EquivarianceUsageError, match="got a loader that yields no graph; pass one that yields"):
        check_permutation_equivariant(message_passing(), iter([]))
    _, h, edges = graph()

    class Shapes(torch.nn.Module):  # one output, then two
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, h, edge_index):
            self.calls += 1
            return h if h.shape[0] == 8 else (h, h)

    items = [(h, edges), (h[:5], edges[:, (edges < 5).all(0)])]
    with pytest.raises(EquivarianceUsageError, match=r"on item 2 of the loader but output on the first; return the "
                                                     r"same outputs for every graph"):
        check_permutation_equivariant(Shapes(), iter(items), trials=2)
    with pytest.raises(EquivarianceUsageError, match=r"In item 2 of the loader, input_fields has 3 entries for 1"):
        pos, h, edges = graph()

        class Norms(torch.nn.Module):  # takes the positions alone or with features and edges
            def forward(self, pos, *rest):
                return pos.norm(dim=-1)

        check_e3_invariant(Norms(), iter([(pos, h, edges), pos]), input_fields=("points", "4x0e", None))
    with pytest.raises(EquivarianceUsageError, match=r"a graph of no nodes \(item 2 of the loader\)"):
        check_permutation_equivariant(message_passing(), iter([(h, edges), (h[:0], edges[:, :0])]), trials=2)
