"""The benchmarks fail when they miss a target: run_all.py on a fake benchmark, with targets made impossible."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

#: A benchmark as the real ones are written, judged by one upper and one lower bound, both met.
FAKE = """
import sys

from _target import at_least, at_most, exit_code

at_most("fake cost ratio", 1.0, 2.0)
at_least("fake reduction", 3.0, 2.0)
sys.exit(exit_code())
"""


@pytest.fixture
def run_all(tmp_path, monkeypatch):
    """run_all.py's main, pointed at a directory holding only fake.py."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(BENCHMARKS), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.delenv("EQUIV_BENCH_TARGET_SCALE", raising=False)
    import run_all as module

    (tmp_path / "fake.py").write_text(FAKE, encoding="utf-8")
    monkeypatch.setattr(module, "HERE", tmp_path)
    monkeypatch.setattr(module, "BENCHMARKS", {"fake.py": False})
    return module.main


def test_met_targets_exit_0_and_are_tabled(run_all, capfd):
    assert run_all([]) == 0
    out = capfd.readouterr().out
    assert "target: fake cost ratio 1x <= 2x: met" in out
    assert [line.split() for line in out.splitlines() if line.startswith("fake.py ")] == [
        ["fake.py", "fake", "cost", "ratio", "1x", "<=", "2x", "met"],
        ["fake.py", "fake", "reduction", "3x", ">=", "2x", "met"],
    ]


def test_an_impossible_target_makes_run_all_exit_1(run_all, monkeypatch, capfd):
    monkeypatch.setenv("EQUIV_BENCH_TARGET_SCALE", "0.0001")
    assert run_all([]) == 1
    out = capfd.readouterr().out
    assert "target: fake cost ratio 1x <= 0.0002x: MISSED" in out
    assert "target: fake reduction 3x >= 2e+04x: MISSED" in out
    assert out.rstrip().endswith("failed: fake.py")


def test_a_benchmark_that_breaks_fails_the_run(run_all, tmp_path, capfd):
    (tmp_path / "fake.py").write_text("raise SystemExit(3)\n", encoding="utf-8")
    assert run_all([]) == 1
    assert "FAILED (exit 3)" in capfd.readouterr().out
