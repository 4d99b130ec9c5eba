"""Polyphase sampling against blur: shift error under circular / crop / zero shifts, and the cost.

For each model this prints, for the plain model, ``antialias(model)`` (BlurPool, filter 3) and
``antialias(model, method="polyphase")``: the largest absolute change of the output over seeded
integer shifts (``check_shift_invariant(..., mode=...).worst_error``: the largest ``max_abs`` of any
trial), and the time of one forward pass of a batch, as a ratio to the plain model and, for
polyphase, to blur. Models:

* ``circular CNN @32``: circular 3x3 convs, a strided max pool, a strided 3x3 conv, a strided 1x1
  conv, an average pool, global pooling (``tests/fix/test_polyphase.py``'s ``CircularNet``);
* ``resnet18 circular @64``: torchvision resnet18 (random init, eval) with every conv padding
  circularly; its max pool keeps its -inf padding, and its residual blocks subsample the same
  input in two branches, so polyphase is not exact there.

    python benchmarks/polyphase_cost.py [--device cpu|cuda] [--batch 8] [--rounds 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from pytest_equivariance import antialias, check_shift_invariant


class CircularNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        circ = {"padding_mode": "circular"}
        self.stem = nn.Conv2d(3, 8, 3, padding=1, **circ)
        self.pool = nn.MaxPool2d(2)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1, **circ)
        self.proj = nn.Conv2d(16, 16, 1, stride=2)
        self.avg = nn.AvgPool2d(2)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.stem(x)))
        x = torch.relu(self.down(x))
        x = self.avg(torch.relu(self.proj(x)))
        return self.head(x.mean((-2, -1)))


def circular_resnet18() -> nn.Module:
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and any(module.padding):
            module.padding_mode = "circular"
    return model


def _time(model: nn.Module, x: torch.Tensor, rounds: int) -> float:
    """Fastest forward over ``rounds`` (interference only ever adds time)."""
    best = float("inf")
    with torch.inference_mode():
        model(x)
        for _ in range(rounds):
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return best


#: Model name -> (builder, image size).
MODELS = {"circular CNN @32": (CircularNet, 32), "resnet18 circular @64": (circular_resnet18, 64)}
MODES = ("circular", "crop", "zero")


def variants(name: str, seed: int = 0) -> dict[str, nn.Module]:
    """Return the plain model ``name`` and its blur and polyphase fixes, built under ``seed``."""
    build, size = MODELS[name]
    torch.manual_seed(seed)
    plain = build().eval()
    example = (1, 3, size, size)
    return {
        "plain": plain,
        "blur": antialias(plain, example_input=example).eval(),
        "polyphase": antialias(plain, method="polyphase", example_input=example).eval(),
    }


def shift_errors(model: nn.Module, size: int, seed: int = 0, device: torch.device | str = "cpu") -> list[float]:
    """Return ``worst_error`` (the largest absolute change) under each of :data:`MODES`."""
    images = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return [
        check_shift_invariant(model, images, mode=mode, max_shift=8, trials=32, seed=seed, device=device,
                              localize=False).worst_error
        for mode in MODES
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"device {device}, batch {args.batch}, seed {args.seed}; largest absolute change under shifts "
          f"(max_shift 8, 32 trials, 4 images), forward time (fastest of {args.rounds})")
    header = f"{'model':24} {'fix':10} {'circular':>10} {'crop':>10} {'zero':>10} {'ms':>9} {'x plain':>8} {'x blur':>7}"
    print(header)
    print("-" * len(header))
    for name, (_, size) in MODELS.items():
        batch = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(args.seed + 1))
        times: dict[str, float] = {}
        for fix, model in variants(name, args.seed).items():
            model = model.to(device)
            errors = shift_errors(model, size, args.seed, device)
            times[fix] = _time(model, batch.to(device), args.rounds)
            vs_blur = f"{times[fix] / times['blur']:7.2f}" if fix == "polyphase" else " " * 7
            print(f"{name:24} {fix:10} {errors[0]:10.2e} {errors[1]:10.2e} {errors[2]:10.2e} "
                  f"{times[fix] * 1e3:9.2f} {times[fix] / times['plain']:8.2f} {vs_blur}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
