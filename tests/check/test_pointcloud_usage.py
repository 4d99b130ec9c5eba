"""Wrong declarations of point-cloud and graph checks get one sentence each (check/irreps, graphs, pointclouds)."""

from __future__ import annotations

import pytest
import torch
from cloud_models import coordinate_mlp, egnn, graph, message_passing

from pytest_equivariance import Irreps, check_e3_equivariant, check_e3_invariant, check_permutation_equivariant
from pytest_equivariance.check.irreps import Field
from pytest_equivariance.errors import EquivarianceUsageError

POS, H, EDGES = graph()


def test_irreps_parse_e3nn_notation():
    irreps = Irreps.parse("8x0e + 4x1o+2x2e")
    assert irreps.terms == ((8, 0, 1), (4, 1, -1), (2, 2, 1)) and irreps.dim == 30 and irreps.lmax == 2
    assert str(irreps) == "8x0e + 4x1o + 2x2e" and Irreps.parse("1o").terms == ((1, 1, -1),)
    assert Field.parse("vectors") == Field("irreps", Irreps.parse("1x1o")) and Field.parse(None).kind == "invariant"


def test_irreps_act_block_by_block_like_their_matrix():
    from pytest_equivariance.check import so3

    irreps = Irreps.parse("2x0o + 1x1o + 1x2e")
    rotations = so3.random_orthogonal(5, 2)
    x = torch.randn(7, irreps.dim, dtype=torch.float64)
    expected = torch.einsum("kij,nj->kni", irreps.matrix(rotations), x)
    assert torch.allclose(irreps.apply(rotations, x), expected, atol=1e-14)
    det = torch.linalg.det(rotations)
    assert torch.allclose(irreps.matrix(rotations)[:, 0, 0], det)  # 0o: a pseudoscalar
    assert torch.allclose(irreps.matrix(rotations)[:, 2:5, 2:5], rotations)  # 1o: the vector


@pytest.mark.parametrize(("call", "match"), [
    (lambda: Irreps.parse("8x0e + 4y1o"), r"'4y1o' in irreps .* is not of the form 'MULxLP'"),
    (lambda: Irreps.parse(""), "is not an irreps declaration"),
    # irreps whose dimension does not match the tensor
    (lambda: check_e3_equivariant(egnn(), (POS, H, EDGES), input_fields=("points", "8x0e", None),
                                  output_fields=("points", "4x0e")),
     r"inputs\[1\] is declared 8x0e but has shape \(8, 4\) .* its last dim must hold the 8 values of '8x0e'"),
    (lambda: check_e3_equivariant(egnn(), (POS, H, EDGES), input_fields=("points", "4x0e", None),
                                  output_fields=("points", "2x1o")),
     r"output\[1\] is declared 2x1o but has shape \(8, 4\)"),
    # positions of shape (N, 2)
    (lambda: check_e3_equivariant(coordinate_mlp(), POS[:, :2], output_fields="points"),
     r"inputs is declared points but has shape \(8, 2\) .* must hold 3 coordinates \(x, y, z\)"),
    # edge_index out of range
    (lambda: check_permutation_equivariant(message_passing(), (H, EDGES + 1)),
     r"inputs\[1\] holds node indices from 1 to 8, outside 0..7 for the 8 nodes"),
    (lambda: check_permutation_equivariant(message_passing(), (H, EDGES.float()), edge_index=1),
     r"inputs\[1\] is the edge_index but has shape \(2, 56\) \(torch.float32\)"),
    (lambda: check_e3_equivariant(egnn(), (POS, H, EDGES)),
     "needs output_fields= to know how the outputs move"),
    (lambda: check_e3_invariant(egnn(), (POS, H, EDGES)),
     "cannot tell which inputs are positions and which are features; pass input_fields="),
    (lambda: check_e3_invariant(egnn(), (POS, H, EDGES), input_fields=("points", "4x0e")),
     "input_fields has 2 entries for 3 positional input"),
    (lambda: check_e3_invariant(egnn(), (POS, H, EDGES), input_fields={"pos": "points"}),
     "input_fields names 'pos', which is no tensor of the inputs"),
    (lambda: check_e3_equivariant(egnn(), (POS, H, EDGES), input_fields=("points", "4x0e", None),
                                  output_fields={"pos": "points"}),
     r"output_fields declares output\['pos'\], which the model does not return"),
    (lambda: check_e3_invariant(coordinate_mlp(), POS, group="E2"), "group='E2'; pass one of E3, SE3, O3, SO3"),
    (lambda: check_permutation_equivariant(message_passing(), (H, EDGES), permute="graphs"),
     "permute='graphs'; pass 'nodes' or 'edges'"),
    (lambda: check_permutation_equivariant(coordinate_mlp(), POS, permute="edges"),
     "found no edge_index among the inputs"),
    (lambda: check_e3_invariant(coordinate_mlp(), None), "needs the model's inputs"),
    (lambda: check_e3_invariant(coordinate_mlp(), "points"), "The inputs are str, not a graph"),
    (lambda: check_e3_invariant(coordinate_mlp(), POS, batch_size=0), "batch_size=0; pass a positive integer"),
    (lambda: check_e3_invariant(message_passing(), (POS, EDGES), input_fields=("points", None)),
     r"The model rejected the inputs \(RuntimeError"),
])
def test_usage_errors_are_one_sentence(call, match):
    with pytest.raises(EquivarianceUsageError, match=match) as info:
        call()
    message = str(info.value)
    assert message.replace("e.g. ", "").count(". ") == 0 and message.endswith(".")
