"""Run every benchmark, one after another, each in a fresh process: ``python benchmarks/run_all.py``.

Each script prints its own figures and judges the ones with a target (``_target.py``): it exits 1
when it misses one. This prints every judged figure in one table at the end and exits 1 if any
target was missed or any script failed. ``--device cuda`` is passed on to the benchmarks that take a
device; the others run on the CPU. ``EQUIV_BENCH_TARGET_SCALE=0.0001`` makes every target impossible,
to see a miss fail the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _target import RECORD_ENV  # this directory is on sys.path when run as a script

HERE = Path(__file__).resolve().parent

#: script -> whether it takes --device
BENCHMARKS = {
    "lint_overhead.py": False,
    "lint_memory.py": False,
    "lint_cache.py": False,
    "check_overhead.py": True,
    "localize_cost.py": True,
    "blurpool_cost.py": True,
    "antialias_shift.py": False,
    "lie_cost.py": True,
    "attribution_cost.py": True,
    "group_cost.py": True,
    "polyphase_cost.py": True,
    "stream_overhead.py": True,
    "scale_cost.py": True,
    "pointcloud_cost.py": True,
    "volume_group_cost.py": True,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these scripts")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, str, str, str]] = []  # script, figure, value, target, verdict
    failed = []
    for script, takes_device in BENCHMARKS.items():
        if args.only and script not in args.only and script.removesuffix(".py") not in args.only:
            continue
        command = [sys.executable, str(HERE / script)]
        if takes_device:
            command += ["--device", args.device]
        print(f"\n=== {script} {' '.join(command[2:])}", flush=True)
        start = time.perf_counter()
        code, figures = _run(command)
        print(f"=== {script}: exit {code} in {time.perf_counter() - start:.1f} s", flush=True)
        for f in figures:
            verdict = "met" if f["met"] else "MISSED"
            rows.append((script, f["figure"], f"{f['value']:.3g}{f['unit']}",
                         f"{f['relation']} {f['target']:.3g}{f['unit']}", verdict))
        if code and all(f["met"] for f in figures):  # failed without missing a target: it broke
            rows.append((script, "(the script itself)", "-", "-", f"FAILED (exit {code})"))
        if not figures and not code:
            rows.append((script, "(no target)", "-", "-", "ran"))
        if code:
            failed.append(script)
    _print_table(rows)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


def _run(command: list[str]) -> tuple[int, list[dict]]:
    """Run one benchmark; return its exit code and the figures it judged (what _target recorded)."""
    with tempfile.TemporaryDirectory() as directory:
        record = Path(directory) / "figures.jsonl"
        code = subprocess.call(command, env={**os.environ, RECORD_ENV: str(record)})
        lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
    return code, [json.loads(line) for line in lines]


def _print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    header = ("benchmark", "figure", "value", "target", "verdict")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    raise SystemExit(main())
