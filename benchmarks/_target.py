"""A benchmark's verdict: each target it states is met or missed, and one miss makes it exit 1.

A benchmark calls :func:`at_most` (or :func:`at_least`) once per figure it is judged by, which
prints the figure against its target, and returns :func:`exit_code` from ``main``, so a developer
sees a regression in speed the way a failing test shows one in behaviour. ``run_all.py`` collects
every script's figures into one table (``EQUIV_BENCH_RECORD`` names the file each appends to).

``EQUIV_BENCH_TARGET_SCALE`` scales every target: below 1 it tightens them (``0.0001`` makes each
impossible), which is how the tests check that a missed target fails.
"""

from __future__ import annotations

import json
import os

#: Multiplies each upper bound and divides each lower bound (default 1).
SCALE_ENV = "EQUIV_BENCH_TARGET_SCALE"
#: A file that receives one JSON line per judged figure (run_all.py sets it).
RECORD_ENV = "EQUIV_BENCH_RECORD"

_missed: list[str] = []


def scale() -> float:
    """Return the factor from ``EQUIV_BENCH_TARGET_SCALE`` (1 when unset)."""
    text = os.environ.get(SCALE_ENV, "").strip()
    try:
        factor = float(text) if text else 1.0
    except ValueError:
        raise SystemExit(f"{SCALE_ENV}={text!r} is not a number; set it to a factor such as 0.0001, or unset it.")
    if not factor > 0:
        raise SystemExit(f"{SCALE_ENV}={text!r} is not positive; set it to a factor such as 0.0001, or unset it.")
    return factor


def at_most(figure: str, value: float, target: float, unit: str = "x") -> bool:
    """Judge ``value <= target`` (the target scaled), print the verdict, record it; return whether met."""
    return _judge(figure, value, target * scale(), "<=", unit)


def at_least(figure: str, value: float, target: float, unit: str = "x") -> bool:
    """Judge ``value >= target`` (the target divided by the scale), print the verdict, record it."""
    return _judge(figure, value, target / scale(), ">=", unit)


def exit_code() -> int:
    """1 when a target was missed in this process, else 0: what a benchmark's ``main`` returns."""
    return 1 if _missed else 0


def _judge(figure: str, value: float, target: float, relation: str, unit: str) -> bool:
    met = value <= target if relation == "<=" else value >= target
    if not met:
        _missed.append(figure)
    print(f"target: {figure} {value:.3g}{unit} {relation} {target:.3g}{unit}: {'met' if met else 'MISSED'}", flush=True)
    record = os.environ.get(RECORD_ENV)
    if record:
        line = {"figure": figure, "value": value, "target": target, "relation": relation, "unit": unit, "met": met}
        with open(record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
    return met
