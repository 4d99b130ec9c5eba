"""Robustness baselines: the committed figures of every check, and how a run compares with them.

A baseline file stores, for each check a test ran, the figures of :meth:`CheckResult.figures`
(``worst_error`` and ``mean_error``, smaller is better; ``consistency``, larger is better). A later
run compares its own figures with them; a figure that got worse by more than the allowed change is a
*robustness regression*, even when the check's own tolerance still passes.

The regression rule, for a baseline figure ``b`` and a new figure ``n`` (see :func:`classify`)::

    worsening = n - b            (errors: larger is worse)
              = b - n            (consistency: smaller is worse)
    allowed   = max(tol * |b|, floor)
    regression  if worsening >  allowed
    improvement if worsening < -allowed

``tol`` is the relative tolerance (default :data:`DEFAULT_REGRESSION_TOL`); ``floor`` an absolute
change below which error figures are numerical noise (default per dtype, :data:`NOISE_FLOOR`), so an
exactly equivariant model whose error moves from 1e-7 to 2e-7 has not regressed. Consistency is a
fraction of agreeing predictions and has no noise floor; PSNR (dB, larger is better) is compared
capped at :data:`PSNR_CEILING`, above which every value is rounding noise.

A check is identified by a :class:`BaselineKey`: the test's node id, the index of the check within
the test (the order in which the test ran its checks), the check's kind, the device kind (``cpu``,
``cuda``; not the GPU index, so results travel between machines and xdist workers) and the dtype.

The file is deterministic JSON (sorted keys, figures rounded to :data:`SIGNIFICANT_DIGITS`
significant digits, entries sorted by key), so it diffs well in review and an xdist run writes the
same bytes as a serial one. Writes are atomic (a temporary file in the same directory, then
:func:`os.replace`) and, where the platform allows, serialised by a lock on the directory, so two
runs updating the same file at once both leave a valid file with both runs' entries.

Each entry also stores two fingerprints (:mod:`pytest_equivariance.check.fingerprint`): of the
model's weights and of the inputs the check used. Figures are only comparable when both match: a
check whose fingerprints differ from its baseline entry (a retrained or re-initialised model, other
inputs) is listed as *weights changed* with its figures beside, and is not a regression — unless
the comparison is strict (``strict_weights``), where it fails the run. Entries written without
fingerprints compare on figures alone.

This module is part of the pure core: it imports neither pytest, nor rich, nor torch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_equivariance.errors import BaselineError

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult

#: Version of the file format; a file of another version is refused, never rewritten.
BASELINE_VERSION = 1
#: The ``format`` field that tells a baseline apart from other JSON files (e.g. ``--equiv-json``).
BASELINE_FORMAT = "pytest-equivariance-baseline"
#: Default relative tolerance: a figure may get 10% worse before it is a regression.
DEFAULT_REGRESSION_TOL = 0.1
#: Figures where a larger value is better; all others are errors (smaller is better).
LARGER_IS_BETTER = frozenset({"consistency", "psnr"})
#: PSNRs above this many dB are all "identical up to rounding": compared as equal (an exact model's
#: PSNR moves between 120 dB and infinity with the summation order).
PSNR_CEILING = 100.0
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


@dataclass
class Baseline:
    """A set of entries, one per key."""

    entries: dict[BaselineKey, BaselineEntry] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def tests(self) -> set[str]:
        """The test ids that have at least one entry."""
        return {key.test_id for key in self.entries}


@dataclass(frozen=True)
class FigureChange:
    """One figure of one check that moved beyond the allowed change."""

    key: BaselineKey
    figure: str
    baseline: float
    now: float
    tol: float  # the relative tolerance that applied
    floor: float  # the absolute floor that applied

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
            return {**_key_json(c.key), "figure": c.figure, "baseline": c.baseline, "now": c.now,
                    "change": c.change, "tol": c.tol, "floor": c.floor}

        def fingerprint_change(c: FingerprintChange) -> dict[str, Any]:
            return {**_key_json(c.key), "weights_changed": c.weights_changed, "inputs_changed": c.inputs_changed,
                    "baseline": _entry_json(c.baseline), "now": _entry_json(c.now), "reason": c.reason,
                    "changes": [change(f) for f in c.changes]}

        return {
            "regressions": [change(c) for c in self.regressions],
            "improvements": [change(c) for c in self.improvements],
            "new": [_entry_json(e) for e in self.new],
            "stale": [_entry_json(e) for e in self.stale],
            "fingerprint_changes": [fingerprint_change(c) for c in self.fingerprint_changes],
            "weights_changed": self.weights_changed,
            "strict_weights": self.strict_weights,
            "unchanged": self.unchanged,
            "not_run": self.not_run,
        }


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
                                     result.inputs_fingerprint))
    return entries


# --------------------------------------------------------------------------- comparing


def classify(figure: str, baseline: float, now: float, *, tol: float, floor: float) -> str:
    """Return ``"regression"``, ``"improvement"`` or ``"same"`` for one figure (rule: module doc).

    A figure that became NaN is a regression; one that stopped being NaN an improvement. PSNRs are
    compared capped at :data:`PSNR_CEILING`.
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
    allowed = max(tol * abs(baseline), 0.0 if figure in LARGER_IS_BETTER else floor)
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
    scope = _Scope.of(entries, ran_tests)
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
        for figure in sorted(set(old.figures) & set(entry.figures)):
            b, n = float(old.figures[figure]), float(entry.figures[figure])
            verdict = classify(figure, b, n, tol=check_tol, floor=check_floor)
            if verdict != "same":
                moved[verdict].append(FigureChange(entry.key, figure, b, n, check_tol, check_floor))
        if _fingerprints_differ(old, entry):
            changes = tuple(moved["regression"] + moved["improvement"])
            out.fingerprint_changes.append(FingerprintChange(entry.key, old, entry, changes))
            continue
        out.regressions.extend(moved["regression"])
        out.improvements.extend(moved["improvement"])
        out.unchanged += not (moved["regression"] or moved["improvement"])
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
    scope = _Scope.of(entries, ran_tests)
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
    return _Scope.of(list(entries), ran_tests).covers(key)


@dataclass(frozen=True)
class _Scope:
    tests: frozenset[str]
    devices: frozenset[str]

    @classmethod
    def of(cls, entries: list[BaselineEntry], ran_tests: Iterable[str] | None) -> "_Scope":
        tests = {e.key.test_id for e in entries} | set(ran_tests or ())
        return cls(frozenset(tests), frozenset(e.key.device for e in entries))

    def covers(self, key: BaselineKey) -> bool:
        return key.test_id in self.tests and key.device in self.devices


# --------------------------------------------------------------------------- the file format


def dumps(baseline: Baseline) -> str:
    """Return the deterministic JSON text of a baseline (sorted keys and entries, rounded figures)."""
    data = {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "checks": [_entry_json(e) for _, e in sorted(baseline.entries.items())],
    }
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def loads(text: str, source: str = "<baseline>") -> Baseline:
    """Parse and validate baseline JSON text; raise :class:`BaselineError` naming ``source``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BaselineError(
            f"Baseline file {source} is not valid JSON ({exc}); restore it from version control "
            f"or delete it and rerun with --equiv-baseline-update."
        ) from exc
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise BaselineError(
            f"{source} is not a pytest-equivariance baseline (no \"format\": \"{BASELINE_FORMAT}\"); "
            f"pass the right file to --equiv-baseline, or write a new one with --equiv-baseline-update."
        )
    version = data.get("version")
    if version != BASELINE_VERSION:
        raise BaselineError(
            f"Baseline file {source} has version {version!r}, but this pytest-equivariance reads "
            f"version {BASELINE_VERSION}; use the matching pytest-equivariance version, or regenerate "
            f"the file with --equiv-baseline-update after moving it away."
        )
    checks = data.get("checks")
    if not isinstance(checks, list):
        raise BaselineError(
            f"Baseline file {source} has no \"checks\" list; restore it from version control or "
            f"regenerate it with --equiv-baseline-update."
        )
    out = Baseline()
    for position, item in enumerate(checks):
        try:
            entry = _entry_from_json(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise BaselineError(
                f"Baseline file {source} has a malformed entry at checks[{position}] ({exc}); "
                f"restore it from version control or regenerate it with --equiv-baseline-update."
            ) from exc
        if entry.key in out.entries:
            raise BaselineError(
                f"Baseline file {source} lists {entry.key} twice; remove one of the entries or "
                f"regenerate the file with --equiv-baseline-update."
            )
        out.entries[entry.key] = entry
    return out


def load(path: str | os.PathLike[str]) -> Baseline:
    """Read and validate a baseline file; a missing or unreadable file is a :class:`BaselineError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BaselineError(
            f"Baseline file {path} does not exist; create it with --equiv-baseline {path} "
            f"--equiv-baseline-update."
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(
            f"Baseline file {path} cannot be read ({exc}); check the path and its permissions."
        ) from exc
    return loads(text, str(path))


def save(path: str | os.PathLike[str], baseline: Baseline) -> None:
    """Write a baseline file atomically (see :func:`write_atomic`)."""
    write_atomic(path, dumps(baseline))


def update(
    path: str | os.PathLike[str],
    entries: Iterable[BaselineEntry],
    *,
    ran_tests: Iterable[str] | None = None,
    prune: bool = False,
) -> tuple[Baseline, Baseline]:
    """Merge a run's entries into the file at ``path`` and write it; return ``(before, after)``.

    The file is re-read, merged (:func:`merge`) and written under a lock on its directory, so
    concurrent updates do not lose each other's entries. A missing file counts as empty; a corrupt or
    wrong-version file raises :class:`BaselineError` and is left as it is.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BaselineError(
            f"Cannot create the directory of baseline file {path} ({exc}); check the path."
        ) from exc
    with _directory_lock(path.parent):
        before = load(path) if path.exists() else Baseline()
        after = merge(before, entries, ran_tests=ran_tests, prune=prune)
        save(path, after)
    return before, after


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part.

    The text goes to a temporary file in the same directory (same file system), is flushed to disk,
    then renamed over ``path`` with :func:`os.replace`. Missing parent directories are created. The
    file keeps its permissions, or gets the usual ones for a new file (0o666 minus the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open applies the umask to 0o666 itself (mkstemp would create 0o600, and reading the umask
    # means setting it, which races with other threads).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    # An advisory lock on the directory itself: no lock file is left next to the baseline. Where the
    # platform cannot lock directories (Windows), writes are still atomic; the last writer wins.
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - unusual file systems
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _round(value: float) -> float | str:
    if not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": strict JSON has no such numbers
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"figure {value!r} is not a number")
    if isinstance(value, str) and value not in ("nan", "inf", "-inf"):
        raise ValueError(f"figure {value!r} is not a number")
    return float(value)


def _key_json(key: BaselineKey) -> dict[str, Any]:
    return {
        "test": key.test_id, "index": key.index, "kind": key.kind, "device": key.device, "dtype": key.dtype
    }


def _entry_json(entry: BaselineEntry) -> dict[str, Any]:
    data = _key_json(entry.key)
    data["figures"] = {name: _round(float(v)) for name, v in sorted(entry.figures.items())}
    if entry.seed is not None:
        data["seed"] = entry.seed
    if entry.weights is not None:
        data["weights"] = entry.weights
    if entry.inputs is not None:
        data["inputs"] = entry.inputs
    return data


def _entry_from_json(item: Any) -> BaselineEntry:
    if not isinstance(item, dict):
        raise TypeError("an entry must be an object")
    test, index, kind, device, dtype = (item[k] for k in ("test", "index", "kind", "device", "dtype"))
    if not all(isinstance(v, str) for v in (test, kind, device, dtype)):
        raise TypeError("test, kind, device and dtype must be strings")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise TypeError("index must be a non-negative integer")
    figures = item["figures"]
    if not isinstance(figures, dict):
        raise TypeError("figures must be an object")
    seed = item.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError("seed must be an integer")
    weights, inputs = item.get("weights"), item.get("inputs")
    if not all(v is None or isinstance(v, str) for v in (weights, inputs)):
        raise TypeError("the weights and inputs fingerprints must be strings")
    return BaselineEntry(
        BaselineKey(test, index, kind, device, dtype),
        {str(name): _number(value) for name, value in figures.items()},
        seed,
        weights,
        inputs,
    )
