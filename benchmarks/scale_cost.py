"""Cost of a scale-invariance check of a random-init resnet18 over a bare loop of the same rescalings.

The check rescales each batch by every factor (ideal Fourier resampling by default), forwards the
reference and the rescaled copies, and tallies the error figures, consistency and the top-class
probability change. The bare loop forwards the same rescaled batches (``resample_fourier`` by the
same factors) and computes only top-1 agreement. Targets: at most 1.3x the bare loop, and the
default check of the tests (two 64x64 images, factors 0.5 and 2) within 5 s.

    python benchmarks/scale_cost.py                  # CPU
    python benchmarks/scale_cost.py --device cuda    # GPU
    python benchmarks/scale_cost.py --images 64 --mode antialias
"""

from __future__ import annotations

import argparse
import sys

from _target import at_most, exit_code  # this directory is on sys.path when run as a script
from _timing import best

TARGET = 1.3
SECONDS = 5.0
SCALES = [0.5, 0.75, 1.5, 2.0]


def build(args: argparse.Namespace):
    import torch
    import torchvision

    from pytest_equivariance.inputs import natural_images

    if args.threads:
        torch.set_num_threads(args.threads)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval().to(args.device)
    return model, natural_images((args.images, 3, args.size, args.size), seed=0).to(args.device)


def bare_loop(model, images, mode: str) -> float:
    """Top-1 agreement of every rescaled copy with the reference."""
    import torch

    from pytest_equivariance.check.rescaling import RESAMPLERS

    resize = RESAMPLERS[mode].resize
    agree = total = 0
    with torch.inference_mode():
        reference = model(images).argmax(1)
        for factor in SCALES:
            size = [round(factor * images.shape[d]) for d in (-2, -1)]
            agree += int((model(resize(images, size, (-2, -1))).argmax(1) == reference).sum())
            total += len(images)
    return agree / total


def check(model, images, mode: str) -> float:
    from pytest_equivariance import check_scale_invariant

    result = check_scale_invariant(model, images, scales=SCALES, mode=mode, localize=False, progress=False)
    return result.consistency


def default_check(model, device: str) -> bool:
    from pytest_equivariance import check_scale_invariant

    return check_scale_invariant(model, input_shape=(2, 3, 64, 64), device=device, localize=False).passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--mode", default="fourier", choices=["fourier", "antialias"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    model, images = build(args)
    check(model, images, args.mode)  # warm-up: imports, allocator, kernels
    bare, bare_consistency = best(bare_loop, args.repeats, model, images, args.mode)
    checked, consistency = best(check, args.repeats, model, images, args.mode)
    assert abs(consistency - bare_consistency) < 1e-9, (consistency, bare_consistency)
    ratio = checked / bare
    print(f"{args.images} images, scales {SCALES} ({args.mode}), resnet18 at {args.size}x{args.size} on {args.device}")
    print(f"bare loop        {bare:8.3f} s")
    print(f"scale check      {checked:8.3f} s")
    print(f"ratio            {ratio:8.2f}x")
    small = best(default_check, args.repeats, model, args.device)[0]
    print(f"default check    {small:8.3f} s  (2 images of 64x64, factors 0.5 and 2)")
    at_most("scale check / bare loop", ratio, TARGET)
    at_most("default scale check of resnet18", small, SECONDS, unit=" s")
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
