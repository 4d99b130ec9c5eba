"""The baseline core: keys, the regression rule, compare, merge, the file format and atomic writes."""

from __future__ import annotations

import json
import math
import os
import stat
import threading

import pytest

from pytest_equivariance.gates import baseline as bl
from pytest_equivariance.gates.baseline import Baseline, BaselineEntry, BaselineKey
from pytest_equivariance.check.result import CheckResult, Trial
from pytest_equivariance.errors import BaselineError, EquivarianceUsageError


def result(test_id="t.py::test_a", worst=0.1, mean=0.05, consistency=None, kind="shift_equivariant",
           device="cpu", dtype="float32", seed=7) -> CheckResult:
    trials = [
        Trial("shift (dy=+1, dx=+0)", {"shift": [1, 0]}, worst, mean, 0.0, 0.0, True, consistency=consistency),
        Trial("shift (dy=+0, dx=+1)", {"shift": [0, 1]}, worst / 2, mean, 0.0, 0.0, True, consistency=consistency),
    ]
    return CheckResult(kind, True, trials, 1.0, 0.0, seed, device, dtype, "circular", (-2, -1), (2, 3, 8, 8),
                       test_id=test_id)


def entry(test_id="t.py::test_a", index=0, **figures) -> BaselineEntry:
    return BaselineEntry(BaselineKey(test_id, index, "shift_equivariant", "cpu", "float32"), figures or {"worst_error": 0.1})


# ------------------------------------------------------------------------------------ keys


def test_key_normalises_device_index_and_torch_dtype_prefix():
    (e,) = bl.entries_from_results([result(device="cuda:3", dtype="torch.float16")])
    assert e.key == BaselineKey("t.py::test_a", 0, "shift_equivariant", "cuda", "float16")
    assert e.figures == {"worst_error": 0.1, "mean_error": 0.05}
    assert e.seed == 7


def test_index_counts_checks_within_each_test():
    results = [result("a"), result("b"), result("a", kind="shift_invariant"), result("a")]
    keys = [(e.key.test_id, e.key.index, e.key.kind) for e in bl.entries_from_results(results)]
    assert keys == [("a", 0, "shift_equivariant"), ("b", 0, "shift_equivariant"),
                    ("a", 1, "shift_invariant"), ("a", 2, "shift_equivariant")]


def test_consistency_is_stored_when_measured():
    (e,) = bl.entries_from_results([result(kind="shift_invariant", consistency=0.75)])
    assert e.figures["consistency"] == 0.75


def test_detection_sets_store_the_unmatched_fraction_and_the_mean_iou():
    trials = [
        Trial("shift (dy=+1, dx=+0)", {"shift": [1, 0]}, 1.0, 0.5, 0.0, 0.0, False, matched=9, appeared=1, vanished=2,
              mean_iou=0.9, min_iou=0.8),
        Trial("shift (dy=+0, dx=+1)", {"shift": [0, 1]}, 0.0, 0.0, 0.0, 0.0, True, matched=3, appeared=0, vanished=0,
              mean_iou=0.5, min_iou=0.5),
    ]
    detected = CheckResult("shift_equivariant", False, trials, 0.0, 0.0, 7, "cpu", "float32", "circular", (-2, -1),
                           (2, 3, 8, 8), test_id="t.py::test_a")
    (e,) = bl.entries_from_results([detected])
    assert e.figures["unmatched"] == pytest.approx(3 / (3 + 2 * 12))  # 3 alone of 27 detections
    assert e.figures["mean_iou"] == pytest.approx((9 * 0.9 + 3 * 0.5) / 12)  # over the 12 matched pairs
    assert "unmatched" not in bl.entries_from_results([result()])[0].figures  # only where sets were compared
    assert bl.classify("unmatched", 0.0, 0.05, tol=0.1, floor=1e-5) == "regression"
    assert bl.classify("mean_iou", 0.9, 0.7, tol=0.1, floor=1e-5) == "regression"  # larger is better


# ------------------------------------------------------------------------------ the rule


@pytest.mark.parametrize(
    ("figure", "base", "now", "expected"),
    [
        ("worst_error", 0.10, 0.105, "same"),  # +5% < 10%
        ("worst_error", 0.10, 0.12, "regression"),  # +20%
        ("worst_error", 0.10, 0.08, "improvement"),
        ("mean_error", 1e-7, 2e-7, "same"),  # float noise: below the float32 floor
        ("mean_error", 1e-7, 5e-5, "regression"),  # above the floor
        ("worst_error", 0.0, 1e-6, "same"),
        ("consistency", 0.90, 0.85, "same"),  # -0.05 < 10% of 0.9
        ("consistency", 0.90, 0.70, "regression"),  # larger is better
        ("consistency", 0.70, 0.90, "improvement"),
        ("worst_error", 0.1, math.nan, "regression"),
        ("worst_error", math.nan, 0.1, "improvement"),
        ("worst_error", 0.1, math.inf, "regression"),
        ("worst_error", math.inf, math.inf, "same"),
    ],
)
def test_classify(figure, base, now, expected):
    assert bl.classify(figure, base, now, tol=0.1, floor=1e-5) == expected


def test_classify_tolerance_and_floor_are_what_decide():
    assert bl.classify("worst_error", 0.1, 0.14, tol=0.5, floor=0) == "same"
    assert bl.classify("worst_error", 0.1, 0.16, tol=0.5, floor=0) == "regression"
    assert bl.classify("worst_error", 1e-7, 2e-7, tol=0.1, floor=0) == "regression"
    assert bl.classify("consistency", 1.0, 0.999, tol=0.0, floor=1.0) == "regression"  # no floor on consistency


def test_classify_at_exactly_the_allowed_change_is_the_same():
    # The rule is strict: a change of exactly tol * |baseline| is neither a regression nor an improvement.
    assert bl.classify("worst_error", 1.0, 1.5, tol=0.5, floor=0) == "same"
    assert bl.classify("worst_error", 1.0, 0.5, tol=0.5, floor=0) == "same"
    assert bl.classify("worst_error", 1.0, 1.5000001, tol=0.5, floor=0) == "regression"
    assert bl.classify("worst_error", 1.0, 0.4999999, tol=0.5, floor=0) == "improvement"


def test_classify_caps_psnr_at_the_ceiling_on_both_sides():
    above = bl.PSNR_CEILING + 20
    assert bl.classify("psnr", math.inf, above, tol=0.0, floor=0) == "same"  # both "identical"
    assert bl.classify("psnr", above, math.inf, tol=0.0, floor=0) == "same"
    assert bl.classify("psnr", math.inf, bl.PSNR_CEILING - 20, tol=0.1, floor=0) == "regression"
    # Other figures are not capped: an error of 120 is worse than one of 101.
    assert bl.classify("worst_error", 101.0, above, tol=0.0, floor=0) == "regression"


@pytest.mark.parametrize(
    ("base", "now", "expected"),
    [
        (0.1, 0.2, 1.0),
        (0.2, 0.1, -0.5),
        (0.1, 0.1, 0.0),
        (0.0, 0.5, math.inf),  # from zero: infinitely worse, not a division by zero
        (0.0, -0.5, -math.inf),
        (math.inf, 1.0, -math.inf),
        (0.0, math.nan, math.nan),
        (math.nan, 1.0, math.nan),
        (1.0, math.nan, math.nan),
    ],
)
def test_figure_change_is_relative_to_the_baseline(base, now, expected):
    key = BaselineKey("t", 0, "shift_invariant", "cpu", "float32")
    change = bl.FigureChange(key, "worst_error", base, now, 0.1, 1e-5).change
    assert change == expected or (math.isnan(change) and math.isnan(expected)), change


def test_a_changed_fingerprint_fails_a_comparison_only_when_strict():
    assert not bl.Comparison(fingerprint_changes=[object()]).failed  # not strict by default
    assert bl.Comparison(fingerprint_changes=[object()], strict_weights=True).failed


def test_noise_floor_follows_dtype():
    assert bl.noise_floor("float64") < bl.noise_floor("float32") < bl.noise_floor("float16")
    assert bl.noise_floor("torch.float32") == bl.noise_floor("float32")
    assert bl.noise_floor("complex64") == bl.DEFAULT_NOISE_FLOOR


# ------------------------------------------------------------------------------- compare


def test_compare_sorts_everything_into_its_bin():
    base = Baseline({e.key: e for e in [
        entry("a", worst_error=0.10, mean_error=0.05),
        entry("b", worst_error=0.10),
        entry("c", worst_error=0.10),
        entry("c", 1, worst_error=0.10),  # test c ran, but no longer runs its second check: stale
        entry("d", worst_error=0.10),  # test d did not run: not stale
    ]})
    now = [
        entry("a", worst_error=0.20, mean_error=0.05),  # regression on one figure
        entry("b", worst_error=0.05),  # improvement
        entry("c", worst_error=0.10),  # unchanged
        entry("e", worst_error=0.30),  # new
    ]
    cmp = bl.compare(base, now)
    assert cmp.failed
    assert [(c.key.test_id, c.figure, c.baseline, c.now) for c in cmp.regressions] == [("a", "worst_error", 0.1, 0.2)]
    assert cmp.regressions[0].change == pytest.approx(1.0)
    assert [(c.key.test_id, c.figure) for c in cmp.improvements] == [("b", "worst_error")]
    assert [e.key.test_id for e in cmp.new] == ["e"]
    assert [(e.key.test_id, e.key.index) for e in cmp.stale] == [("c", 1)]
    assert cmp.unchanged == 1
    assert cmp.not_run == 1
    json.dumps(cmp.to_json())  # plain JSON


def test_compare_per_test_tolerance_overrides_the_default():
    base = Baseline({e.key: e for e in [entry("a", worst_error=0.1), entry("b", worst_error=0.1)]})
    now = [entry("a", worst_error=0.14), entry("b", worst_error=0.14)]
    cmp = bl.compare(base, now, tol=0.1, test_tols={"a": 0.5})
    assert [c.key.test_id for c in cmp.regressions] == ["b"]
    assert cmp.regressions[0].tol == 0.1


def test_compare_floor_override():
    base = Baseline({e.key: e for e in [entry("a", worst_error=1e-7)]})
    assert not bl.compare(base, [entry("a", worst_error=2e-7)]).failed
    assert bl.compare(base, [entry("a", worst_error=2e-7)], floor=0.0).failed


def test_tests_that_ran_without_checks_make_their_entries_stale():
    base = Baseline({e.key: e for e in [entry("a"), entry("b"), entry("c")]})
    cmp = bl.compare(base, [entry("c")], ran_tests={"a"})
    assert [e.key.test_id for e in cmp.stale] == ["a"]
    assert cmp.not_run == 1


def cuda(e: BaselineEntry) -> BaselineEntry:
    return BaselineEntry(BaselineKey(e.key.test_id, e.key.index, e.key.kind, "cuda", e.key.dtype), e.figures)


def test_a_cpu_run_says_nothing_about_cuda_entries():
    base = Baseline({e.key: e for e in [entry("a"), cuda(entry("a")), cuda(entry("a", 1))]})
    cmp = bl.compare(base, [entry("a")])
    assert cmp.stale == [] and cmp.not_run == 2 and cmp.unchanged == 1
    assert set(bl.merge(base, [entry("a", worst_error=0.5)]).entries) == set(base.entries)
    cmp = bl.compare(base, [cuda(entry("a"))])  # a CUDA run that no longer runs check #1
    assert [(e.key.device, e.key.index) for e in cmp.stale] == [("cuda", 1)]
    assert bl.in_scope(cuda(entry("a", 1)).key, [cuda(entry("a"))])
    assert not bl.in_scope(cuda(entry("a", 1)).key, [entry("a")])


# --------------------------------------------------------------------------------- merge


def test_merge_keeps_tests_that_did_not_run_and_replaces_those_that_did():
    base = Baseline({e.key: e for e in [entry("a"), entry("a", 1), entry("b")]})
    merged = bl.merge(base, [entry("a", worst_error=0.5)])
    assert sorted((k.test_id, k.index) for k in merged.entries) == [("a", 0), ("b", 0)]
    assert merged.entries[entry("a").key].figures == {"worst_error": 0.5}
    merged = bl.merge(base, [entry("c")], ran_tests={"b"})
    assert merged.tests() == {"a", "c"}
    assert bl.merge(base, [entry("c")], prune=True).tests() == {"c"}


# --------------------------------------------------------------------------- file format


def test_dumps_is_deterministic_and_round_trips():
    entries = [entry("b", worst_error=0.123456789, mean_error=1e-9), entry("a", consistency=1.0),
               BaselineEntry(BaselineKey("a", 1, "custom", "cuda", "bfloat16"), {"worst_error": math.inf}, 3)]
    one = bl.dumps(Baseline({e.key: e for e in entries}))
    two = bl.dumps(Baseline({e.key: e for e in reversed(entries)}))
    assert one == two
    data = json.loads(one)
    assert data["version"] == bl.BASELINE_VERSION
    assert [c["test"] for c in data["checks"]] == ["a", "a", "b"]
    assert data["checks"][2]["figures"]["worst_error"] == 0.123457  # rounded
    assert data["checks"][1]["figures"]["worst_error"] == "inf"  # strict JSON
    back = bl.loads(one)
    assert set(back.entries) == {e.key for e in entries}
    assert back.entries[entries[2].key].figures["worst_error"] == math.inf
    assert back.entries[entries[2].key].seed == 3
    assert bl.dumps(back) == one


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "not a pytest-equivariance baseline"),
        ('{"version": 1, "checks": []}', "not a pytest-equivariance baseline"),
        ('{"format": "pytest-equivariance-baseline", "version": 2, "checks": []}', "version 2"),
        ('{"format": "pytest-equivariance-baseline", "version": "1", "checks": []}', "version '1'"),
        ('{"format": "pytest-equivariance-baseline", "version": 1}', "no \"checks\" list"),
        ('{"format": "pytest-equivariance-baseline", "version": 1, "checks": [{"test": "a"}]}', "checks[0]"),
        ('{"format": "pytest-equivariance-baseline", "version": 1, "checks": [{"test": "a", "index": 0,'
         ' "kind": "k", "device": "cpu", "dtype": "float32", "figures": {"worst_error": "big"}}]}', "checks[0]"),
    ],
)
def test_loads_rejects_bad_files_naming_them(text, needle):
    with pytest.raises(BaselineError, match="my/base.json") as info:
        bl.loads(text, "my/base.json")
    assert needle in str(info.value)
    assert isinstance(info.value, EquivarianceUsageError)


def test_loads_rejects_duplicate_keys():
    one = bl.dumps(Baseline({entry("a").key: entry("a")}))
    data = json.loads(one)
    data["checks"] *= 2
    with pytest.raises(BaselineError, match="twice"):
        bl.loads(json.dumps(data), "f.json")


def test_load_missing_file_names_it_and_says_how_to_create_it(tmp_path):
    path = tmp_path / "missing.json"
    with pytest.raises(BaselineError, match="missing.json does not exist.*--equiv-baseline-update"):
        bl.load(path)


# ---------------------------------------------------------------------------- atomic writes


def test_write_atomic_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / "base.json"
    umask = os.umask(0o027)
    try:
        bl.write_atomic(path, "one")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # a new file: 0o666 minus the umask
    os.chmod(path, 0o600)
    bl.write_atomic(path, "one and a half")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    bl.write_atomic(path, "two")
    assert path.read_text() == "two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["base.json"]  # no temporary file left behind


def test_write_atomic_failure_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "base.json"
    path.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        bl.write_atomic(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["base.json"]


def test_update_merges_with_the_file_and_creates_directories(tmp_path):
    path = tmp_path / "sub" / "base.json"
    before, after = bl.update(path, [entry("a"), entry("b")])
    assert len(before) == 0 and len(after) == 2
    before, after = bl.update(path, [entry("a", worst_error=0.3)])
    assert after.tests() == {"a", "b"}
    assert bl.load(path).entries[entry("a").key].figures == {"worst_error": 0.3}


def test_update_refuses_a_corrupt_file_and_leaves_it(tmp_path):
    path = tmp_path / "base.json"
    path.write_text("{corrupt")
    with pytest.raises(BaselineError, match="base.json"):
        bl.update(path, [entry("a")])
    assert path.read_text() == "{corrupt"


def test_concurrent_updates_keep_every_entry(tmp_path):
    path = tmp_path / "base.json"
    errors = []

    def run(name):
        try:
            for i in range(20):
                bl.update(path, [entry(f"{name}{i}")])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in "xyz"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(bl.load(path)) == 60
