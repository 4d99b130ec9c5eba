"""What does linting a very large model cost against importing torch? Targets: <= 1.6 GB, <= 2.5x.

``equiv-lint --no-cache torchvision.models:vit_h_14`` (632M parameters; uncached, so every run
lints afresh) against a bare
``python -c "import torch, torchvision"``, each a fresh subprocess: wall-clock seconds and peak
resident memory (the child's ``ru_maxrss``). A linter that initialised the weights would hold
2.5 GB of random numbers it never reads.

    python benchmarks/lint_memory.py                     # vit_h_14, best of 3
    python benchmarks/lint_memory.py --model vit_l_16 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from _target import at_most, exit_code  # this directory is on sys.path when run as a script

IMPORT = "import torch, torchvision.models"
#: Memory target (bytes) and time target (ratio to the bare import).
MEMORY_TARGET = 1.6e9
RATIO_TARGET = 2.5


def run(command: list[str]) -> tuple[float, int]:
    """Return (wall seconds, peak RSS bytes) of one fresh subprocess; exit if it fails."""
    start = time.perf_counter()
    # os.wait4 reports the peak of exactly this child (RUSAGE_CHILDREN would keep the largest so far).
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        stderr = process.stderr.read().decode() if process.stderr else ""
        sys.exit(f"command failed ({code}): {' '.join(command)}\n{stderr}")
    return wall, usage.ru_maxrss * 1024  # kilobytes on Linux


def best(command: list[str], repeat: int) -> tuple[float, int]:
    """Return the fastest wall time and the smallest peak memory of ``repeat`` runs."""
    runs = [run(command) for _ in range(repeat)]
    return min(w for w, _ in runs), min(m for _, m in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_h_14", help="torchvision model name (default: vit_h_14)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the best is kept")
    args = parser.parse_args(argv)

    bare = [sys.executable, "-c", IMPORT]
    lint = [sys.executable, "-m", "pytest_equivariance.cli", f"torchvision.models:{args.model}",
            "--format", "json", "--exit-zero", "--no-cache"]
    bare_wall, bare_rss = best(bare, args.repeat)
    lint_wall, lint_rss = best(lint, args.repeat)
    print(f"model:                      {args.model}   (best of {args.repeat})")
    print(f"                            {'wall':>8}  {'peak RSS':>10}")
    print(f"import torch, torchvision:  {bare_wall:7.2f}s  {bare_rss / 1e9:8.2f} GB")
    print(f"equiv-lint:                 {lint_wall:7.2f}s  {lint_rss / 1e9:8.2f} GB")
    print(f"ratio:                      {lint_wall / bare_wall:7.2f}x  {lint_rss / bare_rss:8.2f}x")
    at_most(f"equiv-lint {args.model} / import (wall)", lint_wall / bare_wall, RATIO_TARGET)
    at_most(f"equiv-lint {args.model} peak RSS", lint_rss / 1e9, MEMORY_TARGET / 1e9, unit=" GB")
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
