"""What a baseline holds: one :class:`BaselineEntry` of figures per check, under its :class:`BaselineKey`.

The pure data of :mod:`.baseline` (see its docstring for the rules), with the keys read off a
:class:`CheckResult` and how a run's entries are merged into a baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance.check.result import PROPORTIONS

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult

#: Version of the file format; a file of another version is refused, never rewritten.
BASELINE_VERSION = 1
#: The ``format`` field that tells a baseline apart from other JSON files (e.g. ``--equiv-json``).
BASELINE_FORMAT = "pytest-equivariance-baseline"
#: Default relative tolerance: a figure may get 10% worse before it is a regression.
DEFAULT_REGRESSION_TOL = 0.1
#: Figures where a larger value is better; all others are errors (smaller is better).
LARGER_IS_BETTER = frozenset({"consistency", "psnr", "accuracy", "transformed_accuracy", "worst_case_accuracy",
                              "mean_iou"})
#: PSNRs above this many dB are all "identical up to rounding": compared as equal (an exact model's
#: PSNR moves between 120 dB and infinity with the summation order).
PSNR_CEILING = 100.0
#: A proportion regresses only beyond this many standard errors of the difference of two figures
#: (two: a two-sided test at about 5%), besides the tolerance.
SAMPLING_Z = 2.0
#: Absolute change of an error figure that is numerical noise, by dtype (about 100 ulp of 1.0).
NOISE_FLOOR: dict[str, float] = {
    "float64": 1e-12,
    "float32": 1e-5,
    "float16": 1e-2,
    "bfloat16": 5e-2,
}
#: Floor for dtypes not in :data:`NOISE_FLOOR`.
DEFAULT_NOISE_FLOOR = NOISE_FLOOR["float32"]
#: Figures are stored with this many significant digits (well below any sensible tolerance).
SIGNIFICANT_DIGITS = 6


@dataclass(frozen=True, order=True)
class BaselineKey:
    """What identifies one check across runs: test, position in the test, kind, device kind, dtype."""

    test_id: str
    index: int
    kind: str
    device: str
    dtype: str

    def __str__(self) -> str:
        return f"{self.test_id} [{self.index}: {self.kind}, {self.device}, {self.dtype}]"


@dataclass(frozen=True)
class BaselineEntry:
    """The stored figures of one check."""

    key: BaselineKey
    figures: Mapping[str, float]
    seed: int | None = None
    weights: str | None = None  # fingerprint of the model's state dict
    inputs: str | None = None  # fingerprint of the check's inputs
    samples: Mapping[str, int] = field(default_factory=dict)  # images behind each proportion figure


@dataclass
class Baseline:
    """A set of entries, one per key."""

    entries: dict[BaselineKey, BaselineEntry] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def tests(self) -> set[str]:
        """The test ids that have at least one entry."""
        return {key.test_id for key in self.entries}


# --------------------------------------------------------------------------- keys and entries


def check_kind(result: "CheckResult") -> str:
    """Return the check's kind for its key: a group check names its group and fields, which change
    what is measured (``rotation_equivariant[C8; input: 1 scalar; output: 4 regular]``)."""
    if not result.group:
        return result.kind
    fields = "; ".join(f"{where}: {what}" for where, what in sorted((result.fields or {}).items()))
    return f"{result.kind}[{result.group}{'; ' + fields if fields else ''}]"


def device_kind(device: str) -> str:
    """Return the kind of a device string: ``"cuda:1"`` -> ``"cuda"``, ``"cpu"`` -> ``"cpu"``."""
    return str(device).split(":", 1)[0] or "cpu"


def dtype_name(dtype: str) -> str:
    """Return a dtype's short name: ``"torch.float32"`` -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def sampling_noise(figure: str, baseline: float, now: float, n_baseline: int | None, n_now: int | None) -> float:
    """Return the change of a proportion that sampling alone explains: ``SAMPLING_Z`` standard errors.

    For proportions ``p1`` over ``n1`` images and ``p2`` over ``n2``, the standard error of their
    difference is ``sqrt(p1(1-p1)/n1 + p2(1-p2)/n2)``. Zero for other figures, or without both sizes.
    """
    if figure not in PROPORTIONS or not n_baseline or not n_now:
        return 0.0
    if not all(0.0 <= p <= 1.0 for p in (baseline, now)):
        return 0.0
    variance = baseline * (1 - baseline) / n_baseline + now * (1 - now) / n_now
    return SAMPLING_Z * math.sqrt(variance)


def noise_floor(dtype: str) -> float:
    """Return the default absolute noise floor for error figures of ``dtype``."""
    return NOISE_FLOOR.get(dtype_name(dtype), DEFAULT_NOISE_FLOOR)


def entries_from_results(results: Iterable["CheckResult"]) -> list[BaselineEntry]:
    """Return one entry per result; the index counts the checks of each test in result order.

    Results of one test arrive together and in the order the test ran them (they ride on the test's
    report), so the index is the same in a serial run and under pytest-xdist.
    """
    seen: dict[str, int] = {}
    entries = []
    for result in results:
        test_id = result.test_id or "<no test>"
        index = seen.get(test_id, 0)
        seen[test_id] = index + 1
        key = BaselineKey(test_id, index, check_kind(result), device_kind(result.device), dtype_name(result.dtype))
        entries.append(BaselineEntry(key, dict(result.figures()), result.seed, result.weights_fingerprint,
                                     result.inputs_fingerprint, dict(result.samples())))
    return entries


def merge(
    baseline: Baseline,
    entries: Iterable[BaselineEntry],
    *,
    ran_tests: Iterable[str] | None = None,
    prune: bool = False,
) -> Baseline:
    """Return the baseline updated with a run's entries.

    The entries this run covers (:func:`in_scope`) are replaced by the run's own, so checks a test no
    longer runs disappear. The others are kept: ``pytest -k subset --equiv-baseline-update`` does not
    drop the other tests, nor does a CPU run drop the CUDA entries of the same tests — unless
    ``prune`` is set, which keeps only this run's entries.
    """
    entries = list(entries)
    scope = Scope.of(entries, ran_tests)
    merged = {} if prune else {k: e for k, e in baseline.entries.items() if not scope.covers(k)}
    for entry in entries:
        merged[entry.key] = entry
    return Baseline(merged)


def in_scope(
    key: BaselineKey, entries: Iterable[BaselineEntry], ran_tests: Iterable[str] | None = None
) -> bool:
    """Return whether a run with these entries would have produced ``key`` had it still existed.

    That is: its test ran (it is in ``ran_tests`` or has entries) and the run checked on its device
    kind (some entry of the run is on that device kind). A CPU-only run says nothing about the CUDA
    entries of the same tests.
    """
    return Scope.of(list(entries), ran_tests).covers(key)


@dataclass(frozen=True)
class Scope:
    tests: frozenset[str]
    devices: frozenset[str]

    @classmethod
    def of(cls, entries: list[BaselineEntry], ran_tests: Iterable[str] | None) -> "Scope":
        tests = {e.key.test_id for e in entries} | set(ran_tests or ())
        return cls(frozenset(tests), frozenset(e.key.device for e in entries))

    def covers(self, key: BaselineKey) -> bool:
        return key.test_id in self.tests and key.device in self.devices


# -- the JSON form of keys and entries (baseline files, comparison reports) --------------------


def round_figure(value: float) -> float | str:
    if not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": strict JSON has no such numbers
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def key_json(key: BaselineKey) -> dict[str, Any]:
    return {
        "test": key.test_id, "index": key.index, "kind": key.kind, "device": key.device, "dtype": key.dtype
    }


def entry_json(entry: BaselineEntry) -> dict[str, Any]:
    data = key_json(entry.key)
    data["figures"] = {name: round_figure(float(v)) for name, v in sorted(entry.figures.items())}
    if entry.seed is not None:
        data["seed"] = entry.seed
    if entry.weights is not None:
        data["weights"] = entry.weights
    if entry.inputs is not None:
        data["inputs"] = entry.inputs
    if entry.samples:
        data["samples"] = {name: int(n) for name, n in sorted(entry.samples.items())}
    return data
