"""Cost of anti-aliasing: the blur relative to the strided layer it fixes (time and FLOPs ratios).

For a few typical strided layers (resnet18's stem, its stride-2 3x3 and 1x1 convs, its max pool)
this prints, next to the bare layer, the two forms ``antialias`` can produce:

* ``blur_first``: BlurPool(stride 1) on the input, then the strided conv (the default);
* ``conv_then_blur``: the conv with stride 1, then BlurPool(stride) (Zhang's ConvBlurPool layout);

and for max pooling, MaxBlurPool (max pool stride 1 + BlurPool). Ratios are (fixed layer) / (bare
layer); FLOPs count one multiply-add as 2 FLOPs and ignore padding and max comparisons.

    python benchmarks/blurpool_cost.py [--device cpu|cuda] [--batch 8] [--filter-size 3] [--rounds 15]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils import benchmark

from pytest_equivariance.fix.antialias import CONV_FORMS
from pytest_equivariance.layers.blurpool import MaxBlurPool2d, antialiased_conv


@dataclass(frozen=True)
class Layer:
    name: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    padding: int
    size: int  # input height = width
    pool: bool = False


LAYERS = [
    Layer("resnet18 conv1 (7x7 s2, 3->64 @224)", 3, 64, 7, 2, 3, 224),
    Layer("resnet18 layer2.0.conv1 (3x3 s2, 64->128 @56)", 64, 128, 3, 2, 1, 56),
    Layer("resnet18 layer2.0.downsample (1x1 s2, 64->128 @56)", 64, 128, 1, 2, 0, 56),
    Layer("resnet18 layer4.0.conv1 (3x3 s2, 256->512 @14)", 256, 512, 3, 2, 1, 14),
    Layer("resnet18 maxpool (3x3 s2, 64 @112)", 64, 64, 3, 2, 1, 112, pool=True),
]


def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def flops(layer: Layer, filter_size: int) -> dict[str, float]:
    """Return FLOPs of a bare conv layer and of each anti-aliased form (per image).

    Pools are left out: their comparisons are not FLOPs, so the ratio would mean nothing.
    """
    n, k, s, p = layer.size, layer.kernel_size, layer.stride, layer.padding
    out = _out(n, k, s, p)
    dense = _out(n, k, 1, p)
    blur_tap = 2 * filter_size**2
    conv = 2 * layer.in_channels * layer.out_channels * k * k
    return {
        "bare": conv * out**2,
        "blur_first": conv * out**2 + blur_tap * layer.in_channels * n**2,
        "conv_then_blur": conv * dense**2 + blur_tap * layer.out_channels * out**2,
    }


def _fastest(fns: list, x: torch.Tensor, rounds: int) -> list[float]:
    """Return each callable's fastest time per call over ``rounds`` interleaved blocks.

    Interleaving and keeping the minimum make the ratios robust on a shared machine, where
    interference only ever adds time.
    """
    timers = [benchmark.Timer("fn(x)", globals={"fn": fn, "x": x}, num_threads=torch.get_num_threads()) for fn in fns]
    number = max(1, int(0.05 / max(timers[0].timeit(1).median, 1e-6)))
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, timer in enumerate(timers):
            best[i] = min(best[i], timer.timeit(number).median)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--filter-size", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device={device} batch={args.batch} filter_size={args.filter_size} threads={torch.get_num_threads()}")
    print(f"{'layer':52s} {'form':15s} {'bare ms':>8s} {'fixed ms':>9s} {'time ratio':>10s} {'FLOPs ratio':>11s}")
    with torch.inference_mode():
        for layer in LAYERS:
            x = torch.randn(args.batch, layer.in_channels, layer.size, layer.size, device=device)
            if layer.pool:
                bare = nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding).to(device)
                fixed = MaxBlurPool2d(
                    layer.kernel_size, layer.stride, args.filter_size, padding=layer.padding
                ).to(device)
                t_bare, t_fixed = _fastest([bare, fixed], x, args.rounds)
                print(
                    f"{layer.name:52s} {'MaxBlurPool':15s} {t_bare * 1e3:8.2f} {t_fixed * 1e3:9.2f} "
                    f"{t_fixed / t_bare:10.2f} {'-':>11s}"
                )
                continue
            conv = nn.Conv2d(
                layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                bias=False,
            ).to(device)  # fmt: skip
            fixed = [antialiased_conv(conv, args.filter_size, p) for p in CONV_FORMS.values()]
            times = _fastest([conv, *fixed], x, args.rounds)
            f = flops(layer, args.filter_size)
            for form, t in zip(CONV_FORMS, times[1:]):
                print(
                    f"{layer.name:52s} {form:15s} {times[0] * 1e3:8.2f} {t * 1e3:9.2f} "
                    f"{t / times[0]:10.2f} {f[form] / f['bare']:11.2f}"
                )


if __name__ == "__main__":
    main()
