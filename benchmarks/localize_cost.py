"""Cost of per-layer profiles: a check with ``localize=True`` relative to the plain check.

For each model this times ``check_shift_invariant(model, input_shape=..., seed=0)`` with
``localize=False`` and with ``localize=True`` (the same trials, plus the profile of the worst one:
for shifts the exact attribution, ``check.attribution``), and prints the median times and their
ratio; then the finite-transform profile (``localize``, what quarter turns and flips get; target
≤ 2.5x the plain check) split into its parts: building the linter's graph, the instrumented forward
pass of ``x`` stacked with ``g·x`` with the per-layer measure, and running the lint rules on the
culprit's site. ``benchmarks/attribution_cost.py`` judges the attribution against its reference.

    python benchmarks/localize_cost.py [--device cpu|cuda] [--rounds 7] [--trials N] [--threads N] [--wall]

Times are medians over ``--rounds`` runs after a warm-up, of the process's CPU time (all threads), so
that other work on a shared machine does not distort the ratios; ``--wall`` times the wall clock
instead.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from _target import at_most, exit_code  # this directory is on sys.path when run as a script
from pytest_equivariance.check.api import check_shift_invariant

#: The finite-transform profile (what quarter turns and flips get) may cost this much of the plain check.
TARGET = 2.5


def small_cnn() -> nn.Module:
    """A small classifier: three conv blocks (one strided max pool), global pooling, a linear head."""

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, 16), nn.MaxPool2d(2), *block(16, 32), *block(32, 32),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


def resnet18() -> nn.Module:
    import torchvision

    return torchvision.models.resnet18(weights=None)


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "small CNN @32": (small_cnn, (2, 3, 32, 32)),
    "resnet18 @64": (resnet18, (2, 3, 64, 64)),
    "resnet18 @128": (resnet18, (2, 3, 128, 128)),
}


CLOCK: Callable[[], float] = time.process_time


def median_time(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm-up: first-call allocations, lazy imports
    times = []
    for _ in range(rounds):
        start = CLOCK()
        fn()
        times.append(CLOCK() - start)
    return statistics.median(times)


def parts(model: nn.Module, shape: tuple[int, ...], device: str, rounds: int) -> dict[str, float]:
    """Return the median time of each part of ``localize`` on the check's default inputs."""
    from pytest_equivariance.check import layer_sites
    from pytest_equivariance.check import localize as loc
    from pytest_equivariance.check.transforms import shift
    from pytest_equivariance.inputs import natural_images

    x = natural_images(shape, seed=0, device=device)
    transform = shift((1, -3), (-2, -1))
    graph = layer_sites.model_graph(model, x[:1])
    measure = loc._measure_for(transform, x)[0]
    with torch.inference_mode():
        passes = median_time(
            lambda: loc._run_pairs(model, graph, x, transform.on_input(x), measure, None, False), rounds
        )
    first = graph.sites[0]
    site = layer_sites.describe(first.node if first.node is not None else (first.qualname, 0), graph)
    return {
        "graph": median_time(lambda: layer_sites.model_graph(model, x[:1]), rounds),
        "passes": passes,
        "rules": median_time(lambda: layer_sites.matching_finding(graph, site), rounds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--trials", type=int, default=None, help="shifts per check (default: the check's)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--wall", action="store_true", help="time the wall clock, not CPU time")
    args = parser.parse_args()
    global CLOCK
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.wall:
        CLOCK = time.perf_counter

    clock = "wall clock" if args.wall else "CPU time"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, {clock}")
    header = (f"{'model':<16} {'check':>9} {'+attrib.':>10} {'ratio':>6}   {'+finite':>8} {'ratio':>6}   "
              f"{'graph':>7} {'passes':>7} {'rules':>7}")
    print(header)
    print("-" * len(header))
    for name, (build, shape) in MODELS.items():
        torch.manual_seed(0)
        model = build().eval().to(args.device)

        def check(localize: bool) -> None:
            result = check_shift_invariant(
                model, input_shape=shape, seed=0, trials=args.trials, device=args.device, localize=localize
            )
            assert (result.profile is not None) == localize

        plain = median_time(lambda: check(False), args.rounds)
        full = median_time(lambda: check(True), args.rounds)
        split = parts(model, shape, args.device, args.rounds)
        finite = plain + split["graph"] + split["passes"] + split["rules"]
        print(
            f"{name:<16} {plain * 1e3:>7.1f}ms {full * 1e3:>8.1f}ms {full / plain:>5.2f}x   "
            f"{finite * 1e3:>6.1f}ms {finite / plain:>5.2f}x   "
            f"{split['graph'] * 1e3:>5.1f}ms {split['passes'] * 1e3:>5.1f}ms {split['rules'] * 1e3:>5.1f}ms"
        )
        at_most(f"{name} finite-transform profile / plain check", finite / plain, TARGET)
    return exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
