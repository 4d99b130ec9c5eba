"""How much does ``equiv-lint`` cost over building and fx-tracing the same models? Target: <= 1.3x.

Both sides run as fresh subprocesses, so both pay for Python, torch and torchvision imports and for
building the models (random init, no weights downloaded); the difference is the linter itself:
leaf-aware tracing, shape propagation on the meta device, source locations, the rules, rendering.

    python benchmarks/lint_overhead.py            # 10 torchvision models, best of 3
    python benchmarks/lint_overhead.py --repeat 5 --models resnet18,vgg11
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

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
    """Return the equiv-lint command over ``models`` (JSON output: no terminal rendering costs)."""
    targets = [f"torchvision.models:{name}" for name in models]
    cli = [sys.executable, "-m", "pytest_equivariance.cli"]
    return [*cli, *targets, "--format", "json", "--exit-zero"]


def bare_command(models: list[str]) -> list[str]:
    """Return a command that only builds the models and fx-traces them."""
    return [sys.executable, "-c", BARE, *models]


def best_time(command: list[str], repeat: int) -> tuple[float, float]:
    """Return the fastest (wall-clock, CPU) seconds of ``repeat`` runs; exit if the command fails.

    CPU time (user + system of the child) is reported beside wall-clock time because it is far less
    disturbed by other processes on a shared machine.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        if done.returncode not in (0, 1):
            sys.exit(f"command failed ({done.returncode}): {' '.join(command)}\n{done.stderr}")
    return min(walls), min(cpus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the best is kept")
    parser.add_argument(
        "--models", default=",".join(MODELS), help="torchvision model names, comma-separated"
    )
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]

    bare_wall, bare_cpu = best_time(bare_command(models), args.repeat)
    lint_wall, lint_cpu = best_time(lint_command(models), args.repeat)
    print(f"models:            {len(models)} ({', '.join(models)})")
    print(f"                   {'wall':>8}  {'cpu':>8}   (best of {args.repeat})")
    print(f"build + fx trace:  {bare_wall:7.2f}s  {bare_cpu:7.2f}s")
    print(f"equiv-lint:        {lint_wall:7.2f}s  {lint_cpu:7.2f}s")
    ratios = f"{lint_wall / bare_wall:7.2f}x  {lint_cpu / bare_cpu:7.2f}x"
    print(f"ratio:             {ratios}   (target <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
