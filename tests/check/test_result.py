"""CheckResult's own rules: which trial decides, the baseline figures, the JSON round trip."""

from __future__ import annotations

import json

from pytest_equivariance.check.result import CheckResult, Trial


def trial(label: str, max_abs: float, passed: bool, consistency: float | None = None) -> Trial:
    return Trial(label, {}, max_abs, max_abs / 2, 0.0, 0.0, passed, consistency=consistency)


def result(trials: list[Trial], min_consistency: float | None = None) -> CheckResult:
    return CheckResult(
        kind="shift_invariant", passed=all(t.passed for t in trials), trials=trials, atol=1e-5,
        rtol=1e-4, seed=0, device="cpu", dtype="float32", mode="circular", dims=(-2, -1),
        input_shape=(1, 3, 8, 8), min_consistency=min_consistency,
    )


def test_a_failing_trial_decides_even_when_a_passing_one_has_the_larger_error():
    # Under rtol a trial with large outputs can pass with a larger absolute error.
    r = result([trial("big but within rtol", 0.5, True), trial("fails", 0.1, False)])
    assert r.worst.transform == "fails"
    assert r.worst_error == 0.5  # the figure still reports the largest error


def test_the_lowest_consistency_decides_when_consistency_is_the_criterion():
    r = result([trial("large error", 0.5, True, 1.0), trial("flips top-1", 0.1, False, 0.5)], 0.9)
    assert r.worst.transform == "flips top-1"


def test_the_result_survives_a_json_round_trip():
    r = result([trial("a", 0.5, True, 1.0), trial("b", 0.1, False, 0.5)], 0.9)
    assert CheckResult.from_json(json.loads(json.dumps(r.to_json()))) == r
