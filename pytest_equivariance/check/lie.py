"""Lie derivatives: how fast a model's output leaves equivariance along a one-parameter transformation.

For a family ``T_t`` (``T_0`` the identity) the Lie derivative of a model ``f`` at an input ``x``
is ``L f(x) = d/dt T_t^{-1} f(T_t x)`` at ``t = 0`` — zero for every ``x`` exactly when ``f`` is
equivariant to the family (Gruver, Finzi, Goldblum & Wilson, "The Lie Derivative for Measuring
Learned Equivariance", ICLR 2023). By the chain rule it is ``J_f(x)·(G x) − G f(x)``, with ``G`` the
generator: one forward-mode AD pass (``torch.func.jvp``) per generator, all generators of a call
batched with ``vmap`` over one shared primal computation. For an output that is not an image (class
scores), ``T`` does not act on it and ``L f(x) = J_f(x)·(G x)``: the invariance form.

Conventions (docs/metrics.md; x is W, y is H and points down):

==================  ==================================================  ======================
generator           ``T_t``                                             unit of ``t``
==================  ==================================================  ======================
``translate_x``     moves content toward +W by ``t`` pixels             per input pixel
``translate_y``     moves content toward +H (down) by ``t`` pixels      per input pixel
``rotate``          counterclockwise as displayed, about the centre     per radian
``scale``           magnifies by ``e^t`` about the centre               per unit of log-scale
==================  ==================================================  ======================

Each generator has one local definition per method:

- ``"spectral"``: ``G`` is applied to the sampled image exactly for band-limited periodic signals
  (Fourier derivatives, :mod:`.resample`), so a circular linear network has a Lie derivative of
  zero, and a ReLU between two circular convolutions does not.
- ``"bilinear"``: the reference implementation's definition — bilinear resampling on
  ``affine_grid(..., align_corners=True)`` with reflection at the borders, differentiated at
  ``t = 0`` — in the units above: published figures are reproduced up to the unit change (the
  reference's translation unit is half the image, its rotation turns clockwise as displayed).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

#: The generators, in the order reports list them.
GENERATORS = ("translate_x", "translate_y", "rotate", "scale")
METHODS = ("spectral", "bilinear")
OUTPUTS = ("auto", "equivariant", "invariant")
#: Images per forward-mode pass when no batch_size is given.
DEFAULT_BATCH = 8


# --------------------------------------------------------------------------------------------
# Generators: one local definition per method


def _centred(n: int, like: "Tensor") -> "Tensor":
    import torch

    return torch.arange(n, device=like.device, dtype=like.dtype) - (n - 1) / 2


def spectral_generator(name: str, x: "Tensor", *, scale_xy: tuple[float, float] = (1.0, 1.0)) -> "Tensor":
    """Return ``G x`` for generator ``name`` on the last two dims of ``x``, by Fourier derivatives.

    ``scale_xy`` converts input pixels to this tensor's pixels for translations (an output grid
    ``s`` times coarser moves ``1/s`` of its pixels per input pixel).
    """
    from pytest_equivariance.check.resample import spectral_derivative

    if name == "translate_x":
        return -scale_xy[0] * spectral_derivative(x, -1)
    if name == "translate_y":
        return -scale_xy[1] * spectral_derivative(x, -2)
    dx, dy = spectral_derivative(x, -1), spectral_derivative(x, -2)
    xs = _centred(x.shape[-1], x).reshape(1, -1)
    ys = _centred(x.shape[-2], x).reshape(-1, 1)
    if name == "rotate":  # counterclockwise as displayed, y down: d/dθ x(R_θ⁻¹ p) = (−y ∂x + x ∂y) x
        return -ys * dx + xs * dy
    return -(xs * dx + ys * dy)  # scale: d/dσ x(e^{−σ} p)


def _reference_grid_derivative(name: str, x: "Tensor") -> tuple["Tensor", "Tensor"]:
    """Return d(grid_x)/dt, d(grid_y)/dt of the reference's affine grid at t = 0 (normalized units)."""
    import torch
    import torch.nn.functional as F

    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=x.dtype, device=x.device)
    base = F.affine_grid(theta, [1, 1, x.shape[-2], x.shape[-1]], align_corners=True)[0]
    gx, gy = base[..., 0], base[..., 1]
    one, zero = torch.ones_like(gx), torch.zeros_like(gx)
    return {
        "translate_x": (one, zero),  # [[1, 0, t], [0, 1, 0]]
        "translate_y": (zero, one),
        "rotate": (gy, -gx),  # [[cos, sin], [−sin, cos]]
        "scale": (-gx, -gy),  # [[1 − s, 0], [0, 1 − s]]
    }[name]


def _bilinear_tangent(name: str, x: "Tensor") -> "Tensor":
    """Return d/dt of the reference transform of ``x`` at t = 0, in the reference's own units.

    The reference samples with its own bilinear ``grid_sample`` (floor of the sample position,
    reflection at the borders) so that it can differentiate twice; its derivative at t = 0 is this,
    computed directly, the same floors included (``affine_grid`` puts some sample positions a
    rounding error below the pixel).
    """
    import torch
    import torch.nn.functional as F

    *lead, h, w = x.shape
    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta, [1, 1, h, w], align_corners=True)[0]
    ix = (grid[..., 0] + 1) / 2 * (w - 1)
    iy = (grid[..., 1] + 1) / 2 * (h - 1)
    ix0, iy0 = torch.floor(ix), torch.floor(iy)
    fx, fy = ix - ix0, iy - iy0

    def reflect(i: "Tensor", n: int) -> "Tensor":
        return (n - 1 - (n - 1 - i.abs()).abs()).long()

    cols = (reflect(ix0, w), reflect(ix0 + 1, w))
    rows = (reflect(iy0, h), reflect(iy0 + 1, h))
    flat = x.reshape(*lead, h * w)

    def at(r: "Tensor", c: "Tensor") -> "Tensor":
        return flat[..., (r * w + c).reshape(-1)].reshape(*lead, h, w)

    nw, ne, sw, se = at(rows[0], cols[0]), at(rows[0], cols[1]), at(rows[1], cols[0]), at(rows[1], cols[1])
    d_ix = (1 - fy) * (ne - nw) + fy * (se - sw)
    d_iy = (1 - fx) * (sw - nw) + fx * (se - ne)
    dgx, dgy = _reference_grid_derivative(name, x)
    return d_ix * dgx * (w - 1) / 2 + d_iy * dgy * (h - 1) / 2


def _bilinear_units(name: str, shape: Sequence[int]) -> float:
    """Return the factor from the reference's units to ours (see the module docstring)."""
    h, w = shape[-2], shape[-1]
    return {"translate_x": -2 / (w - 1), "translate_y": -2 / (h - 1), "rotate": -1.0, "scale": 1.0}[name]


def input_tangent(name: str, x: "Tensor", method: str) -> "Tensor":
    """Return ``G x`` for the input (the tangent the model's Jacobian is applied to), in our units."""
    if method == "spectral":
        return spectral_generator(name, x)
    return _bilinear_units(name, x.shape) * _bilinear_tangent(name, x)


def output_tangent(name: str, y: "Tensor", input_shape: Sequence[int], method: str) -> "Tensor":
    """Return ``G y`` for an image-like output ``y`` of a model whose input had ``input_shape``."""
    if method == "spectral":
        scale_xy = (y.shape[-1] / input_shape[-1], y.shape[-2] / input_shape[-2])
        return spectral_generator(name, y, scale_xy=scale_xy)
    # The reference moves the output in its own normalised units by the same t.
    return _bilinear_units(name, input_shape) * _bilinear_tangent(name, y)


def is_image_like(y: "Tensor", x: "Tensor") -> bool:
    """Whether output ``y`` is an image the transformation acts on: ``(N, C, H', W')`` and not ``1 × 1``."""
    return y.dim() == x.dim() == 4 and tuple(y.shape[-2:]) != (1, 1)


# --------------------------------------------------------------------------------------------
# The public function


def lie_derivative(
    model: "nn.Module",
    inputs: "Tensor | Iterable[Any]",
    generator: str | Sequence[str],
    *,
    method: str = "spectral",
    output: str = "auto",
    batch_size: int | None = None,
    device: "str | torch.device | None" = None,
) -> Any:
    """Return the Lie derivative ``L f(x)`` of ``model`` at ``inputs`` along ``generator``.

    ``inputs`` is a float tensor ``(N, C, H, W)``, or a stream of such batches (a ``DataLoader``, a
    list, :class:`~pytest_equivariance.Batches`), whose per-image values are concatenated. ``generator`` is one of ``"translate_x"``,
    ``"translate_y"``, ``"rotate"``, ``"scale"`` (returns a tensor shaped like the output, or a
    dict ``{leaf path: tensor}`` for a structured output), or a sequence of them (returns ``{name:
    that}``, computed in one batched pass that shares the primal computation). ``output="auto"``
    treats image-like outputs as equivariant (they are transformed back) and the rest as
    invariant, like the reference; ``"equivariant"`` / ``"invariant"`` force one. The model runs in
    eval mode on ``device`` (default: the model's), ``batch_size`` images at a time, and is
    restored afterwards. See the module docstring for the units and the two methods.

    Example::

        >>> lie = lie_derivative(model, images, ["translate_x", "rotate"])
        >>> lie["translate_x"].abs().max()   # logits per pixel of shift
    """
    derivatives, _ = lie_derivative_and_pushforward(
        model, inputs, generator, method=method, output=output, batch_size=batch_size, device=device)
    return derivatives


def lie_derivative_and_pushforward(
    model: "nn.Module",
    inputs: "Tensor",
    generator: str | Sequence[str],
    *,
    method: str = "spectral",
    output: str = "auto",
    batch_size: int | None = None,
    device: "str | torch.device | None" = None,
) -> tuple[Any, Any]:
    """Return ``(L f(x), J_f(x)·(G x))`` from one pass: the Lie derivative and the input's push-forward.

    The second is the output's own rate of change along the generator, the natural scale of the
    first (``measure="lie"`` judges against it); for invariant outputs the two are the same.
    Arguments and the shape of each value as :func:`lie_derivative`.
    """
    import torch

    from pytest_equivariance import forms, guards
    from pytest_equivariance.check import batches, runner

    # Forward-mode AD runs eagerly: a compiled model is differentiated through its original module.
    model = guards.shipped_module(model, "lie_derivative")
    eager = forms.original(model)
    model = eager if eager is not None else model
    if batches.is_stream(inputs):  # one batch at a time; the per-image values are concatenated
        parts = [
            lie_derivative_and_pushforward(model, batch.images, generator, method=method, output=output,
                                           batch_size=batch_size, device=device)
            for batch in _stream(inputs, "lie_derivative")
        ]
        return _concatenated([p[0] for p in parts]), _concatenated([p[1] for p in parts])
    names = _check_arguments(model, inputs, generator, method, output, batch_size)
    dev = runner.resolve_device(device, model)
    dtype = runner.model_dtype(model) or inputs.dtype
    x_all = inputs.detach().to(device=dev, dtype=dtype)
    chunk = batch_size or DEFAULT_BATCH
    chunks: list[tuple[dict[str, list[Tensor]], dict[str, list[Tensor]]]] = []
    paths: list[str] = []
    with runner.prepared(model, dev, dtype), torch.no_grad():
        for start in range(0, x_all.shape[0], chunk):
            paths, derivative, pushed = _derivatives(model, x_all[start : start + chunk], names, method, output)
            chunks.append((derivative, pushed))

    def packed(which: int) -> dict[str, Any]:
        out = {}
        for name in names:
            leaves = [torch.cat([c[which][name][i] for c in chunks]) for i in range(len(paths))]
            out[name] = leaves[0] if paths == [""] else dict(zip(paths, leaves))
        return out

    derivatives, pushforwards = packed(0), packed(1)
    if isinstance(generator, str):
        return derivatives[names[0]], pushforwards[names[0]]
    return derivatives, pushforwards


def _stream(inputs: Any, entry: str) -> Any:
    """The batches of a stream of inputs (a DataLoader, a list of batches, :class:`.batches.Batches`)."""
    from pytest_equivariance.check import batches

    return batches.as_batches(inputs, entry)


def _concatenated(parts: list[Any]) -> Any:
    """Concatenate per-batch results along the batch: tensors, or dicts of them (nested once)."""
    import torch

    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    return {key: _concatenated([p[key] for p in parts]) for key in first}


def _check_arguments(model: Any, inputs: Any, generator: Any, method: str, output: str,
                     batch_size: Any, entry: str = "lie_derivative") -> list[str]:
    from pytest_equivariance import guards

    guards.require_module(model, entry)
    guards.require_materialised(model, entry)
    guards.require_tensor(inputs, "inputs", entry, floating=True)
    if inputs.dim() != 4:
        raise EquivarianceUsageError(
            f"{entry} acts on images of shape (N, C, H, W), got {tuple(inputs.shape)}; pass a batch of images "
            f"(add a batch dim with inputs[None])."
        )
    names = list(guards.require_names(generator, "generator", entry, example='["translate_x", "rotate"]'))
    unknown = [n for n in names if n not in GENERATORS]
    if unknown or not names:
        raise EquivarianceUsageError(
            f"Unknown generator {shown(unknown[0] if unknown else generator)}; use one of "
            f"{', '.join(GENERATORS)}, or a list of them."
        )
    if len(set(names)) != len(names):
        raise EquivarianceUsageError(f"Generators {names} repeat one; name each once.")
    if method not in METHODS:
        raise EquivarianceUsageError(f"Unknown method {shown(method)}; use one of {', '.join(METHODS)}.")
    if output not in OUTPUTS:
        raise EquivarianceUsageError(f"Unknown output={shown(output)}; use one of {', '.join(OUTPUTS)}.")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise EquivarianceUsageError(f"batch_size must be a positive integer, got {shown(batch_size)}.")
    return names


def no_float_output(entry: str, returned: Any) -> EquivarianceUsageError:
    """The error for a model whose output holds no floating-point tensor: nothing to differentiate."""
    what = "None" if returned is None else f"a {type(returned).__name__}"
    if hasattr(returned, "dtype"):
        what = f"a tensor of {str(returned.dtype).removeprefix('torch.')}"
    return EquivarianceUsageError(
        f"{entry} differentiates the model's output, but the model returned {what}, with no floating-point "
        f"tensor in it; return the float outputs (logits, feature maps), e.g. from forward."
    )


def _derivatives(model: "nn.Module", x: "Tensor", names: list[str], method: str,
                 output: str) -> tuple[list[str], dict[str, list["Tensor"]], dict[str, list["Tensor"]]]:
    """Return the output leaf paths and, per generator, ``L f(x)`` and ``J_f(x)·(G x)`` per leaf, for one chunk."""
    import torch

    from pytest_equivariance.check.detections import refuse_sets
    from pytest_equivariance.check.runner import flatten_output

    leaves_seen: list[tuple[str, Any, Any]] = []  # (path, dtype, shape) of every leaf, floats or not

    def f(inp: "Tensor") -> tuple["Tensor", ...]:
        out = model(inp)
        refuse_sets("lie_derivative", out)
        leaves = flatten_output(out)
        leaves_seen[:] = [(p, t.dtype, t.shape) for p, t in leaves]
        floats = tuple(t for _, t in leaves if t.is_floating_point())
        if not floats:  # said before forward-mode AD meets it, which would blame an op instead
            raise no_float_output("lie_derivative", out)
        return floats

    tangents = [input_tangent(name, x, method) for name in names]
    primal, pushed = _jvps(f, x, tangents)  # the float leaves, and per generator J_f(x)·(G x) of each
    derivative: dict[str, list[Tensor]] = {}
    pushforward: dict[str, list[Tensor]] = {}
    for name, jv in zip(names, pushed):
        moved, rates, floats = [], [], iter(zip(primal, jv))
        for _, dtype, shape in leaves_seen:
            if not dtype.is_floating_point:
                zero = torch.zeros(shape, dtype=x.dtype, device=x.device)
                moved.append(zero)
                rates.append(zero)
                continue
            y, j = next(floats)
            rates.append(j)
            equivariant = output == "equivariant" or (output == "auto" and is_image_like(y, x))
            if equivariant:
                if y.dim() != 4:
                    raise EquivarianceUsageError(
                        f"output='equivariant' needs image outputs (N, C, H, W), got {tuple(y.shape)}; use "
                        f"output='auto' or 'invariant'."
                    )
                j = j - output_tangent(name, y, x.shape, method)
            moved.append(j)
        derivative[name], pushforward[name] = moved, rates
    return [p for p, _, _ in leaves_seen], derivative, pushforward


@contextlib.contextmanager
def quiet_vmap_fallback() -> Iterator[None]:
    """Silence vmap's "performance drop" warning inside the block, and only that warning.

    vmap warns each time an op has no batching rule and it loops over the batch instead; the
    figures are the same, the user can do nothing about it, and one warning per op and check would
    bury the report.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There is a performance drop", category=UserWarning)
        yield


@functools.lru_cache(maxsize=1)
def load_forward_ad() -> None:
    """Load torch's forward-mode AD decompositions once, without the warning torch prints for them.

    torch loads them on the first dual tensor, through ``torch.jit.script``, whose deprecation
    FutureWarning would otherwise reach the user's output from a call of ours.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        import torch.autograd.forward_ad as fwad

        loader = getattr(fwad, "_maybe_load_decompositions", None)
        if loader is not None:
            loader()


def _jvps(f: Callable[["Tensor"], tuple["Tensor", ...]], x: "Tensor",
          tangents: list["Tensor"]) -> tuple[tuple["Tensor", ...], list[tuple["Tensor", ...]]]:
    """Return ``f(x)`` and ``J_f(x)·v`` for each tangent ``v``.

    One vmapped forward-mode pass over all tangents, the primal computed once; one pass per tangent
    when the model has ops vmap cannot batch.
    """
    import torch
    from torch.func import jvp, vmap

    load_forward_ad()

    def push(v: "Tensor") -> tuple[tuple["Tensor", ...], tuple["Tensor", ...]]:
        return jvp(f, (x,), (v,))

    if len(tangents) > 1:
        try:
            with quiet_vmap_fallback():
                primal, stacked = vmap(push)(torch.stack(tangents))
            return tuple(p[0] for p in primal), [tuple(leaf[i] for leaf in stacked) for i in range(len(tangents))]
        except RuntimeError:
            pass  # an op without a batching rule (in-place ops on unbatched tensors): one pass each
    try:
        passes = [push(v) for v in tangents]
    except RuntimeError as exc:
        raise _forward_ad_error(exc) from exc
    return passes[0][0], [tangent for _, tangent in passes]


def _forward_ad_error(exc: BaseException) -> EquivarianceUsageError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return EquivarianceUsageError(
        f"The model cannot be differentiated in forward mode ({text}); Lie derivatives need forward-mode "
        f"AD through every op: replace that op, or measure with a finite transform instead, e.g. "
        f"check_shift_equivariant(model, inputs, shifts=[(0, 0.5)]) for a sub-pixel shift."
    )


def leaves(value: Any) -> list["Tensor"]:
    """Return the tensors of a Lie derivative: the tensor itself, or a structured output's leaves."""
    return list(value.values()) if isinstance(value, Mapping) else [value]
