"""Run every benchmark, one after another, each in a fresh process: ``python benchmarks/run_all.py``.

Each script prints its own figures and the ratio it is judged by. ``--device cuda`` is passed on to
the benchmarks that take a device; the others run on the CPU.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

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
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these scripts")
    args = parser.parse_args(argv)
    failed = []
    for script, takes_device in BENCHMARKS.items():
        if args.only and script not in args.only and script.removesuffix(".py") not in args.only:
            continue
        command = [sys.executable, str(HERE / script)]
        if takes_device:
            command += ["--device", args.device]
        print(f"\n=== {script} {' '.join(command[2:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(command)
        print(f"=== {script}: exit {code} in {time.perf_counter() - start:.1f} s", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
