"""Overhead of a shift-invariance check over the bare batched forward pass it needs.

A 32-shift invariance check on torchvision's resnet18 (random weights) puts 33 images through the
model: the reference and 32 shifted copies. This script times the check against one batched forward
pass of the same 33 images, prints the ratio (target: at most 1.15x on CPU and GPU), and reports the
peak memory of the check with one chunk and with small chunks (``batch_size=4``).

    python benchmarks/check_overhead.py                 # CPU
    python benchmarks/check_overhead.py --device cuda   # GPU
    python benchmarks/check_overhead.py --size 128 --repeats 5

Peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the peak resident set size
(VmHWM, reset through /proc/self/clear_refs; ``ru_maxrss`` where that is not available) above the
resident size before the check, each configuration in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from _target import at_most, exit_code  # this directory is on sys.path when run as a script

TRIALS = 32
#: The check may cost at most this much more than the bare batched forward pass.
TARGET = 1.15


def build(args: argparse.Namespace):
    import torch
    import torchvision

    from pytest_equivariance.inputs import natural_images

    if args.threads:
        torch.set_num_threads(args.threads)
    model = torchvision.models.resnet18(weights=None).eval().to(args.device)
    x = natural_images((1, 3, args.size, args.size), seed=0, device=args.device)
    return model, x


def shifted_batch(x):
    """The same 33 images the check forwards: the reference and the check's 32 shifts."""
    import random

    import torch

    from pytest_equivariance.check.api import DEFAULT_MAX_SHIFT, draw_shifts

    deltas = draw_shifts(random.Random(0), (1, 1), DEFAULT_MAX_SHIFT, TRIALS)
    return torch.cat([x] + [torch.roll(x, d, (-2, -1)) for d in deltas])


def run_check(model, x, args: argparse.Namespace, batch_size=None):
    from pytest_equivariance.check.api import check_shift_invariant

    # localize=False: random weights alias, and the per-layer profile is a separate, optional cost.
    return check_shift_invariant(
        model, x, trials=TRIALS, seed=0, device=args.device, batch_size=batch_size, localize=False
    )


def sync(args: argparse.Namespace) -> None:
    if args.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def measure_time(args: argparse.Namespace) -> dict:
    import torch

    model, x = build(args)
    batch = shifted_batch(x)

    def bare() -> None:
        with torch.inference_mode():
            model(batch)

    # Interleave the two so that a busy machine slows both alike.
    bare_times, check_times = [], []
    bare()
    run_check(model, x, args)
    for _ in range(args.repeats):
        bare_times += timed_once(bare, args)
        check_times += timed_once(lambda: run_check(model, x, args), args)
    result = run_check(model, x, args)
    return {
        "bare": bare_times,
        "check": check_times,
        "passed": result.passed,
        "worst_error": result.worst_error,
        "threads": torch.get_num_threads(),
    }


def timed_once(fn, args: argparse.Namespace) -> list[float]:
    sync(args)
    start = time.perf_counter()
    fn()
    sync(args)
    return [time.perf_counter() - start]


def measure_memory_child(args: argparse.Namespace) -> dict:
    """Peak memory of one check in this process (called in a fresh subprocess on CPU)."""
    import torch

    model, x = build(args)
    batch_size = args.child_batch_size or None
    if args.device.startswith("cuda"):
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run_check(model, x, args, batch_size)
        return {"peak_mib": (torch.cuda.max_memory_allocated() - base) / 2**20}
    with torch.inference_mode():
        model(x)  # warm the allocator and kernels at batch 1
    base = _reset_peak_rss()
    run_check(model, x, args, batch_size)
    return {"peak_mib": (_peak_rss_kib() - base) / 1024}


def _reset_peak_rss() -> int:
    """Reset the process's peak resident set size where Linux allows it; return the current RSS in KiB.

    Writing 5 to /proc/self/clear_refs resets VmHWM, so the peak measured next is the check's own,
    not that of importing torch or building the model. Elsewhere, fall back to ru_maxrss as it is.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_rss_kib() -> int:
    try:
        return _status_kib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def measure_memory(args: argparse.Namespace, batch_size: int | None) -> float:
    command = [
        sys.executable, os.path.abspath(__file__), "--device", args.device, "--size", str(args.size),
        "--threads", str(args.threads), "--child-batch-size", str(batch_size or 0),
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads on CPU (default: torch's)")
    parser.add_argument("--chunk", type=int, default=4, help="batch_size of the chunked run (default 4)")
    parser.add_argument("--child-batch-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_batch_size is not None:
        print(json.dumps(measure_memory_child(args)))
        return 0

    figures = measure_time(args)
    print(f"resnet18 (weights=None), input 1x3x{args.size}x{args.size}, {TRIALS} shifts, "
          f"device {args.device}, {figures['threads']} threads, {args.repeats} interleaved runs each")
    # The best run is the least disturbed by other processes (as timeit reports); the median is shown too.
    for name, pick in (("best", min), ("median", statistics.median)):
        bare, check = pick(figures["bare"]), pick(figures["check"])
        print(f"  {name:6s}: bare batched forward of {TRIALS + 1} images {bare * 1000:8.1f} ms, "
              f"check_shift_invariant ({TRIALS} shifts) {check * 1000:8.1f} ms, ratio {check / bare:.3f}x")
    paired = statistics.median(c / b for b, c in zip(figures["bare"], figures["check"]))
    print(f"  median of the paired ratios (each check against the bare pass just before it): {paired:.3f}x")
    at_most("check / bare forward (median paired ratio)", paired, TARGET)
    print(f"  (check verdict: passed={figures['passed']}, worst error {figures['worst_error']:.3g})")
    one_chunk = measure_memory(args, None)
    chunked = measure_memory(args, args.chunk)
    what = "torch.cuda.max_memory_allocated above the model" if args.device.startswith("cuda") else (
        "peak resident set size above the size before the check"
    )
    print(f"peak memory of the check ({what}):")
    print(f"  one chunk (batch_size automatic): {one_chunk:8.1f} MiB")
    print(f"  chunked (batch_size={args.chunk}):          {chunked:8.1f} MiB")
    return exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
