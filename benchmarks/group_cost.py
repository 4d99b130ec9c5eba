"""What does a group check cost? A C8 check over its 7 rotations against the bare forward of the same inputs.

``check_rotation_equivariant(model)`` of an escnn C8 network (the model passed directly: its group
and field types are read from it) against one batched forward pass, under ``torch.no_grad()``, of
the very inputs the check feeds the model (the reference and its 7 rotations), computed beforehand.
The difference is the check's own work: rotating the inputs and outputs band-limitedly, acting on
the fields, comparing. Target: <= 2x.

    python benchmarks/group_cost.py                  # 8 images of 65x65, 8 regular fields, 6 layers, median of 5
    python benchmarks/group_cost.py --size 129 --device cuda
"""

from __future__ import annotations

import argparse
import sys

import torch

from _target import at_most, exit_code  # this directory is on sys.path when run as a script
from lie_cost import timed

TARGET = 2.0


def main(argv: list[str] | None = None) -> int:
    from escnn import gspaces
    from escnn import nn as enn

    from pytest_equivariance import check_rotation_equivariant
    from pytest_equivariance.check import groups, libraries
    from pytest_equivariance.check.transforms import soft_disk
    from pytest_equivariance.inputs import natural_images

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=65)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--fields", type=int, default=8)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    gs = gspaces.rot2dOnR2(8)
    t_in = enn.FieldType(gs, [gs.trivial_repr])
    t_h = enn.FieldType(gs, args.fields * [gs.regular_repr])
    # Six 5x5 layers, as escnn's C8 example network has (without its pooling).
    layers = [enn.R2Conv(t_in, t_h, 5, padding=2)]
    for _ in range(args.layers - 1):
        layers += [enn.ReLU(t_h), enn.R2Conv(t_h, t_h, 5, padding=2)]
    model = enn.SequentialModule(*layers).to(args.device).eval()
    shape = (args.batch, 1, args.size, args.size)
    x = natural_images(shape, exponent=2.0, device=args.device)
    x = x * soft_disk(x.shape, device=args.device)
    group = groups.parse_group("C8")
    batch = torch.cat([x] + [e.spatial(x, (-2, -1)) for e in group.elements()])
    plain = libraries.wrap_library_module(model)

    def check():
        result = check_rotation_equivariant(model, input_shape=shape, device=args.device, batch_size=len(batch))
        assert result.passed, result.trials
        return result

    def bare():
        with torch.no_grad():
            return plain(batch)

    t_check, t_bare = timed(check, args.repeat, args.device), timed(bare, args.repeat, args.device)
    print(f"escnn C8 network ({args.fields} regular fields, {args.layers} layers), {args.batch}x1x{args.size}x{args.size}, "
          f"{args.device}, median of {args.repeat}")
    print(f"bare forward of the 8 x {args.batch} inputs:  {t_bare * 1e3:8.1f} ms")
    print(f"check_rotation_equivariant, 7 rotations: {t_check * 1e3:8.1f} ms")
    print(f"ratio:                                  {t_check / t_bare:8.2f}x")
    at_most("escnn C8 check / bare forward", t_check / t_bare, TARGET)
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
