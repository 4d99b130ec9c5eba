"""What do Lie derivatives cost? Three generators in one call against the reference's double backward.

``lie_derivative(model, x, ["translate_x", "translate_y", "rotate"], method="bilinear")`` (forward
mode, the generators batched with vmap over one primal pass; bilinear, so both sides compute the
same quantity) against the reference implementation (Gruver et al. 2023, ported in
``tests/check/lie_reference.py``: two backward passes per generator), and against one bare forward
pass, on a random-init torchvision resnet18. Target: <= 0.5x the reference.

    python benchmarks/lie_cost.py                 # 4 images of 64x64, median of 5
    python benchmarks/lie_cost.py --size 128 --batch 8 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "check"))
import lie_reference as reference  # noqa: E402

from pytest_equivariance import lie_derivative  # noqa: E402
from _target import at_most, exit_code  # noqa: E402

TARGET = 0.5
GENERATORS = ("translate_x", "translate_y", "rotate")


def timed(fn, repeat: int, device: str) -> float:
    """Return the median seconds of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    import torchvision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).to(args.device).eval()
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)

    def ours():
        return lie_derivative(model, x, list(GENERATORS), method="bilinear", batch_size=args.batch)

    def theirs():
        return [reference.translation_lie_deriv(model, x, "x"), reference.translation_lie_deriv(model, x, "y"),
                reference.rotation_lie_deriv(model, x)]

    def bare():
        with torch.no_grad():
            return model(x)

    t_ours, t_ref, t_bare = timed(ours, args.repeat, args.device), timed(theirs, args.repeat, args.device), \
        timed(bare, args.repeat, args.device)
    print(f"torchvision resnet18, {args.batch}x3x{args.size}x{args.size}, {args.device}, "
          f"{len(GENERATORS)} generators, median of {args.repeat}")
    print(f"bare forward:                      {t_bare * 1e3:8.1f} ms")
    print(f"reference (double backward):       {t_ref * 1e3:8.1f} ms   {t_ref / t_bare:5.1f}x forward")
    print(f"lie_derivative (forward mode):     {t_ours * 1e3:8.1f} ms   {t_ours / t_bare:5.1f}x forward")
    print(f"ratio to the reference:            {t_ours / t_ref:8.2f}x")
    at_most("lie_derivative / reference", t_ours / t_ref, TARGET)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
