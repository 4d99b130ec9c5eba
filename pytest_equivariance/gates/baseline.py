"""Robustness baselines: the committed figures of every check, and how a run compares with them.

A baseline file stores, for each check a test ran, the figures of :meth:`CheckResult.figures`
(``worst_error`` and ``mean_error``, smaller is better; ``consistency``, ``psnr`` and, with labelled
inputs, ``accuracy``, ``transformed_accuracy`` and ``worst_case_accuracy``, larger is better), and how
many images each proportion came from (``samples``). A later run compares its own figures with them;
a figure that got worse by more than the allowed change is a *robustness regression*, even when the
check's own tolerance still passes.

The regression rule, for a baseline figure ``b`` and a new figure ``n`` (see :func:`classify`)::

    worsening = n - b            (errors: larger is worse)
              = b - n            (consistency, PSNR, accuracies: smaller is worse)
    allowed   = max(tol * |b|, floor, noise)
    regression  if worsening >  allowed
    improvement if worsening < -allowed

``noise`` is zero except for proportions over a data set whose sample sizes both sides recorded:
there it is two standard errors of the difference of the two proportions,
``2 * sqrt(b(1-b)/n_b + n(1-n)/n_n)`` (:func:`.entries.sampling_noise`), so a figure measured on a
finite sample regresses only when the change exceeds both the tolerance and what sampling explains.
Such proportions estimate the model's behaviour on the data's distribution, so they are compared
even when the weights or the sample changed (fingerprints below).

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
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pytest_equivariance.errors import BaselineError
from pytest_equivariance.files import write_atomic

# The data and the comparison live in their own modules; this one is the gate's whole interface.
from pytest_equivariance.gates.comparison import (
    Comparison,
    FigureChange,
    FingerprintChange,
    classify,
    compare,
)
from pytest_equivariance.gates.entries import (
    BASELINE_FORMAT,
    BASELINE_VERSION,
    DEFAULT_NOISE_FLOOR,
    DEFAULT_REGRESSION_TOL,
    LARGER_IS_BETTER,
    NOISE_FLOOR,
    PSNR_CEILING,
    SIGNIFICANT_DIGITS,
    Baseline,
    BaselineEntry,
    BaselineKey,
    check_kind,
    device_kind,
    dtype_name,
    entries_from_results,
    entry_json,
    in_scope,
    merge,
    noise_floor,
)

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_VERSION",
    "DEFAULT_NOISE_FLOOR",
    "DEFAULT_REGRESSION_TOL",
    "LARGER_IS_BETTER",
    "NOISE_FLOOR",
    "PSNR_CEILING",
    "SIGNIFICANT_DIGITS",
    "Baseline",
    "BaselineEntry",
    "BaselineKey",
    "Comparison",
    "FigureChange",
    "FingerprintChange",
    "check_kind",
    "classify",
    "compare",
    "device_kind",
    "dtype_name",
    "dumps",
    "entries_from_results",
    "in_scope",
    "load",
    "loads",
    "merge",
    "noise_floor",
    "save",
    "update",
    "write_atomic",
]

# --------------------------------------------------------------------------- the file format


def dumps(baseline: Baseline) -> str:
    """Return the deterministic JSON text of a baseline (sorted keys and entries, rounded figures)."""
    data = {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "checks": [entry_json(e) for _, e in sorted(baseline.entries.items())],
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


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"figure {value!r} is not a number")
    if isinstance(value, str) and value not in ("nan", "inf", "-inf"):
        raise ValueError(f"figure {value!r} is not a number")
    return float(value)


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
    samples = item.get("samples", {})
    if not isinstance(samples, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in samples.values()
    ):
        raise TypeError("samples must map figures to numbers of images")
    return BaselineEntry(
        BaselineKey(test, index, kind, device, dtype),
        {str(name): _number(value) for name, value in figures.items()},
        seed,
        weights,
        inputs,
        {str(name): n for name, n in samples.items()},
    )
