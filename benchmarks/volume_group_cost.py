"""What does checking the cube's 24 rotations of a 3-D resnet cost? A group="O" check against the bare forward.

``check_rotation_invariant(r3d_18, group="O")`` (torchvision's video resnet, random weights, on
cubes of ``--size``³ voxels) puts the reference volumes and their 23 rotations through the model in
one batch; this script times it against one batched forward pass, under ``torch.inference_mode()``,
of the very same 24 rotated inputs, computed beforehand. The difference is the check's own work:
permuting the voxels, comparing, fingerprinting. Target: <= 1.1x. The two are interleaved so that a
busy machine slows both alike; each figure is the median.

    python benchmarks/volume_group_cost.py                  # 1 x 3 x 24³, median of 3
    python benchmarks/volume_group_cost.py --size 48 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from _target import at_most, exit_code  # this directory is on sys.path when run as a script

TARGET = 1.1


def main(argv: list[str] | None = None) -> int:
    import torchvision

    from pytest_equivariance import check_rotation_invariant
    from pytest_equivariance.check import groups
    from pytest_equivariance.inputs import natural_images

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    model = torchvision.models.video.r3d_18(weights=None).eval().to(args.device)
    shape = (args.batch, 3, args.size, args.size, args.size)
    x = natural_images(shape, seed=0, device=args.device)
    elements = groups.parse_group("O").elements()
    batch = torch.cat([x] + [e.spatial(x, (-3, -2, -1)) for e in elements])
    assert batch.shape[0] == 24 * args.batch

    def check():
        # localize=False: random weights are not invariant, and the per-layer profile is a separate cost.
        return check_rotation_invariant(model, x, group="O", device=args.device, batch_size=len(batch),
                                        localize=False)

    def bare():
        with torch.inference_mode():
            return model(batch)

    def once(fn) -> float:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    result = check()
    assert len(result.trials) == 23, len(result.trials)
    bare()
    bare_times, check_times = [], []
    for _ in range(args.repeat):
        bare_times.append(once(bare))
        check_times.append(once(check))
    t_bare, t_check = statistics.median(bare_times), statistics.median(check_times)
    print(f"r3d_18 (random weights), {args.batch}x3x{args.size}³, {args.device}, median of {args.repeat}")
    print(f"bare forward of the 24 x {args.batch} rotated inputs: {t_bare * 1e3:8.1f} ms")
    print(f"check_rotation_invariant, group='O' (23 elements):   {t_check * 1e3:8.1f} ms")
    print(f"ratio:                                           {t_check / t_bare:8.2f}x")
    at_most("r3d_18 group='O' check / bare forward", t_check / t_bare, TARGET)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
