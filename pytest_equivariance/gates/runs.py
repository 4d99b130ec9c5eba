"""Results files of whole runs (``--equiv-json``): their format, reading them back, merging and comparing.

One run — a serial pytest run, or all the workers of an xdist run — writes one results file. CI
jobs make many (one per GPU, per Python, per shard); :func:`merge` lines their checks up by test,
and :func:`compare` treats one run as the baseline of another. ``equiv-report`` renders both.

This module is part of the pure core: it imports neither pytest, nor rich, nor torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_equivariance.gates import baseline as _baseline
from pytest_equivariance.check.result import CheckResult
from pytest_equivariance.errors import EquivarianceUsageError

#: Format tag and version of a results file.
RESULTS_FORMAT = "pytest-equivariance-results"
RESULTS_VERSION = 1


class ResultsFileError(EquivarianceUsageError):
    """A results file is missing, unreadable, corrupt, or of another format or version."""


def results_document(
    results: Sequence[CheckResult], entries: Sequence[_baseline.BaselineEntry], baseline: Mapping[str, Any] | None
) -> str:
    """Return the results file's text: every check, sorted by test and index, with the baseline section.

    Sorted rather than in the order reports arrived, so an xdist run writes the same file as a
    serial one. NaN and infinities are spelled as strings (strict JSON has none).
    """
    checks = []
    for entry, result in sorted(zip(entries, results), key=lambda pair: pair[0].key):
        data = result.to_json()
        data["test_id"] = entry.key.test_id
        data["index"] = entry.key.index
        checks.append(data)
    document = {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "checks": checks,
        "summary": {"checks": len(checks), "passed": sum(bool(r.passed) for r in results),
                    "failed": sum(not r.passed for r in results)},
        "baseline": dict(baseline) if baseline is not None else None,
    }
    return json.dumps(_strict(document), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _numbers(value: Any) -> Any:
    # The inverse of _strict: "nan" / "inf" / "-inf" are the only strings it writes for numbers.
    if value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


@dataclass
class RunFile:
    """One run's results, as read back from its file."""

    name: str  # how reports call it: the file name, made unique among the runs of one report
    path: Path
    results: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """How many checks of the run failed."""
        return sum(not r.passed for r in self.results)

    def entries(self) -> list[_baseline.BaselineEntry]:
        """The run's checks as baseline entries (for :func:`compare`)."""
        return _baseline.entries_from_results(self.results)


def load_run(path: str | Path, name: str | None = None) -> RunFile:
    """Read a results file; raise :class:`ResultsFileError` (one sentence naming it) when it is not one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsFileError(f"{path} does not exist; pass files written by pytest --equiv-json.") from None
    except (OSError, ValueError) as exc:  # ValueError: undecodable bytes, or a NUL in the path
        raise ResultsFileError(f"{path} cannot be read ({exc}); check the path and its permissions.") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResultsFileError(
            f"{path} is not valid JSON ({exc}); pass files written by pytest --equiv-json, whole."
        ) from exc
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise ResultsFileError(
            f"{path} is not a pytest-equivariance results file (no \"format\": \"{RESULTS_FORMAT}\"); "
            f"pass files written by pytest --equiv-json (a baseline file is not one)."
        )
    if data.get("version") != RESULTS_VERSION:
        raise ResultsFileError(
            f"{path} has results version {data.get('version')!r}, but this pytest-equivariance reads "
            f"version {RESULTS_VERSION}; render it with the pytest-equivariance that wrote it."
        )
    results = []
    for position, item in enumerate(data.get("checks") or []):
        try:
            item = _numbers(dict(item))
            item.pop("index", None)
            results.append(CheckResult.from_json(item))
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsFileError(
                f"{path} has a malformed check at checks[{position}] ({exc}); write it again with "
                f"pytest --equiv-json."
            ) from exc
    return RunFile(name or path.name, path, results)


def load_runs(paths: Sequence[str | Path]) -> list[RunFile]:
    """Read several results files, naming each by its file name (with its folder where names repeat)."""
    paths = [Path(p) for p in paths]
    names = [p.name for p in paths]
    shown = [str(p) if names.count(p.name) > 1 else p.name for p in paths]
    return [load_run(p, name) for p, name in zip(paths, shown)]


@dataclass
class MergedCheck:
    """One check (a test's k-th check of a kind) and its result in each run, None where it did not run."""

    test_id: str
    index: int
    kind: str
    results: list[CheckResult | None]

    @property
    def verdicts_differ(self) -> bool:
        """True when the check passed in one run and failed in another."""
        return len({r.passed for r in self.results if r is not None}) > 1

    @property
    def figures_differ(self) -> bool:
        """True when the worst errors of two runs differ by more than a baseline would allow."""
        ran = [r for r in self.results if r is not None]
        for other in ran[1:]:
            floor = _baseline.noise_floor(other.dtype)
            verdict = _baseline.classify("worst_error", ran[0].worst_error, other.worst_error,
                                         tol=_baseline.DEFAULT_REGRESSION_TOL, floor=floor)
            if verdict != "same":
                return True
        return False

    @property
    def weights_differ(self) -> bool:
        """True when two runs checked different weights (their fingerprints differ)."""
        return len({r.weights_fingerprint for r in self.results if r is not None and r.weights_fingerprint}) > 1

    @property
    def agree(self) -> bool:
        """True when every run ran the check, with the same verdict, figures and weights."""
        return not (self.verdicts_differ or self.figures_differ or self.weights_differ or self.missing)

    @property
    def missing(self) -> bool:
        """True when some run did not run the check."""
        return any(r is None for r in self.results)


def merge(runs: Sequence[RunFile]) -> list[MergedCheck]:
    """Line the runs' checks up by (test, index within the test, kind), sorted by test."""
    table: dict[tuple[str, int, str], list[CheckResult | None]] = {}
    for position, run in enumerate(runs):
        for entry, result in zip(run.entries(), run.results):
            key = (entry.key.test_id, entry.key.index, entry.key.kind)
            table.setdefault(key, [None] * len(runs))[position] = result
    return [MergedCheck(test, index, kind, results) for (test, index, kind), results in sorted(table.items())]


def compare(old: RunFile, new: RunFile, *, tol: float = _baseline.DEFAULT_REGRESSION_TOL) -> _baseline.Comparison:
    """Compare run ``new`` with run ``old`` as its baseline: regressions, improvements, weights changed."""
    before = _baseline.Baseline({e.key: e for e in old.entries()})
    return _baseline.compare(before, new.entries(), tol=tol)
