"""E(3) and permutation checks of point-cloud and graph models (check/pointclouds.py)."""

from __future__ import annotations

import pytest
import torch
from cloud_models import (
    Centred,
    Energy,
    coordinate_mlp,
    edge_scores,
    egnn,
    graph,
    index_embedding,
    message_passing,
)

from pytest_equivariance import (
    assert_e3_equivariant,
    assert_permutation_equivariant,
    check_e3_equivariant,
    check_e3_invariant,
    check_permutation_equivariant,
    check_permutation_invariant,
)
from pytest_equivariance.check.result import CheckResult

EGNN_FIELDS = {"input_fields": ("points", "4x0e", None), "output_fields": ("points", "4x0e")}


def test_egnn_passes_e3_with_points_and_scalars():
    pos, h, edges = graph()
    result = check_e3_equivariant(egnn(), (pos, h, edges), **EGNN_FIELDS, trials=32, seed=3)
    assert result.passed and result.kind == "e3_equivariant" and result.group == "E3"
    assert [t.transform for t in result.trials[:2]] == ["E(3) #0", "E(3) #1"]
    assert {round(t.params["det"]) for t in result.trials} == {1, -1}  # inversions drawn, not only rotations
    assert any(any(v != 0 for v in t.params["translation"]) for t in result.trials)
    assert 0 < result.worst_error < 1e-4  # float32 rounding, not zero: the check really moved the inputs
    assert result.atol == 1e-4 and result.rtol == 1e-3  # metrics.CLOUD_TOLERANCES for float32
    assert result.fields == {"input[0]": "points", "input[1]": "4x0e", "output[0]": "points", "output[1]": "4x0e"}
    assert result.notes[0].startswith("ran the 32 elements as disjoint unions")


def test_egnn_in_float64_is_exact_to_rounding():
    pos, h, edges = graph(dtype=torch.float64)
    result = check_e3_equivariant(egnn(dtype=torch.float64), (pos, h, edges), **EGNN_FIELDS, trials=16)
    assert result.passed and result.worst_error < 1e-12 and result.atol == 1e-9


def test_a_coordinate_mlp_fails_and_the_first_linear_layer_is_blamed():
    pos, _, _ = graph()
    result = check_e3_equivariant(coordinate_mlp(), pos, output_fields="points", trials=8)
    assert not result.passed and result.worst_error > 0.1
    assert result.profile is not None and result.profile.culprit.qualname == "0"
    # Rotations alone break it too (not only the translations).
    assert not check_e3_equivariant(coordinate_mlp(), pos, output_fields="points", group="SO3", trials=4).passed


def test_points_translate_but_vectors_do_not():
    pos, _, _ = graph()
    identity = torch.nn.Identity()
    assert check_e3_equivariant(identity, pos, output_fields="points", trials=4).passed
    as_vectors = check_e3_equivariant(identity, pos, input_fields="points", output_fields="vectors", trials=4)
    assert not as_vectors.passed  # the output moved by R x + t, declared as moved by R x only
    assert check_e3_equivariant(identity, pos, output_fields="points", group="SO3", trials=4).passed


def test_invariance_twin_and_a_scalar_output_run_element_by_element():
    pos, _, _ = graph()
    result = check_e3_invariant(Energy(), pos.double(), trials=6)
    assert result.passed and result.worst_error < 1e-12 and len(result.trials) == 6
    assert any("ran element by element" in note and "output has shape ()" in note for note in result.notes)
    assert not check_e3_invariant(coordinate_mlp(), pos, trials=4).passed


def test_a_model_that_differentiates_inside_its_forward_runs_with_autograd():
    from cloud_models import Forces

    pos, _, _ = graph()
    result = check_e3_equivariant(Forces(), pos.double(), output_fields="vectors", trials=8)
    assert result.passed and result.worst_error < 1e-12
    assert any(note.startswith("ran with autograd on") for note in result.notes)
    broken = check_e3_equivariant(Forces(tilt=1.0), pos.double(), output_fields="vectors", trials=8)
    assert not broken.passed and broken.worst_error > 0.1


def test_a_model_that_mixes_copies_is_checked_element_by_element():
    pos, _, _ = graph()
    result = check_e3_equivariant(Centred(), pos, output_fields="vectors", group="O3", trials=6)
    assert result.passed
    assert any("mixes the copies" in note for note in result.notes)


def test_message_passing_passes_node_permutations_and_an_index_embedding_fails():
    _, h, edges = graph()
    result = check_permutation_equivariant(message_passing(), (h, edges), trials=8)
    assert result.passed and result.worst_error < 1e-5 and result.fields == {"output": "per node"}
    broken = check_permutation_equivariant(index_embedding(), (h, edges), trials=8)
    assert not broken.passed and broken.worst_error > 0.1
    assert broken.profile.culprit.qualname == "position"
    # Summed over nodes, the same layer is invariant.
    assert check_permutation_invariant(_Summed(message_passing()), (h, edges), trials=4).passed
    assert not check_permutation_invariant(_Summed(index_embedding()), (h, edges), trials=4).passed


class _Summed(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, h, edge_index):
        return self.inner(h, edge_index).sum(0)


def test_edge_permutations_reorder_edge_attributes_and_edge_index_together():
    _, h, edges = graph(nodes=5)
    attr = torch.randn(edges.shape[1], 1)
    result = check_permutation_equivariant(edge_scores(), (h, edges, attr), permute="edges", trials=6)
    assert result.passed and result.fields == {"output": "per edge"}
    assert result.worst_error < 1e-6
    assert not check_permutation_equivariant(edge_scores(by_position=True), (h, edges, attr), permute="edges",
                                             trials=4).passed


def test_node_permutations_renumber_edge_index():
    from pytest_equivariance.check.elements import Permutations
    from pytest_equivariance.check.graphs import GraphInputs

    _, h, edges = graph(nodes=6)
    g = GraphInputs.read((h, edges))
    perms = Permutations.draw("nodes", g, 3, seed=1, output_roles={})
    moved = perms.on_inputs(g, slice(0, 3))
    for order, new_h, new_edges in zip(perms.orders, moved[0], moved[1]):
        assert torch.equal(new_h, h[order])
        assert torch.equal(order[new_edges], edges)  # the same edges, between the same original nodes
    edge_perms = Permutations.draw("edges", g, 2, seed=1, output_roles={})
    for order, new_edges in zip(edge_perms.orders, edge_perms.on_inputs(g, slice(0, 2))[1]):
        assert torch.equal(new_edges, edges[:, order])


def test_mapping_inputs_and_pos_default_to_points():
    pos, h, edges = graph()

    class OnMapping(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = egnn()

        def forward(self, data):
            moved, features = self.layer(data["pos"], data["h"], data["edge_index"])
            return {"pos": moved, "h": features}

    result = check_e3_equivariant(OnMapping(), {"pos": pos, "h": h, "edge_index": edges},
                                  input_fields={"pos": "points", "h": "4x0e"},
                                  output_fields={"pos": "points", "h": "4x0e"}, trials=8)
    assert result.passed and result.fields["input['pos']"] == "points"
    assert result.fields["output['h']"] == "4x0e"


def test_assert_twins_raise_with_the_report():
    pos, h, edges = graph()
    assert isinstance(assert_e3_equivariant(egnn(), (pos, h, edges), **EGNN_FIELDS, trials=4), CheckResult)
    with pytest.raises(AssertionError, match="E\\(3\\) #"):
        assert_e3_equivariant(coordinate_mlp(), pos, output_fields="points", trials=4, localize=False)
    with pytest.raises(AssertionError, match="node permutation #"):
        assert_permutation_equivariant(index_embedding(), (h, edges), trials=4, localize=False)


def test_a_result_round_trips_and_renders():
    from pytest_equivariance.report.figures import reproduce_hint
    from pytest_equivariance.report.html import check_card
    from pytest_equivariance.report.text import format_result

    pos, _, _ = graph()
    result = check_e3_equivariant(coordinate_mlp(), pos, output_fields="points", trials=4, seed=5)
    assert CheckResult.from_json(result.to_json()) == result
    text = format_result(result)
    assert result.worst.transform in text and "output (points): worst max_abs" in text
    api_result = CheckResult.from_json({**result.to_json(), "reproduce": None})  # as outside pytest
    assert reproduce_hint(api_result) == "check_e3_equivariant(model, inputs, seed=5)"
    card = check_card(result)
    assert result.worst.transform in card and "Linear" in card  # the worst element and the profile's culprit


@pytest.mark.parametrize(("group", "improper", "translated"), [
    ("E3", True, True), ("SE3", False, True), ("O3", True, False), ("SO3", False, False),
])
def test_each_group_draws_what_it_names(group, improper, translated):
    pos, _, _ = graph()
    result = check_e3_invariant(torch.nn.Identity(), pos, group=group, trials=12, localize=False)
    dets = {t.params["det"] for t in result.trials}
    assert dets == ({1, -1} if improper else {1})
    moved = [any(v != 0 for v in t.params["translation"]) for t in result.trials]
    assert all(moved) if translated else not any(moved)
    assert result.group == group and result.trials[0].transform.startswith(group[:-1] + "(3) #")
