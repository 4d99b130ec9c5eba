"""Overhead of streaming a DataLoader through a shift-invariance check over a bare loop.

The check reads a loader of ``(images, labels)`` batches and, per batch, forwards the reference and
its shifted copies, tallying consistency, the top-class probability change, accuracy and the error
figures. The bare loop forwards the same transformed batches (``torch.roll`` by the same shifts) and
computes only top-1 agreement. Both read the same loader. Target: at most 1.1x.

    python benchmarks/stream_overhead.py                  # CPU
    python benchmarks/stream_overhead.py --device cuda    # GPU
    python benchmarks/stream_overhead.py --images 1024 --repeats 5
"""

from __future__ import annotations

import argparse
import sys

from _target import at_most, exit_code  # this directory is on sys.path when run as a script
from _timing import best

TARGET = 1.1
SHIFTS = [(0, 1), (1, 0), (1, 1), (3, -2)]


def build(args: argparse.Namespace):
    import torch
    import torchvision
    from torch.utils.data import DataLoader, TensorDataset

    from pytest_equivariance.inputs import natural_images

    if args.threads:
        torch.set_num_threads(args.threads)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval().to(args.device)
    images = natural_images((args.images, 3, args.size, args.size), seed=0)
    labels = torch.arange(args.images) % 10
    return model, DataLoader(TensorDataset(images, labels), batch_size=args.batch)


def bare_loop(model, loader, device: str) -> float:
    """Top-1 agreement of every shifted copy with the reference, over the loader."""
    import torch

    agree = total = 0
    with torch.inference_mode():
        for images, _ in loader:
            x = images.to(device)
            reference = model(x).argmax(1)
            for shift in SHIFTS:
                agree += int((model(torch.roll(x, shift, (-2, -1))).argmax(1) == reference).sum())
                total += len(x)
    return agree / total


def check(model, loader, device: str) -> float:
    from pytest_equivariance import check_shift_invariant

    result = check_shift_invariant(model, loader, shifts=SHIFTS, device=device, localize=False, progress=False)
    return result.consistency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    model, loader = build(args)
    check(model, loader, args.device)  # warm-up: imports, allocator, kernels
    bare, bare_consistency = best(bare_loop, args.repeats, model, loader, args.device)
    streamed, consistency = best(check, args.repeats, model, loader, args.device)
    assert abs(consistency - bare_consistency) < 1e-9, (consistency, bare_consistency)
    ratio = streamed / bare
    print(f"{args.images} images in batches of {args.batch}, {len(SHIFTS)} shifts, resnet18 at "
          f"{args.size}x{args.size} on {args.device}")
    print(f"bare loop        {bare:8.3f} s")
    print(f"streamed check   {streamed:8.3f} s")
    print(f"ratio            {ratio:8.2f}x")
    at_most("streamed check / bare loop", ratio, TARGET)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
