"""Gates that know their sample size: a proportion regresses only beyond its sampling noise.

Consistency and accuracy over a finite set are estimates; a baseline records how many images each
came from, and a drop counts only when it exceeds both the tolerance and two standard errors of the
difference. An unchanged model on a fresh sample of the same size passes; a real drop of five
points on 1,000 images fails.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_equivariance import check_shift_invariant
from pytest_equivariance.gates import baseline as bl
from pytest_equivariance.gates.baseline import Baseline, BaselineEntry, BaselineKey
from pytest_equivariance.gates.entries import sampling_noise

sys.path.insert(0, str(Path(__file__).parents[1] / "check"))
from trained_classifier import CROP, small_cnn, train, validation  # noqa: E402

KEY = BaselineKey("t.py::test_classifier", 0, "shift_invariant", "cpu", "float32")
SHIFTS = [(0, 1), (1, 0), (1, 1), (2, -1)]


def test_the_sampling_noise_is_two_standard_errors_of_the_difference():
    assert sampling_noise("consistency", 0.9, 0.9, 1000, 1000) == pytest.approx(2 * math.sqrt(2 * 0.9 * 0.1 / 1000))
    assert sampling_noise("accuracy", 0.8, 0.7, 400, 100) == pytest.approx(2 * math.sqrt(0.16 / 400 + 0.21 / 100))
    assert sampling_noise("worst_error", 0.9, 0.8, 1000, 1000) == 0.0  # not a proportion
    assert sampling_noise("consistency", 0.9, 0.8, None, 1000) == 0.0  # a side without its size


@pytest.mark.parametrize(("now", "verdict"), [(0.88, "same"), (0.85, "regression"), (0.95, "improvement")])
def test_a_change_must_exceed_tolerance_and_noise(now, verdict):
    noise = sampling_noise("consistency", 0.9, now, 1000, 1000)
    assert bl.classify("consistency", 0.9, now, tol=0.01, floor=0.0, noise=noise) == verdict
    # Without the sizes, the tolerance alone decides: a 2-point drop on 1% tolerance is a regression.
    assert bl.classify("consistency", 0.9, 0.88, tol=0.01, floor=0.0) == "regression"


def test_proportions_are_judged_whatever_the_fingerprints():
    old = BaselineEntry(KEY, {"consistency": 0.9, "worst_error": 1.0}, weights="a", inputs="x",
                        samples={"consistency": 1000})
    new = BaselineEntry(KEY, {"consistency": 0.8, "worst_error": 2.0}, weights="b", inputs="y",
                        samples={"consistency": 1000})
    comparison = bl.compare(Baseline({KEY: old}), [new], tol=0.01)
    assert [(c.figure, c.noise > 0) for c in comparison.regressions] == [("consistency", True)]
    assert comparison.failed
    (changed,) = comparison.fingerprint_changes  # the error figure waits for matching fingerprints
    assert [c.figure for c in changed.changes] == ["worst_error"]


def test_samples_travel_through_the_baseline_file(tmp_path):
    entry = BaselineEntry(KEY, {"consistency": 0.9}, samples={"consistency": 1000})
    path = tmp_path / "baseline.json"
    bl.save(path, Baseline({KEY: entry}))
    assert bl.load(path).entries[KEY].samples == {"consistency": 1000}
    with pytest.raises(Exception, match="samples must map figures to numbers of images"):
        bl.loads(path.read_text().replace('"consistency": 1000', '"consistency": -1'))


class Jittery(nn.Module):
    """The model, but for a ``rate`` of inputs (chosen by their top-left pixels, which move under
    shifts) its answer is replaced by a class drawn from those pixels: shifts change those answers."""

    def __init__(self, model: nn.Module, rate: float) -> None:
        super().__init__()
        self.model, self.rate = model, rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        code = (x[:, 0, :2, :2].flatten(1).sum(1) * 1e4).remainder(1.0)
        hit = code < self.rate
        forced = torch.nn.functional.one_hot((code * 1e3).long() % logits.shape[1], logits.shape[1]) * 100.0
        return torch.where(hit[:, None], forced.to(logits.dtype), logits)


def entries(model, seed):
    result = check_shift_invariant(model, validation(1000, CROP, batch_size=250, seed=seed), shifts=SHIFTS,
                                   localize=False)
    return result, bl.entries_from_results([result])


@pytest.fixture(scope="module")
def model():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return train(small_cnn(), steps=100)


def test_a_fresh_sample_passes_and_a_real_drop_fails(model):
    base_result, base_entries = entries(model, seed=11)
    baseline = Baseline({e.key: e for e in base_entries})
    assert base_entries[0].samples["consistency"] == 1000
    fresh_result, fresh = entries(model, seed=12)  # the same model on 1,000 other images
    assert fresh_result.inputs_fingerprint != base_result.inputs_fingerprint
    assert abs(fresh_result.consistency - base_result.consistency) > 0.001  # the samples do differ
    assert not bl.compare(baseline, fresh, tol=0.01).regressions
    worse_result, worse = entries(Jittery(model, rate=0.045), seed=12)
    drop = base_result.consistency - worse_result.consistency
    assert 0.04 < drop < 0.065, drop  # a real drop of about five points
    regressions = bl.compare(baseline, worse, tol=0.01).regressions
    assert "consistency" in [c.figure for c in regressions]
