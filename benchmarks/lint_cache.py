"""A cached ``equiv-lint`` run against a bare ``python -c "import torch"``. Target: <= 0.2x.

Pre-commit on an unchanged tree: the first run lints (and fills the cache), every later run
answers from ``.equiv_lint_cache`` without importing torch. This times, as fresh subprocesses run
alternately, ``python -c "import torch"`` and a cached ``equiv-lint`` over the same 10 torchvision
models as ``lint_overhead.py`` (whose ratio is the uncached cost), in a temporary cache directory.
The ratio judged is the median over the pairs.

    python benchmarks/lint_cache.py [--repeat 7] [--models resnet18,vgg11]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _target import at_most, exit_code  # noqa: E402
from lint_overhead import MODELS, timed  # noqa: E402

TARGET = 0.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="pairs of runs (import torch, then cached lint)")
    parser.add_argument("--models", default=",".join(MODELS), help="torchvision model names, comma-separated")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    with tempfile.TemporaryDirectory() as cache:
        lint = [sys.executable, "-m", "pytest_equivariance.cli", *(f"torchvision.models:{m}" for m in models),
                "--format", "json", "--exit-zero", "--cache-dir", cache]
        first = timed(lint)  # fills the cache
        pairs = [(timed([sys.executable, "-c", "import torch"]), timed(lint)) for _ in range(args.repeat)]
    bare_wall = min(b[0] for b, _ in pairs)
    cached_wall = min(c[0] for _, c in pairs)
    wall_ratio = statistics.median(c[0] / b[0] for b, c in pairs)
    cpu_ratio = statistics.median(c[1] / b[1] for b, c in pairs)
    print(f"models:             {len(models)} ({', '.join(models)})")
    print(f"first run (lints):  {first[0]:7.2f}s wall")
    print(f"import torch:       {bare_wall:7.2f}s wall (best of {args.repeat})")
    print(f"cached equiv-lint:  {cached_wall:7.2f}s wall (best of {args.repeat})")
    print(f"median pair ratio:  {wall_ratio:7.2f}x wall  {cpu_ratio:7.2f}x cpu")
    at_most("cached equiv-lint / import torch (wall, median pair)", wall_ratio, TARGET)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
