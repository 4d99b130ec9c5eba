"""How much does ``equiv-lint`` cost against building and fx-tracing the same models? Target: <= 0.7x.

Both sides run as fresh subprocesses, so both pay for Python, torch and torchvision imports. The bare
side builds each model as a user would (random initialisation, no weights downloaded) and traces it;
``equiv-lint`` builds the same models without initialising or allocating their large weights
(``lint/empty``), traces them once, propagates shapes on the meta device, locates and reports.

The two sides run alternately, so a slow stretch of a shared machine hits both; the ratio judged is
the median over those pairs.

    python benchmarks/lint_overhead.py            # 10 torchvision models, 5 pairs
    python benchmarks/lint_overhead.py --repeat 3 --models resnet18,vgg11
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

from _target import at_most, exit_code  # this directory is on sys.path when run as a script

TARGET = 0.7

MODELS = (
    "resnet18",
    "resnet50",
    "vgg11",
    "alexnet",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "densenet121",
    "shufflenet_v2_x1_0",
    "convnext_tiny",
)

BARE = """
import sys
import torch.fx
import torchvision.models

for name in sys.argv[1:]:
    model = getattr(torchvision.models, name)()
    torch.fx.symbolic_trace(model)
"""


def lint_command(models: list[str]) -> list[str]:
    """Return the equiv-lint command over ``models`` (JSON output: no terminal rendering costs).

    ``--no-cache``: this is the first run's cost; ``lint_cache.py`` measures the cached one.
    """
    targets = [f"torchvision.models:{name}" for name in models]
    cli = [sys.executable, "-m", "pytest_equivariance.cli"]
    return [*cli, *targets, "--format", "json", "--exit-zero", "--no-cache"]


def bare_command(models: list[str]) -> list[str]:
    """Return a command that only builds the models and fx-traces them."""
    return [sys.executable, "-c", BARE, *models]


def timed(command: list[str]) -> tuple[float, float]:
    """Return the (wall-clock, CPU) seconds of one run of ``command``; exit if the command fails.

    CPU time (user + system of the child) is reported beside wall-clock time because it is far less
    disturbed by other processes on a shared machine.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        sys.exit(f"command failed ({done.returncode}): {' '.join(command)}\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="pairs of runs (bare, then equiv-lint)")
    parser.add_argument(
        "--models", default=",".join(MODELS), help="torchvision model names, comma-separated"
    )
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]

    pairs = []
    for _ in range(args.repeat):
        pairs.append((timed(bare_command(models)), timed(lint_command(models))))
    bare_wall = min(b[0] for b, _ in pairs)
    bare_cpu = min(b[1] for b, _ in pairs)
    lint_wall = min(lint[0] for _, lint in pairs)
    lint_cpu = min(lint[1] for _, lint in pairs)
    wall_ratio = statistics.median(lint[0] / b[0] for b, lint in pairs)
    cpu_ratio = statistics.median(lint[1] / b[1] for b, lint in pairs)
    print(f"models:            {len(models)} ({', '.join(models)})")
    print(f"                   {'wall':>8}  {'cpu':>8}   (best of {args.repeat})")
    print(f"build + fx trace:  {bare_wall:7.2f}s  {bare_cpu:7.2f}s")
    print(f"equiv-lint:        {lint_wall:7.2f}s  {lint_cpu:7.2f}s")
    print(f"ratio of bests:    {lint_wall / bare_wall:7.2f}x  {lint_cpu / bare_cpu:7.2f}x")
    print(f"median pair ratio: {wall_ratio:7.2f}x  {cpu_ratio:7.2f}x")
    at_most("equiv-lint / build + fx trace (wall, median pair)", wall_ratio, TARGET)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
