"""The error of a model over every 2-D shift of a square window: Zhang (2019)'s picture, as numbers.

Zhang, "Making Convolutional Networks Shift-Invariant Again" (ICML 2019), plots a classifier's
output over all shifts of a 32 x 32 window: a strided, aliasing network shows a lattice (shifts by
multiples of its stride are fine, the others not), an anti-aliased one a flat field. :func:`shift_grid`
measures that field with the check's own transforms, runner and metrics, one batched pass over all
shifts, and returns a :class:`~pytest_equivariance.check.result.ShiftGrid` for the renderers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pytest_equivariance.check import metrics, runner, transforms
from pytest_equivariance.check.result import ShiftGrid
from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

#: Shift modes a grid supports (all of the checks' shift modes).
GRID_MODES = transforms.SHIFT_MODES


def shift_grid(
    model: "nn.Module",
    inputs: "Tensor",
    *,
    window: int = 32,
    dims: tuple[int, int] = (-2, -1),
    mode: str = "circular",
    equivariant: bool,
    device: "str | torch.device | None" = None,
    batch_size: int | None = None,
    lattice: tuple[int, int] | None = None,
    canvas: int | None = None,
    margin: int = 0,
) -> ShiftGrid:
    """Return the largest absolute error of ``model`` for every shift (dy, dx) of a square window.

    ``errors[i][j]`` is ``max |model(g·x) - g·model(x)|`` (equivariance) or ``max |model(g·x) -
    model(x)|`` (invariance) over all inputs and output leaves, for ``g`` the shift by
    ``(offsets_y[i], offsets_x[j])`` input pixels along ``dims``. Offsets run ``0, s, 2s, ...`` for
    ``window`` steps, where ``s`` is the ``lattice`` stride (1 when not given; for equivariance of a
    model whose output is ``s`` times coarser, the output stride, since only shifts on that lattice
    have a counterpart on the output). A circular shift by the image size is the identity, so the
    window is clipped to the distinct shifts.

    In ``mode="crop"`` (Zhang's protocol: the model sees crops of a larger image at different
    offsets, so zero-padded models are judged on real content) ``inputs`` is that larger canvas,
    ``canvas`` pixels wider than the model's input on each side, as the crop-mode checks build it,
    and the shifts run up to ``canvas``. In crop and zero modes an equivariance grid leaves out what
    was shifted in at the border plus ``margin`` output pixels there (the reach of the padding).

    All ``window²`` shifted copies go through the model in chunks of ``batch_size`` images (chosen
    from a memory budget when None), under ``torch.inference_mode()``, in eval mode on ``device``.

    Example::

        grid = shift_grid(model, natural_images((4, 3, 64, 64)), equivariant=False)
        grid.errors[1][0]  # error for a shift by one row
    """
    import torch

    dims = _check_arguments(inputs, window, dims, mode, lattice, canvas)
    dev = runner.resolve_device(device, model)
    dtype = runner.model_dtype(model) or (inputs.dtype if inputs.is_floating_point() else torch.float32)
    with runner.prepared(model, dev, dtype):
        x = inputs.to(device=dev, dtype=dtype if inputs.is_floating_point() else inputs.dtype)
        frame = (canvas, canvas) if mode == "crop" else None
        seen = transforms.shift((0, 0), dims, mode, frame).reference(x)  # what the model sees unshifted
        reference, per_image = runner.activation_bytes_per_image(model, seen)
        strides = _output_strides(seen.shape, reference, dims) if equivariant else {}
        common = tuple(math.lcm(*(st[i] for st in strides.values())) for i in range(2)) if strides else (1, 1)
        steps = tuple(lattice) if lattice is not None else common
        if any(k % c for k, c in zip(steps, common)):
            raise EquivarianceUsageError(
                f"lattice={tuple(steps)} is not a multiple of the model's output stride {common}, so "
                f"some shifts have no counterpart on the output; pass lattice={common} or None."
            )
        # Circular shifts by the image size are the identity; crops cannot move beyond the canvas.
        reach = [canvas + 1 if frame else seen.shape[d] for d in dims]
        offsets = [
            [k * step for k in range(min(window, max(1, -(-n // step))))] for n, step in zip(reach, steps)
        ]
        chunk = batch_size or runner.auto_batch_size(per_image, dev)
        shifts = {
            (dy, dx): transforms.shift((dy, dx), dims, mode, frame)
            for dy in offsets[0]
            for dx in offsets[1]
        }
        jobs = ((key, g.on_input(x)) for key, g in shifts.items())
        errors: dict[tuple[int, int], float] = {}
        for key, leaves in runner.run_batches(runner.shipped(model), jobs, chunk):
            errors[key] = _max_error(shifts[key], leaves, reference, strides, margin)
    return ShiftGrid(
        offsets_y=offsets[0],
        offsets_x=offsets[1],
        errors=[[errors[(dy, dx)] for dx in offsets[1]] for dy in offsets[0]],
    )


def _check_arguments(
    inputs: Any, window: int, dims: Any, mode: str, lattice: Any, canvas: Any
) -> tuple[int, int]:
    import torch

    if not isinstance(inputs, torch.Tensor):
        raise EquivarianceUsageError(
            f"A shift grid needs the inputs as one tensor, not {type(inputs).__name__}; "
            f"pass a (batch, channels, height, width) tensor."
        )
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise EquivarianceUsageError(f"window={shown(window)} is not a positive integer; pass e.g. window=32.")
    if mode not in GRID_MODES:
        raise EquivarianceUsageError(
            f"A shift grid cannot use mode={shown(mode)}; pass one of {', '.join(map(repr, GRID_MODES))}."
        )
    dims = tuple(dims)
    if len(dims) != 2 or any(not isinstance(d, int) or not -inputs.dim() + 2 <= d < 0 for d in dims):
        raise EquivarianceUsageError(
            f"dims={shown(dims)} must name two spatial dims of the {inputs.dim()}-d input as negative "
            f"indices; pass dims=(-2, -1) for images."
        )
    if lattice is not None and (len(lattice) != 2 or any(not isinstance(s, int) or s < 1 for s in lattice)):
        raise EquivarianceUsageError(
            f"lattice={shown(lattice)} must be two positive integers, one per dim; pass e.g. lattice=(2, 2)."
        )
    if mode == "crop":
        if isinstance(canvas, bool) or not isinstance(canvas, int) or canvas < 1:
            raise EquivarianceUsageError(
                f"mode='crop' needs canvas=, the pixels the inputs extend beyond the model's input on "
                f"each side (got {shown(canvas)}); pass e.g. canvas=31 with inputs 62 pixels larger."
            )
        if any(inputs.shape[d] - 2 * canvas < 1 for d in dims):
            raise EquivarianceUsageError(
                f"Inputs of shape {tuple(inputs.shape)} leave no crop after canvas={canvas} pixels on "
                f"each side; pass larger inputs or a smaller canvas."
            )
    return dims  # type: ignore[return-value]


def _output_strides(
    in_shape: "torch.Size", leaves: runner.Leaves, dims: tuple[int, int]
) -> dict[str, tuple[int, int]]:
    """Return, per output leaf with spatial dims, how many input pixels one output pixel spans.

    Leaves without the input's spatial dims (class scores beside a feature map) are left out: they
    are compared as invariant, as the check itself does.
    """
    strides: dict[str, tuple[int, int]] = {}
    for path, t in leaves:
        if t.dim() != len(in_shape):
            continue
        stride = []
        for d in dims:
            n_in, n_out = in_shape[d], t.shape[d]
            if n_out == 0 or n_in % n_out:
                raise EquivarianceUsageError(
                    f"Model output{path} has size {n_out} along dim {d} for an input of size {n_in}, "
                    f"not an integer fraction of it; pick an input size divisible by the model's stride."
                )
            stride.append(n_in // n_out)
        strides[path] = (stride[0], stride[1])
    if not strides:
        raise EquivarianceUsageError(
            f"The model's output has no spatial dims for shifts to act on (shapes "
            f"{', '.join(str(tuple(t.shape)) for _, t in leaves)}); use equivariant=False for an "
            f"invariance grid."
        )
    return strides


def _max_error(
    g: transforms.Transform,
    leaves: runner.Leaves,
    reference: runner.Leaves,
    strides: dict[str, tuple[int, int]],
    margin: int,
) -> float:
    """The largest absolute error of one shift over all output leaves (NaN if any is NaN).

    Leaves with a stride are compared with the shifted reference (equivariance), the others with the
    reference itself (invariance).
    """
    out = 0.0
    for (path, y), (_, ref) in zip(leaves, reference):
        stride = strides.get(path)
        expected = g.on_output(ref, stride) if stride is not None else ref
        mask = None if stride is None else g.mask(tuple(expected.shape), stride, margin, device=expected.device)
        # atol/rtol do not affect max_abs: the grid holds raw errors and the renderers judge them.
        error = metrics.compare(y, expected, atol=0.0, rtol=0.0, mask=mask, leaf=path).max_abs
        if error != error:
            return error
        out = max(out, error)
    return out
