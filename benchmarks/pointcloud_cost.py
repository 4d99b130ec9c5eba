"""Cost of an E(3) check over 64 elements: ours (copies as disjoint unions) against e3nn's own loop.

Both judge the same e3nn tensor-product convolution on the same graph over 64 elements of O(3):
``check_e3_equivariant(..., group="O3", trials=64)`` and e3nn's
``equivariance_error(..., ntrials=64, do_parity=False, do_translation=False)`` (one random O(3)
matrix per trial in a Python loop, the model run twice per trial, D-matrices rebuilt by matrix
exponentials each time). A graph model is also timed on the EGNN layer of the tests against the same
loop. Target: ours at most 0.5x e3nn's.

    python benchmarks/pointcloud_cost.py [--device cpu|cuda] [--rounds 5] [--nodes 16] [--threads N] [--wall]

Times are medians over ``--rounds`` runs after a warm-up, of the process's CPU time (``--wall``: the
wall clock).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from _target import at_most, exit_code  # this directory is on sys.path when run as a script
from pytest_equivariance.check.api import check_e3_equivariant

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "check"))

#: Ours may cost this much of e3nn's loop over the same number of elements.
TARGET = 0.5
ELEMENTS = 64


def median_time(run: Callable[[], object], rounds: int, clock: Callable[[], float]) -> float:
    run()  # warm-up
    times = []
    for _ in range(rounds):
        start = clock()
        run()
        times.append(clock() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wall", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.wall else time.process_time
    from cloud_models import TP_IRREPS_IN, TP_IRREPS_OUT, egnn, graph, tensor_product_net
    from e3nn.util.test import equivariance_error

    pos, h, edges = (t.to(args.device) for t in graph(nodes=args.nodes))
    x = torch.randn(args.nodes, 10, device=args.device)
    cases = {
        "e3nn tensor product": (tensor_product_net().to(args.device), (pos, x, edges),
                                ("points", TP_IRREPS_IN, None), TP_IRREPS_OUT,
                                ["cartesian_points", TP_IRREPS_IN, None], [TP_IRREPS_OUT]),
        "EGNN layer": (egnn().to(args.device), (pos, h, edges), ("points", "4x0e", None), ("points", "4x0e"),
                       ["cartesian_points", "4x0e", None], ["cartesian_points", "4x0e"]),
    }
    print(f"{ELEMENTS} elements of O(3), {args.nodes} nodes, complete graph, device {args.device}, "
          f"{'wall' if args.wall else 'CPU'} time, median of {args.rounds}")
    for name, (model, inputs, fields_in, fields_out, e3nn_in, e3nn_out) in cases.items():
        ours = median_time(lambda: check_e3_equivariant(
            model, inputs, input_fields=fields_in, output_fields=fields_out, group="O3", trials=ELEMENTS,
            localize=False), args.rounds, clock)
        theirs = median_time(lambda: equivariance_error(
            model, list(inputs), irreps_in=e3nn_in, irreps_out=e3nn_out, ntrials=ELEMENTS, do_parity=False,
            do_translation=False), args.rounds, clock)
        print(f"{name}: check_e3_equivariant {ours * 1e3:.1f} ms, e3nn equivariance_error {theirs * 1e3:.1f} ms")
        at_most(f"{name}: ours / e3nn's loop", ours / theirs, TARGET)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
