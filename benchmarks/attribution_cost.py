"""What does exact per-layer attribution cost? Against the reference's probe estimator, and a forward pass.

``attribute(model, x, "translate_x", method="bilinear")`` (every layer's term of the Lie derivative,
exact, in one forward-mode walk) against the layer-wise estimator of Gruver et al. 2023 (ported in
``tests/check/layerwise_reference.py``: one forward and one backward pass per random probe, 100 probes
by default), on random-init resnet18s from torchvision and timm. Target: <= 0.5x the reference.
Also prints how the walk's peak memory grows with depth (resnet18 -> resnet34 -> resnet50) on CPU.

    python benchmarks/attribution_cost.py                   # 4 images of 64x64, median of 3
    python benchmarks/attribution_cost.py --probes 100 --device cuda
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "check"))
import layerwise_reference as reference  # noqa: E402
from lie_cost import timed  # noqa: E402  (this directory is on sys.path when run as a script)

from pytest_equivariance import attribute  # noqa: E402
from pytest_equivariance.inputs import natural_images  # noqa: E402
from _target import at_most, exit_code  # noqa: E402

TARGET = 0.5
#: Image size of the memory table: large enough that activations, not the libraries, dominate.
MEMORY_SIZE = 224


def build(source: str) -> nn.Module:
    torch.manual_seed(0)
    if source == "timm":
        import timm

        return timm.create_model("resnet18", pretrained=False)
    import torchvision

    return torchvision.models.resnet18(weights=None)


def out_of_place(model: nn.Module) -> nn.Module:
    # The reference's forward hooks read a module's input after an in-place op has overwritten it.
    for module in model.modules():
        if getattr(module, "inplace", None) is True:
            module.inplace = False
    return model


#: A fresh process samples its resident set every millisecond while one phase runs (Linux /proc).
_MEMORY_PROBE = """
import os, threading, time, torch, torchvision
from pytest_equivariance import attribute
from pytest_equivariance.inputs import natural_images
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
def peak_during(fn):
    start, top, done = rss(), [0], []
    def sample():
        while not done:
            top[0] = max(top[0], rss())
            time.sleep(0.001)
    t = threading.Thread(target=sample); t.start()
    try:
        fn()
    finally:
        done.append(1); t.join()
    return (max(top[0], rss()) - start) / 2**20
torch.manual_seed(0)
m = getattr(torchvision.models, MODEL_NAME)(weights=None).eval()
x = natural_images((N_IMAGES, 3, IMAGE_SIZE, IMAGE_SIZE))
def forward():
    with torch.no_grad():
        m(x)
forward()
print(peak_during(forward), peak_during(lambda: attribute(m, x, "translate_x")))
"""


def peak_memory(name: str, size: int, batch: int) -> tuple[float, float]:
    """Return the peak resident-memory growth in MB of one forward and of attribute(), in a fresh process."""
    code = _MEMORY_PROBE.replace("MODEL_NAME", repr(name)).replace("N_IMAGES", str(batch)).replace("IMAGE_SIZE", str(size))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), float(out[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-memory", action="store_true", help="skip the depth/memory table")
    args = parser.parse_args(argv)
    x = natural_images((args.batch, 3, args.size, args.size)).to(args.device)
    for source in ("torchvision", "timm"):
        model = out_of_place(build(source)).to(args.device).eval()
        probe = nn.Sequential(model, nn.Softmax(dim=1))  # what the reference attributes

        def ours():
            return attribute(probe, x, "translate_x", method="bilinear")

        def theirs():
            handles = reference.apply_hooks(model, "translation")
            try:
                return reference.compute_equivariance_attribution(model, x, args.probes)
            finally:
                for handle in handles:
                    handle.remove()

        def bare():
            with torch.no_grad():
                return model(x)

        t_ours, t_ref, t_bare = (timed(f, args.repeat, args.device) for f in (ours, theirs, bare))
        print(f"{source} resnet18, {args.batch}x3x{args.size}x{args.size}, {args.device}, median of {args.repeat}")
        print(f"  bare forward:                        {t_bare * 1e3:9.1f} ms")
        print(f"  reference ({args.probes} probes):              {t_ref * 1e3:9.1f} ms   {t_ref / t_bare:6.1f}x forward")
        print(f"  attribute (exact, forward mode):     {t_ours * 1e3:9.1f} ms   {t_ours / t_bare:6.1f}x forward")
        print(f"  ratio to the reference:              {t_ours / t_ref:9.3f}x")
        at_most(f"{source} resnet18 attribute / reference", t_ours / t_ref, TARGET)
    if not args.no_memory and args.device == "cpu":
        print(f"peak memory (RSS growth, fresh process), {args.batch}x3x{MEMORY_SIZE}x{MEMORY_SIZE}, CPU:")
        print(f"  {'model':10s} {'forward':>10s} {'attribute':>10s}")
        for name in ("resnet18", "resnet34", "resnet50"):
            forward, walk = peak_memory(name, MEMORY_SIZE, args.batch)
            print(f"  {name:10s} {forward:8.0f} MB {walk:8.0f} MB")
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
