"""Fingerprints of weights and inputs, and how a baseline compare treats a change of them."""

from __future__ import annotations

import json

import pytest

import torch

from pytest_equivariance.gates import baseline as bl  # noqa: E402
from pytest_equivariance.gates.baseline import Baseline, BaselineEntry, BaselineKey  # noqa: E402
from pytest_equivariance.check import fingerprint as fp  # noqa: E402
from pytest_equivariance.check.api import check_shift_invariant  # noqa: E402

# ------------------------------------------------------------------------------ the digest


def test_same_bits_same_fingerprint_one_bit_differs():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 3)
    copy = torch.nn.Conv2d(3, 4, 3)
    copy.load_state_dict(model.state_dict())
    assert fp.fingerprint_model(model) == fp.fingerprint_model(copy)
    assert len(fp.fingerprint_model(model)) == fp.FINGERPRINT_DIGITS
    with torch.no_grad():  # flip the lowest mantissa bit of one weight
        bits = copy.weight.view(-1).view(torch.int32)
        bits[5] ^= 1
    assert fp.fingerprint_model(model) != fp.fingerprint_model(copy)


def test_position_matters_not_only_the_multiset_of_values():
    t = torch.arange(6, dtype=torch.float32)
    assert fp.fingerprint_tensors([("w", t)]) != fp.fingerprint_tensors([("w", t.flip(0))])


def test_names_shapes_and_dtypes_are_part_of_it():
    t = torch.zeros(6)
    base = fp.fingerprint_tensors([("w", t)])
    assert base != fp.fingerprint_tensors([("v", t)])
    assert base != fp.fingerprint_tensors([("w", t.reshape(2, 3))])
    assert base != fp.fingerprint_tensors([("w", t.double())])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.uint8,
                                   torch.bool, torch.complex64])
def test_every_dtype_is_fingerprinted(dtype):
    a = (torch.arange(12) % 3).to(dtype)
    b = a.clone()
    b[7] = (b[7] == 0).to(dtype) if dtype == torch.bool else b[7] + 1
    assert fp.fingerprint_tensors([("t", a)]) == fp.fingerprint_tensors([("t", a.clone())])
    assert fp.fingerprint_tensors([("t", a)]) != fp.fingerprint_tensors([("t", b)])


def test_meta_tensors_are_fingerprinted_by_their_shape():
    a, b = torch.empty(3, 4, device="meta"), torch.empty(3, 5, device="meta")
    assert fp.fingerprint_tensors([("t", a)]) != fp.fingerprint_tensors([("t", b)])
    assert fp.fingerprint_tensors([("t", a)]) != fp.fingerprint_tensors([("t", torch.zeros(3, 4))])


def test_non_contiguous_tensors_fingerprint_their_values():
    t = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    assert fp.fingerprint_tensors([("t", t.t())]) == fp.fingerprint_tensors([("t", t.t().contiguous())])


def test_a_check_carries_both_fingerprints():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    a = check_shift_invariant(model, input_shape=(1, 1, 8, 8), trials=2, localize=False)
    b = check_shift_invariant(model, input_shape=(1, 1, 8, 8), trials=2, localize=False, seed=1)
    assert a.weights_fingerprint == b.weights_fingerprint == fp.fingerprint_model(model)
    assert a.inputs_fingerprint != b.inputs_fingerprint  # other seed, other natural images
    assert a.to_json()["weights_fingerprint"] == a.weights_fingerprint
    (entry,) = bl.entries_from_results([a])
    assert (entry.weights, entry.inputs) == (a.weights_fingerprint, a.inputs_fingerprint)


# ------------------------------------------------------------------------------ compare


def _entry(test="t.py::test_a", worst=0.1, weights="w1", inputs="i1") -> BaselineEntry:
    return BaselineEntry(BaselineKey(test, 0, "shift_equivariant", "cpu", "float32"), {"worst_error": worst},
                         7, weights, inputs)


def _base(*entries: BaselineEntry) -> Baseline:
    return Baseline({e.key: e for e in entries})


def test_other_weights_are_reported_not_gated():
    cmp = bl.compare(_base(_entry(worst=0.1)), [_entry(worst=0.3, weights="w2")])
    assert not cmp.failed
    assert cmp.regressions == [] and cmp.unchanged == 0
    (change,) = cmp.fingerprint_changes
    assert change.weights_changed and not change.inputs_changed
    assert [c.figure for c in change.changes] == ["worst_error"]
    assert "weights differ from the baseline's (w1 -> w2)" in change.reason
    assert cmp.weights_changed == 1 and cmp.inputs_changed == 0
    data = cmp.to_json()
    assert data["weights_changed"] == 1 and data["fingerprint_changes"][0]["now"]["weights"] == "w2"
    json.dumps(data)


def test_strict_weights_fail_even_with_the_same_figures():
    cmp = bl.compare(_base(_entry()), [_entry(weights="w2")], strict_weights=True)
    assert cmp.failed and cmp.regressions == []
    cmp = bl.compare(_base(_entry()), [_entry(inputs="i2")], strict_weights=True)
    assert cmp.failed and cmp.inputs_changed == 1 and "inputs differ" in cmp.fingerprint_changes[0].reason


def test_same_fingerprints_gate_as_before():
    cmp = bl.compare(_base(_entry(worst=0.1)), [_entry(worst=0.3)], strict_weights=True)
    assert cmp.failed and [c.figure for c in cmp.regressions] == ["worst_error"]
    assert cmp.fingerprint_changes == []


def test_entries_without_fingerprints_compare_on_figures_alone():
    old = _entry(worst=0.1, weights=None, inputs=None)
    cmp = bl.compare(_base(old), [_entry(worst=0.3)], strict_weights=True)
    assert cmp.fingerprint_changes == [] and len(cmp.regressions) == 1


def test_fingerprints_round_trip_through_the_file():
    base = _base(_entry(), _entry("t.py::test_b", weights=None, inputs=None))
    text = bl.dumps(base)
    assert '"weights": "w1"' in text and '"inputs": "i1"' in text
    assert bl.loads(text) == base


def test_a_malformed_fingerprint_is_a_clear_error():
    data = json.loads(bl.dumps(_base(_entry())))
    data["checks"][0]["weights"] = 12
    with pytest.raises(bl.BaselineError, match=r"malformed entry at checks\[0\].*fingerprints must be strings"):
        bl.loads(json.dumps(data), "b.json")
