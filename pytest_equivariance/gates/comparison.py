"""How a run's figures compare with a baseline's: regressions, improvements and changed fingerprints.

The regression rule is stated in :mod:`.baseline`'s docstring and implemented by :func:`classify`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_equivariance.gates.entries import (
    DEFAULT_REGRESSION_TOL,
    LARGER_IS_BETTER,
    PSNR_CEILING,
    Baseline,
    BaselineEntry,
    BaselineKey,
    Scope,
    entry_json,
    key_json,
    noise_floor,
    sampling_noise,
)

@dataclass(frozen=True)
class FigureChange:
    """One figure of one check that moved beyond the allowed change."""

    key: BaselineKey
    figure: str
    baseline: float
    now: float
    tol: float  # the relative tolerance that applied
    floor: float  # the absolute floor that applied
    noise: float = 0.0  # the change sampling alone explains (proportions over a data set), which applied too

    @property
    def change(self) -> float:
        """Relative change ``(now - baseline) / |baseline|``; ±inf when the baseline is 0."""
        if self.baseline == self.now:
            return 0.0
        if math.isnan(self.baseline) or math.isnan(self.now):
            return math.nan
        if self.baseline == 0 or math.isinf(self.baseline):
            return math.copysign(math.inf, self.now - self.baseline)
        return (self.now - self.baseline) / abs(self.baseline)


@dataclass(frozen=True)
class FingerprintChange:
    """A check whose weights or inputs are not those of its baseline entry, and how its figures moved."""

    key: BaselineKey
    baseline: BaselineEntry
    now: BaselineEntry
    changes: tuple[FigureChange, ...] = ()  # figures beyond the allowed change, either way

    @property
    def weights_changed(self) -> bool:
        """True when the model's weights differ from the baseline's."""
        return self.baseline.weights != self.now.weights

    @property
    def inputs_changed(self) -> bool:
        """True when the check's inputs differ from the baseline's."""
        return self.baseline.inputs != self.now.inputs

    @property
    def reason(self) -> str:
        """One sentence on what differs, for reports."""
        if self.weights_changed:
            what = "weights and inputs differ" if self.inputs_changed else "weights differ"
            return (f"{what} from the baseline's ({self.baseline.weights} -> {self.now.weights}): "
                    f"retrained or re-initialised?")
        return (f"inputs differ from the baseline's ({self.baseline.inputs} -> {self.now.inputs}): "
                f"other inputs, or unseeded random inputs?")


@dataclass
class Comparison:
    """How a run's checks compare with a baseline."""

    regressions: list[FigureChange] = field(default_factory=list)
    improvements: list[FigureChange] = field(default_factory=list)
    new: list[BaselineEntry] = field(default_factory=list)  # checks the baseline does not know
    stale: list[BaselineEntry] = field(default_factory=list)  # baseline checks a test that ran no longer runs
    fingerprint_changes: list[FingerprintChange] = field(default_factory=list)  # weights or inputs changed
    unchanged: int = 0  # checks within tolerance on every figure
    not_run: int = 0  # baseline entries of tests that did not run (deselected, skipped, failed early)
    strict_weights: bool = False  # whether a fingerprint change fails the comparison

    @property
    def failed(self) -> bool:
        """True when a figure regressed, or, when strict, a check's weights or inputs changed."""
        return bool(self.regressions) or (self.strict_weights and bool(self.fingerprint_changes))

    @property
    def weights_changed(self) -> int:
        """How many checks ran on other weights than their baseline entry's."""
        return sum(c.weights_changed for c in self.fingerprint_changes)

    @property
    def inputs_changed(self) -> int:
        """How many checks ran on the baseline's weights but other inputs."""
        return sum(not c.weights_changed for c in self.fingerprint_changes)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form, for ``--equiv-json``."""

        def change(c: FigureChange) -> dict[str, Any]:
            return {**key_json(c.key), "figure": c.figure, "baseline": c.baseline, "now": c.now,
                    "change": c.change, "tol": c.tol, "floor": c.floor, "noise": c.noise}

        def fingerprint_change(c: FingerprintChange) -> dict[str, Any]:
            return {**key_json(c.key), "weights_changed": c.weights_changed, "inputs_changed": c.inputs_changed,
                    "baseline": entry_json(c.baseline), "now": entry_json(c.now), "reason": c.reason,
                    "changes": [change(f) for f in c.changes]}

        return {
            "regressions": [change(c) for c in self.regressions],
            "improvements": [change(c) for c in self.improvements],
            "new": [entry_json(e) for e in self.new],
            "stale": [entry_json(e) for e in self.stale],
            "fingerprint_changes": [fingerprint_change(c) for c in self.fingerprint_changes],
            "weights_changed": self.weights_changed,
            "strict_weights": self.strict_weights,
            "unchanged": self.unchanged,
            "not_run": self.not_run,
        }


# --------------------------------------------------------------------------- comparing


def classify(figure: str, baseline: float, now: float, *, tol: float, floor: float, noise: float = 0.0) -> str:
    """Return ``"regression"``, ``"improvement"`` or ``"same"`` for one figure (rule: module doc).

    A figure that became NaN is a regression; one that stopped being NaN an improvement. PSNRs are
    compared capped at :data:`PSNR_CEILING`. ``noise`` is the change sampling alone explains (for
    proportions over a data set, :func:`.entries.sampling_noise`): a change must exceed it too.
    """
    if figure == "psnr":
        baseline, now = min(baseline, PSNR_CEILING), min(now, PSNR_CEILING)
    if baseline == now or (math.isnan(baseline) and math.isnan(now)):
        return "same"
    if math.isnan(now):
        return "regression"
    if math.isnan(baseline):
        return "improvement"
    worsening = (baseline - now) if figure in LARGER_IS_BETTER else (now - baseline)
    if math.isinf(baseline):  # inf -> finite is better, finite -> inf worse; nothing is "within tol" of inf
        return "regression" if worsening > 0 else "improvement"
    allowed = max(tol * abs(baseline), 0.0 if figure in LARGER_IS_BETTER else floor, noise)
    if worsening > allowed:
        return "regression"
    if worsening < -allowed:
        return "improvement"
    return "same"


def compare(
    baseline: Baseline,
    entries: Iterable[BaselineEntry],
    *,
    tol: float = DEFAULT_REGRESSION_TOL,
    test_tols: Mapping[str, float] | None = None,
    floor: float | None = None,
    ran_tests: Iterable[str] | None = None,
    strict_weights: bool = False,
) -> Comparison:
    """Compare a run's entries with a baseline.

    ``test_tols`` overrides ``tol`` per test id (the ``equiv_regression_tol`` marker). ``floor``
    overrides the per-dtype noise floor. A check whose weights or inputs fingerprint differs from
    its entry's goes to ``fingerprint_changes`` rather than to regressions or improvements;
    ``strict_weights`` makes those fail the comparison. ``ran_tests`` are the tests that ran to completion in this
    run (default: those with entries). Baseline entries this run would have produced but did not
    are *stale* (see :func:`in_scope`); the others are counted as *not run*. Only figures present on
    both sides are compared.
    """
    test_tols = test_tols or {}
    entries = list(entries)
    scope = Scope.of(entries, ran_tests)
    out = Comparison(strict_weights=strict_weights)
    produced = set()
    for entry in sorted(entries, key=lambda e: e.key):
        produced.add(entry.key)
        old = baseline.entries.get(entry.key)
        if old is None:
            out.new.append(entry)
            continue
        check_tol = test_tols.get(entry.key.test_id, tol)
        check_floor = noise_floor(entry.key.dtype) if floor is None else floor
        moved: dict[str, list[FigureChange]] = {"regression": [], "improvement": []}
        sampled: dict[str, list[FigureChange]] = {"regression": [], "improvement": []}
        for figure in sorted(set(old.figures) & set(entry.figures)):
            b, n = float(old.figures[figure]), float(entry.figures[figure])
            noise = sampling_noise(figure, b, n, old.samples.get(figure), entry.samples.get(figure))
            verdict = classify(figure, b, n, tol=check_tol, floor=check_floor, noise=noise)
            if verdict != "same":
                # A proportion over a data set estimates the model's behaviour on the distribution, so
                # it is judged, noise allowed for, whatever the fingerprints say (a retrained model,
                # another sample of the data); the other figures only mean something on the same ones.
                (sampled if noise > 0 else moved)[verdict].append(
                    FigureChange(entry.key, figure, b, n, check_tol, check_floor, noise))
        out.regressions.extend(sampled["regression"])
        out.improvements.extend(sampled["improvement"])
        if _fingerprints_differ(old, entry):
            changes = tuple(moved["regression"] + moved["improvement"])
            out.fingerprint_changes.append(FingerprintChange(entry.key, old, entry, changes))
            continue
        out.regressions.extend(moved["regression"])
        out.improvements.extend(moved["improvement"])
        out.unchanged += not (moved["regression"] or moved["improvement"] or sampled["regression"]
                              or sampled["improvement"])
    for key, old in sorted(baseline.entries.items()):
        if key in produced:
            continue
        if scope.covers(key):
            out.stale.append(old)
        else:
            out.not_run += 1
    return out


def _fingerprints_differ(old: BaselineEntry, new: BaselineEntry) -> bool:
    # Only fingerprints both sides recorded count: files written before fingerprints compare on figures.
    return any(a is not None and b is not None and a != b
               for a, b in ((old.weights, new.weights), (old.inputs, new.inputs)))
