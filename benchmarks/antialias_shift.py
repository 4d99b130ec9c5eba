"""How much ``antialias`` steadies a random-init torchvision resnet18 under one-pixel shifts.

For seeded natural-like images (1/f spectrum, ``pytest_equivariance.inputs.natural_images``) it
measures the largest absolute change of any logit when the input is rolled circularly by one pixel
(dy, dx) in (1, 0), (0, 1), (1, 1), before and after ``antialias``, and prints the ratio.

    python benchmarks/antialias_shift.py [--images 8] [--size 224] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch

from pytest_equivariance.fix import antialias
from pytest_equivariance.inputs import natural_images

SHIFTS = ((1, 0), (0, 1), (1, 1))


def largest_logit_change(model: torch.nn.Module, images: torch.Tensor) -> float:
    """Return max |model(roll(x)) - model(x)| over all images, logits and one-pixel shifts."""
    with torch.inference_mode():
        base = model(images)
        return max(
            (model(torch.roll(images, s, dims=(-2, -1))) - base).abs().max().item() for s in SHIFTS
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torchvision

    torch.manual_seed(args.seed)
    model = torchvision.models.resnet18(weights=None).eval()
    images = natural_images((args.images, 3, args.size, args.size), seed=args.seed)
    before = largest_logit_change(model, images)
    print(f"resnet18 (random init, seed {args.seed}), {args.images} images of {args.size}x{args.size}")
    print(f"{'model':46s} {'max |logit change|':>18s} {'reduction':>9s}")
    print(f"{'original':46s} {before:18.5f} {'1.0x':>9s}")
    for conv in ("blur_first", "conv_then_blur"):
        for filter_size in (3, 5):
            fixed = antialias(model, filter_size=filter_size, conv=conv, example_input=images[:1]).eval()
            after = largest_logit_change(fixed, images)
            label = f"antialias(conv={conv!r}, filter_size={filter_size})"
            print(f"{label:46s} {after:18.5f} {before / after:8.1f}x")


if __name__ == "__main__":
    main()
