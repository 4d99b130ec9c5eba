"""Shift checks on models whose equivariance is known exactly."""

from __future__ import annotations

import pytest
import torch

from check_models import (
    CORNER_SHIFTS,
    CornerClassifier,
    DictOutput,
    TupleOutput,
    circular_net,
    corner_images,
    dropout_classifier,
    pooled_classifier,
    strided_net,
)
from pytest_equivariance import check_shift_equivariant, check_shift_invariant
from pytest_equivariance.inputs import natural_images

SHAPE = (2, 3, 16, 16)


@pytest.mark.parametrize("ndim, shape", [(1, (2, 3, 32)), (2, SHAPE), (3, (1, 3, 6, 8, 8))])
def test_circular_stride1_net_is_shift_equivariant_in_1d_2d_3d(ndim, shape):
    result = check_shift_equivariant(circular_net(ndim=ndim), input_shape=shape, trials=6)
    assert result.passed
    assert result.dims == tuple(range(-ndim, 0))
    assert len(result.trials) == 6
    assert result.worst_error < 1e-5
    assert result.lattice is None


def test_zero_padded_net_fails_circular_shifts():
    result = check_shift_equivariant(circular_net(padding_mode="zeros"), input_shape=SHAPE, trials=4, localize=False)
    assert not result.passed
    assert result.worst_error > 1e-2
    assert all(not t.passed for t in result.trials)


def test_global_pooled_net_is_shift_invariant():
    result = check_shift_invariant(pooled_classifier(), input_shape=(4, 3, 16, 16), trials=8)
    assert result.passed
    assert result.consistency == 1.0
    assert result.prob_change is not None and result.prob_change < 1e-5


def test_strided_max_pool_breaks_invariance_under_odd_shifts():
    model = pooled_classifier(aliasing=True)
    result = check_shift_invariant(model, input_shape=(4, 3, 16, 16), shifts=[(0, 1), (1, 0), (3, -1)], localize=False)
    assert not result.passed
    assert all(not t.passed for t in result.trials)
    assert result.worst.max_abs > 1e-3


def test_strided_max_pool_is_invariant_on_the_stride_lattice():
    model = pooled_classifier(aliasing=True)
    result = check_shift_invariant(model, input_shape=(4, 3, 16, 16), shifts=[(0, 2), (2, 0), (4, -6)])
    assert result.passed


def test_strided_output_draws_shifts_on_the_lattice_and_says_so():
    result = check_shift_equivariant(strided_net(), input_shape=SHAPE, trials=8)
    assert result.passed
    assert result.lattice == (2, 2)
    assert all(d % 2 == 0 for t in result.trials for d in t.params["shift"])
    assert any("stride lattice" in note for note in result.notes)


def test_strided_output_with_explicit_lattice_shift_passes():
    result = check_shift_equivariant(strided_net(), input_shape=SHAPE, shift=(2, -4))
    assert result.passed
    assert [t.params["shift"] for t in result.trials] == [[2, -4]]


def test_default_shifts_start_with_the_unit_shifts():
    result = check_shift_invariant(pooled_classifier(aliasing=True), input_shape=(4, 3, 16, 16), trials=5, localize=False)
    assert [t.params["shift"] for t in result.trials[:2]] == [[1, 0], [0, 1]]
    assert not result.passed


def test_zero_mode_compares_away_from_the_border():
    model = circular_net(padding_mode="zeros")
    result = check_shift_equivariant(model, input_shape=(2, 3, 24, 24), mode="zero", trials=6, max_shift=4)
    assert result.passed, result.trials
    assert any("from the border" in note for note in result.notes)


def test_zero_mode_with_too_small_a_margin_fails():
    model = circular_net(padding_mode="zeros")
    result = check_shift_equivariant(model, input_shape=(2, 3, 24, 24), mode="zero", shifts=[(3, 0)], margin=0, localize=False)
    assert not result.passed


def test_crop_mode_shows_the_model_crops_of_a_larger_canvas():
    model = circular_net(padding_mode="zeros")
    result = check_shift_equivariant(model, input_shape=(2, 3, 20, 20), mode="crop", max_shift=3, trials=6)
    assert result.passed
    assert result.input_shape == (2, 3, 20, 20)
    assert any("crops of a 26x26 canvas" in note for note in result.notes)


def test_crop_mode_takes_a_user_canvas():
    canvas = natural_images((2, 3, 30, 30), seed=3)
    result = check_shift_invariant(pooled_classifier(), canvas, mode="crop", max_shift=5, trials=4, localize=False)
    assert result.input_shape == (2, 3, 20, 20)
    # Crops show different content at the borders: a classifier is not exactly invariant...
    assert not result.passed
    # ...but its top-1 answer is what Zhang 2019's consistency measures.
    assert result.consistency is not None


def test_min_consistency_is_an_alternative_pass_criterion():
    # Consistency 0.75 under one shift and 0.25 under the other (check_models.corner_images): the
    # mean over trials, 0.5, decides against min_consistency; without it the allclose rule fails.
    def check(min_consistency):
        return check_shift_invariant(CornerClassifier(), corner_images(), shifts=CORNER_SHIFTS,
                                     min_consistency=min_consistency, localize=False)

    strict = check(None)
    assert not strict.passed and strict.consistency == 0.5 and strict.min_consistency is None
    for below in (0.0, 0.4, 0.5):  # at the mean too: the rule is consistency >= min_consistency
        lenient = check(below)
        assert lenient.passed and lenient.min_consistency == below and lenient.consistency == 0.5
        assert [t.consistency for t in lenient.trials] == [0.75, 0.25]
    for above in (0.6, 1.0):
        assert not check(above).passed
    # The worst trial under min_consistency is the least consistent one.
    assert check(0.6).worst.transform == "shift (dy=+1, dx=+0)"


def test_dict_output_names_the_failing_leaf():
    model = DictOutput(circular_net(), side="broken")
    result = check_shift_equivariant(model, input_shape=SHAPE, trials=3, localize=False)
    assert not result.passed
    assert {t.leaf for t in result.trials} == {"['side']"}
    assert any("logits" in note and "invariant" in note for note in result.notes)


def test_leaves_of_different_strides_share_their_common_lattice():
    model = DictOutput(strided_net(), side="pooled")  # features: stride 2; side: stride 4
    result = check_shift_equivariant(model, input_shape=SHAPE, trials=3)
    assert result.lattice == (4, 4)
    assert result.passed


@pytest.mark.parametrize("named, leaf", [(False, "[1]"), (True, ".broken")])
def test_tuple_and_namedtuple_outputs_name_the_failing_leaf(named, leaf):
    model = TupleOutput(circular_net(), named=named)
    result = check_shift_equivariant(model, input_shape=SHAPE, shifts=[(1, 1)], localize=False)
    assert not result.passed
    assert result.trials[0].leaf == leaf
    fine = check_shift_equivariant(TupleOutput(circular_net(), named=named, aliasing=False), input_shape=SHAPE)
    assert fine.passed


def test_train_mode_model_is_checked_in_eval_mode_and_restored():
    model = dropout_classifier().train()
    model[3].eval()  # a partly frozen model: each module's flag must come back as it was
    before = [m.training for m in model.modules()]
    result = check_shift_invariant(model, input_shape=(2, 3, 16, 16), trials=4)
    assert result.passed  # dropout would make it fail in train mode
    assert any("train mode" in note for note in result.notes)
    assert [m.training for m in model.modules()] == before


def test_eval_mode_model_gets_no_train_mode_note():
    result = check_shift_invariant(dropout_classifier().eval(), input_shape=(2, 3, 16, 16), trials=2)
    assert not any("train mode" in note for note in result.notes)


def test_float64_tolerances_are_tighter_than_float32():
    r32 = check_shift_equivariant(circular_net(), input_shape=SHAPE, trials=2)
    r64 = check_shift_equivariant(circular_net().double(), input_shape=SHAPE, trials=2)
    assert (r32.dtype, r64.dtype) == ("float32", "float64")
    assert r64.atol < r32.atol and r64.rtol < r32.rtol
    assert r32.passed and r64.passed


def test_float32_rounding_passes_float32_tolerances_but_not_float64s():
    from pytest_equivariance.check.metrics import TOLERANCES

    model = pooled_classifier()
    x = natural_images((4, 3, 16, 16), seed=1)
    r32 = check_shift_invariant(model, x, trials=4, localize=False)
    assert r32.passed
    assert r32.worst_error > 0  # global pooling sums in a different order after a shift
    atol, rtol = TOLERANCES["float64"]
    strict = check_shift_invariant(model, x, trials=4, atol=atol, rtol=rtol, localize=False)
    assert not strict.passed
    r64 = check_shift_invariant(pooled_classifier().double(), x, trials=4)
    assert r64.passed and r64.dtype == "float64"


def test_atol_rtol_override_the_defaults():
    model = pooled_classifier(aliasing=True)
    result = check_shift_invariant(model, input_shape=(4, 3, 16, 16), shifts=[(0, 1)], atol=10.0, rtol=0.0, localize=False)
    assert result.passed
    assert (result.atol, result.rtol) == (10.0, 0.0)


def test_same_seed_same_trials_different_seed_different_trials():
    model = pooled_classifier(aliasing=True)
    a = check_shift_invariant(model, input_shape=(2, 3, 16, 16), trials=8, max_shift=6, seed=7, localize=False)
    b = check_shift_invariant(model, input_shape=(2, 3, 16, 16), trials=8, max_shift=6, seed=7, localize=False)
    c = check_shift_invariant(model, input_shape=(2, 3, 16, 16), trials=8, max_shift=6, seed=8, localize=False)
    assert a.seed == 7
    assert a.trials == b.trials
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


def test_user_inputs_are_used_as_given_and_cast_to_the_model_dtype():
    x = natural_images((3, 3, 12, 12), seed=5, dtype=torch.float64)
    result = check_shift_equivariant(circular_net(), x, trials=2)
    assert result.input_shape == (3, 3, 12, 12)
    assert result.dtype == "float32"
    assert any("cast from float64" in note for note in result.notes)


def test_default_input_shape_is_inferred_from_the_first_layer():
    result = check_shift_equivariant(circular_net(channels=5), trials=1)
    assert result.input_shape[:2] == (2, 5)
    assert result.input_shape[2:] == (64, 64)


def test_batch_size_does_not_change_the_figures():
    model = pooled_classifier(aliasing=True)
    whole = check_shift_invariant(model, input_shape=(3, 3, 16, 16), trials=5, batch_size=64, localize=False)
    chunked = check_shift_invariant(model, input_shape=(3, 3, 16, 16), trials=5, batch_size=2, localize=False)
    for a, b in zip(whole.trials, chunked.trials):
        assert a.params == b.params
        assert a.passed == b.passed
        assert a.max_abs == pytest.approx(b.max_abs, rel=1e-4, abs=1e-6)


def test_model_device_and_dtype_are_unchanged_after_a_check():
    model = circular_net().double()
    check_shift_equivariant(model, input_shape=SHAPE, trials=1, device="cpu")
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in model.parameters())


def test_result_listeners_see_every_result():
    from pytest_equivariance.check import api

    seen = []
    api.RESULT_LISTENERS.append(seen.append)
    try:
        result = check_shift_equivariant(circular_net(), input_shape=SHAPE, trials=1)
    finally:
        api.RESULT_LISTENERS.remove(seen.append)
    assert seen == [result]


def test_result_round_trips_through_json():
    from pytest_equivariance import CheckResult

    result = check_shift_invariant(pooled_classifier(aliasing=True), input_shape=(2, 3, 16, 16), trials=3, localize=False)
    assert CheckResult.from_json(result.to_json()) == result


def test_failing_check_is_localized_by_default_and_not_when_told():
    model = pooled_classifier(aliasing=True)
    failed = check_shift_invariant(model, input_shape=(2, 3, 16, 16), shifts=[(0, 1)])
    assert not failed.passed
    assert failed.profile is not None
    quiet = check_shift_invariant(model, input_shape=(2, 3, 16, 16), shifts=[(0, 1)], localize=False)
    assert quiet.profile is None
    passed = check_shift_invariant(model, input_shape=(2, 3, 16, 16), shifts=[(0, 2)])
    assert passed.passed and passed.profile is None


def test_crop_canvas_reaches_the_largest_explicit_shift():
    model = circular_net(padding_mode="zeros")
    result = check_shift_equivariant(model, input_shape=(1, 3, 24, 24), mode="crop", shifts=[(0, 11), (-3, 2)])
    assert result.passed
    assert any("crops of a 46x46 canvas" in note for note in result.notes)


def test_dims_selects_which_axes_shift():
    result = check_shift_equivariant(circular_net(), input_shape=SHAPE, dims=(-1,), trials=4)
    assert result.passed and result.dims == (-1,)
    assert all(len(t.params["shift"]) == 1 for t in result.trials)
    assert result.trials[0].transform == "shift (dx=+1)"
    one = check_shift_equivariant(circular_net(), input_shape=SHAPE, dims=(-2,), shift=3)
    assert one.trials[0].params == {"shift": [3]}
