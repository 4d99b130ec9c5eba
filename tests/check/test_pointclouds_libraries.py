"""The point-cloud checks against e3nn's own test and on PyG models and data (optional dependencies)."""

from __future__ import annotations

import pytest
import torch
from cloud_models import TP_IRREPS_IN, TP_IRREPS_OUT, egnn, graph, tensor_product_net
from optional import require

from pytest_equivariance import check_e3_equivariant, check_permutation_equivariant, check_permutation_invariant
from pytest_equivariance.check import so3

IRREPS_IN, IRREPS_OUT = TP_IRREPS_IN, TP_IRREPS_OUT


def _tensor_product_net():
    require("e3nn")
    return tensor_product_net()


def _inputs(nodes=6):
    pos, _, edges = graph(nodes=nodes)
    x = torch.randn(nodes, 10, generator=torch.Generator().manual_seed(1))
    return pos, x, edges


def test_e3nn_network_passes_with_its_irreps_and_a_wrong_parity_fails():
    net, inputs = _tensor_product_net(), _inputs()
    result = check_e3_equivariant(net, inputs, input_fields=("points", IRREPS_IN, None), output_fields=IRREPS_OUT,
                                  trials=16)
    assert result.passed and result.worst_error < 1e-4
    o3 = require("e3nn.o3")  # e3nn's own Irreps objects declare as well as strings
    assert check_e3_equivariant(net, inputs, input_fields=("points", o3.Irreps(IRREPS_IN), None),
                                output_fields=o3.Irreps(IRREPS_OUT), trials=2).passed
    wrong = check_e3_equivariant(net, inputs, input_fields=("points", IRREPS_IN, None),
                                 output_fields="4x0e + 2x1e + 1x2e", trials=16, localize=True)
    assert not wrong.passed
    improper = [t for t in wrong.trials if t.params["det"] == -1]
    assert improper and all(not t.passed for t in improper)
    assert all(t.passed for t in wrong.trials if t.params["det"] == 1)  # only inversions see the parity
    assert wrong.profile.culprit is None and "output_fields" in wrong.profile.notes[0]


def test_figures_agree_with_e3nns_equivariance_error_on_the_same_elements(monkeypatch):
    o3 = require("e3nn.o3")
    from e3nn.util.test import equivariance_error

    net, inputs = _tensor_product_net(), _inputs()
    declared = "4x0e + 2x1e + 1x2e"  # a wrong parity: figures of order 1 under inversions, rounding otherwise
    ours = check_e3_equivariant(net, inputs, input_fields=("points", IRREPS_IN, None), output_fields=declared,
                                group="O3", trials=8, seed=4, localize=False)
    elements = so3.random_orthogonal(8, 4)
    for trial, element in zip(ours.trials, elements):
        monkeypatch.setattr(o3, "rand_matrix", lambda *a, element=element, **k: element.clone())
        theirs = equivariance_error(net, list(inputs), irreps_in=["cartesian_points", IRREPS_IN, None],
                                    irreps_out=[declared], ntrials=1, do_parity=False, do_translation=False)
        figure = float(theirs[(0, False)][0])
        # e3nn's D-matrices come from float32 generators: agreement to its precision, ~1e-6 of the outputs.
        assert abs(trial.max_abs - figure) <= 1e-5 + 1e-5 * figure
    assert max(t.max_abs for t in ours.trials) > 0.1


def test_pyg_gcnconv_passes_node_permutations_as_a_tuple_and_as_data():
    nn = require("torch_geometric.nn")
    from torch_geometric.data import Data

    _, h, _ = graph(nodes=7)
    ring = torch.tensor([[i, (i + 1) % 7] for i in range(7)] + [[i, (i + 3) % 7] for i in range(7)]).T
    edges = torch.cat([ring, ring.flip(0)], 1)  # not complete: on a complete graph every node's output is the same
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        conv = nn.GCNConv(4, 3)
    result = check_permutation_equivariant(conv, (h, edges), trials=8)
    assert result.passed and result.worst_error < 1e-5 and result.fields == {"output": "per node"}

    class OnData(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, data):
            return self.conv(data.x, data.edge_index)

    data = Data(x=h, edge_index=edges)
    assert check_permutation_equivariant(OnData(), data, trials=8).passed
    assert check_permutation_invariant(OnData(), data, trials=4).passed is False


def test_pyg_data_and_batches_run_as_one_batch_of_copies():
    require("torch_geometric")
    from torch_geometric.data import Batch, Data

    class OnData(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = egnn()

        def forward(self, data):
            return self.layer(data.pos, data.h, data.edge_index)

    pos, h, edges = graph(nodes=5)
    data = Data(pos=pos, h=h, edge_index=edges)
    fields = {"input_fields": {"pos": "points", "h": "4x0e"}, "output_fields": ("points", "4x0e")}
    result = check_e3_equivariant(OnData(), data, **fields, trials=8)
    assert result.passed and result.notes[0].startswith("ran the 8 elements as disjoint unions")
    assert result.fields["input.pos"] == "points"
    pos2, h2, edges2 = graph(nodes=4, seed=2)
    batch = Batch.from_data_list([data, Data(pos=pos2, h=h2, edge_index=edges2)])
    assert check_e3_equivariant(OnData(), batch, **fields, trials=4).passed
    permuted = check_permutation_equivariant(OnData(), batch, trials=4)
    assert permuted.passed
    for trial in permuted.trials:  # within each graph: nodes 0..4 stay in the first, 5..8 in the second
        assert sorted(trial.params["nodes"][:5]) == list(range(5))


@pytest.mark.parametrize("permute", ["nodes", "edges"])
def test_pyg_edge_attributes_follow_their_edges(permute):
    require("torch_geometric")
    from cloud_models import edge_scores
    from torch_geometric.data import Data

    class OnData(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scores = edge_scores()

        def forward(self, data):
            return self.scores(data.x, data.edge_index, data.edge_attr)

    _, h, edges = graph(nodes=5)
    data = Data(x=h, edge_index=edges, edge_attr=torch.randn(edges.shape[1], 1))
    result = check_permutation_equivariant(OnData(), data, permute=permute, trials=4)
    assert result.passed
    assert result.fields == {"output": "per edge"}
