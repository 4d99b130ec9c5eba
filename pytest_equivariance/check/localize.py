"""Per-layer equivariance error: which layer breaks equivariance first.

:func:`localize` runs the model on ``x`` and on ``g·x``, captures the output of every layer of the
linter's graph (:func:`pytest_equivariance.lint.graph.build_graph`) in execution order, and measures at
each layer how far the pair of feature maps is from equivariant. The first layer whose error rises above
numerical noise is the *culprit*; the lint finding at that layer, when there is one, says how to fix it.

How a layer is measured depends on the group element (see ``docs/localize.md``):

- shifts: the relative change in the magnitude of the feature map's DFT over the spatial dims. A
  circular shift — by whole pixels, or by a fraction of a pixel of a band-limited map, as after an
  anti-aliased downsampler — only changes the DFT's phase, so ``|DFT|`` is unchanged at every layer that
  is equivariant, whatever its stride. Aliasing (strided pooling, convolution, slicing, nearest
  downscaling) changes it at the layer where it happens, even when global pooling later hides it.
  Crop and zero modes leave the borders out of the check, so their profile is taken under the same
  shift made circular, with the convolutions' zero padding made circular for the duration.
- quarter turns and flips: the transformed feature map compared pixel by pixel, with each pixel's
  channel values sorted, so that layers whose channels permute under the group (regular
  representations, as in group convolutions) count as equivariant.
- rotations by interpolation: rotated feature maps compared on the inscribed disk. Interpolation
  error is never zero, so this measure is approximate: a layer is named only when its error exceeds
  :data:`RISE` times the largest error before it (and the input's own interpolation loss).
- rescalings: each layer's map on ``x`` rescaled as the output is (its scale channels, if any, are
  not known, so they are taken as scalar maps) against its map on the rescaled input, within the band
  both grids hold: a fixed kernel (which has no scale) or a nonlinearity whose harmonics alias is
  where the error rises first.
- custom transforms have no defined action on intermediate feature maps and are not localised.

Feature maps without spatial dims (after global pooling or flattening) must be invariant and are
compared directly. Errors are relative (``‖Δ‖₂ / ‖reference‖₂`` over the whole batch), so they are
comparable across layers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from pytest_equivariance import guards
from pytest_equivariance.check.layer_sites import (
    describe,
    is_float_tensor,
    matching_finding,
    model_graph,
    noise_floor,
    peak_ratio,
    plain_params,
)
from pytest_equivariance.check.padding import circular_padding
from pytest_equivariance.check.result import LayerError, Profile
from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from pytest_equivariance.check.transforms import Transform

#: For approximate measures, how many times the largest earlier error a layer must exceed to be named.
RISE = 2.0

_Measure = Callable[["Tensor", "Tensor"], "tuple[float, float] | None"]


def localize(
    model: "nn.Module",
    inputs: "Tensor",
    transform: "Transform",
    *,
    equivariant: bool,
    device: "torch.device | str | None" = None,
    batch_size: int | None = None,
) -> Profile:
    """Return the per-layer equivariance error of ``model`` under ``transform`` and its first culprit.

    ``inputs`` is the batch the check ran on (in crop mode the canvas, as for
    :meth:`Transform.on_input`). The model runs as in a check (:func:`runner.prepared`: eval mode,
    TF32 off, on ``device`` or where its parameters are, all restored afterwards) under
    ``torch.inference_mode()``, on batches of ``batch_size`` images, half ``x`` and half ``g·x``.
    ``equivariant`` says whether the model's output should transform with the input (True) or stay
    the same (False); intermediate feature maps are always judged for equivariance, since invariant
    models are equivariant feature extractors followed by pooling.

    Raises :class:`EquivarianceUsageError` when ``inputs`` is not a batch tensor; a model that cannot
    be traced is profiled by module hooks instead (``Profile.method`` says so).

    Example::

        >>> from pytest_equivariance.check.transforms import shift
        >>> profile = localize(model, images, shift((1, -3), (-2, -1)), equivariant=False)
        >>> profile.culprit.qualname
        'features.pool1'
    """
    import torch

    from pytest_equivariance.check import runner

    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 2:
        got = f"shape {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise EquivarianceUsageError(
            f"localize needs the inputs as one tensor of shape (batch, channels, *spatial), got {got}; "
            f"pass the batch the check ran on."
        )
    model = guards.eager_module(model, "localize")  # hooks run on a compiled model's original module
    guards.require_materialised(model, "localize")
    guards.require_tensor(inputs, "inputs", "localize")
    from pytest_equivariance.check.transforms import Transform

    if not isinstance(transform, Transform):
        raise EquivarianceUsageError(
            f"localize needs a Transform, got {shown(transform)}; pass one from "
            f"pytest_equivariance.check.transforms, e.g. shift((1, 2), (-2, -1))."
        )
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise EquivarianceUsageError(f"localize got batch_size={shown(batch_size)}; pass a positive integer or None.")
    if not isinstance(equivariant, bool):
        raise EquivarianceUsageError(f"localize got equivariant={shown(equivariant)}; pass True or False.")
    from pytest_equivariance.check.libraries import FIELD_TYPES

    if getattr(model, FIELD_TYPES, None) is not None and transform.family == "group":
        return _localize_fields(model, inputs, transform, device=runner.resolve_device(device, model))
    measure, method, approximate, baseline_measure = _measure_for(transform, inputs)
    if measure is None:
        return Profile(layers=[], method=method, transform=transform.label)
    dev = runner.resolve_device(device, model)
    inputs = inputs.to(dev)
    x0 = transform.reference(inputs)
    probe_borders = transform.family == "shift" and transform.mode in ("crop", "zero")
    # crop and zero modes exclude the borders by design: probe with the same shift, circular, so that
    # only what happens inside the image is measured (see check.padding).
    x1 = torch.roll(x0, transform.params["shift"], transform.dims) if probe_borders else transform.on_input(inputs)

    graph = model_graph(model, x0[:1])
    # Padded layers wrap around under shifts: a border is not blamed on the first layer that pads it.
    circular = circular_padding(model, transform.family == "shift", ndim=inputs.ndim)
    try:
        with runner.prepared(model, dev, x0.dtype), torch.inference_mode(), circular:
            sums, peaks, layers = _run_pairs(model, graph, x0, x1, measure, batch_size, equivariant)
    except EquivarianceUsageError:
        raise
    except Exception as exc:  # the model's own complaint about the inputs, said as a usage error
        raise runner.rejected(exc, x0) from exc

    worst_before = baseline_measure(x0, x1) if approximate and baseline_measure is not None else 0.0
    sites = [describe(key, graph) for key in layers]
    profile_layers = []
    for index, (key, site) in enumerate(zip(layers, sites)):
        num, den = sums[key]
        error = math.sqrt(num / den) if den > 0 else 0.0
        peak_ratio, dtype = peaks[key]
        noise = noise_floor(dtype, position=index, peak_ratio=peak_ratio)
        if approximate:  # the bar a layer must clear: what it inherited, RISE times over
            noise = max(noise, RISE * worst_before)
            worst_before = max(worst_before, error)
        profile_layers.append(
            LayerError(
                qualname=site.name,
                op=site.op,
                error=error,
                noise=noise,
                params=plain_params(site.params),
                file=site.file,
                line=site.line,
            )
        )
    culprit = first_break(profile_layers)
    if graph is None or graph.graph_module is None:
        method += "; recorded by module hooks (the model does not trace whole, so functional calls are not seen)"
    if approximate:
        method += f"; approximate: a layer is named when its error exceeds {RISE:g}x the largest before it"
    profile = Profile(layers=profile_layers, culprit=culprit, method=method, transform=transform.label)
    if culprit is not None:
        finding = matching_finding(graph, sites[profile_layers.index(culprit)])
        if finding is not None:
            profile.finding_code, profile.finding_fix = finding
    return profile


def _localize_fields(model: "nn.Module", inputs: "Tensor", transform: "Transform", *, device: Any) -> Profile:
    """Profile an escnn / e2cnn module (wrapped by ``libraries.wrap_library_module``) layer by layer.

    Each of its innermost equivariant modules returns a ``GeometricTensor`` whose field type is
    known, so every layer is judged with its own fields: ``g`` acts on the layer's output on ``x``
    by that type's representation (and on the grid), and the result is compared with the layer's
    output on ``g·x``. Off-grid elements are approximate, as for interpolated rotations.
    """
    import torch

    from pytest_equivariance.check import runner
    from pytest_equivariance.check.fields import Fields
    from pytest_equivariance.check.libraries import is_equivariant_module, library_group

    inner = model.module
    layers = [
        (name, m) for name, m in inner.named_modules()
        if is_equivariant_module(m) and not any(is_equivariant_module(c) for c in m.children())
    ]
    element = transform.element
    x0, x1 = transform.reference(inputs.to(device)), transform.on_input(inputs.to(device))
    outputs: dict[str, list[Any]] = {}

    def hook_for(name: str):
        def hook(module, args, out):
            outputs.setdefault(name, []).append(out)

        return hook

    handles = [m.register_forward_hook(hook_for(name or "<model>")) for name, m in layers]
    try:
        with runner.prepared(model, device, x0.dtype), torch.inference_mode():
            model(torch.cat([x0, x1]))
    finally:
        for handle in handles:
            handle.remove()
    n = x0.shape[0]
    approximate = not element.on_grid
    worst_before = 0.0
    profile_layers = []
    for index, (name, m) in enumerate(layers):
        for out in outputs.get(name or "<model>", []):
            tensor, field_type = out.tensor, out.type
            a, b = tensor[:n], tensor[n:]
            fields = Fields(library_group(field_type), library=field_type)
            expected = fields.act(element, element.spatial(a, transform.dims))
            mask = transform.mask(tuple(b.shape), margin=1, device=b.device)
            num, den = direct_error(expected, b, mask)
            error = math.sqrt(num / den) if den > 0 else 0.0
            noise = noise_floor(b.dtype, position=index, peak_ratio=peak_ratio(a))
            if approximate:
                noise = max(noise, RISE * worst_before)
                worst_before = max(worst_before, error)
            profile_layers.append(LayerError(qualname=name or "<model>", op=type(m).__name__, error=error, noise=noise))
    method = "relative difference of transformed maps, each layer's output acted on by its own field type"
    if approximate:
        method += f"; approximate: a layer is named when its error exceeds {RISE:g}x the largest before it"
    return Profile(layers=profile_layers, culprit=first_break(profile_layers), method=method,
                   transform=transform.label)


def first_break(layers: list[LayerError]) -> LayerError | None:
    """Return the first layer whose error rises above its noise floor, or None when none does."""
    return next((layer for layer in layers if layer.error > layer.noise), None)


# -- measures -----------------------------------------------------------------------------------


def spectral_error(a: "Tensor", b: "Tensor", dims: tuple[int, ...]) -> tuple[float, float]:
    """Return ``(‖|F b| - |F a|‖², ‖|F a|‖²)``, with ``F`` the DFT over ``dims``.

    The magnitude of the DFT is unchanged by circular shifts, so the ratio is zero for feature maps that
    are circular shifts of each other, by any whole or (band-limited) fractional number of pixels.
    Transforms run in float32 (float64 for float64 maps): their rounding, about ``eps · log2(n)``
    relative, stays well below the noise floor.
    """
    import torch

    work = torch.float64 if a.dtype == torch.float64 else torch.float32
    fa = torch.fft.rfftn(a.to(work), dim=dims).abs()
    fb = torch.fft.rfftn(b.to(work), dim=dims).abs()
    return float((fb - fa).double().square().sum()), float(fa.double().square().sum())


def direct_error(a: "Tensor", b: "Tensor", mask: "Tensor | None" = None) -> tuple[float, float]:
    """Return ``(‖b - a‖², ‖a‖²)`` in float64, over the elements where ``mask`` is true (all if None)."""
    a, b = a.double(), b.double()
    diff = b - a
    if mask is not None:
        diff, a = diff * mask, a * mask
    return float(diff.square().sum()), float(a.square().sum())


def _spatial_dims(a: "Tensor", ndim: int, dims: tuple[int, ...]) -> tuple[int, ...] | None:
    """Return the spatial dims of feature map ``a`` that still have extent, () if it has none left, or
    None when its layout is unknown (neither ``(N, C, *spatial)`` like the input nor ``(N, features)``)."""
    if a.ndim == ndim:
        return tuple(d for d in dims if a.shape[d] > 1)
    if a.ndim <= 2:
        return ()
    return None


def _measure_for(transform: "Transform", inputs: "Tensor"):
    """Return ``(measure, method, approximate, baseline_measure)`` for the transform's family and mode."""
    ndim, dims = inputs.ndim, tuple(transform.dims)
    family, mode = transform.family, transform.mode

    def invariant_or(spatial: Callable[["Tensor", "Tensor", tuple[int, ...]], "tuple[float, float] | None"]):
        def measure(a: "Tensor", b: "Tensor") -> "tuple[float, float] | None":
            sdims = _spatial_dims(a, ndim, dims)
            if sdims is None:
                return None
            if not sdims:
                return direct_error(a, b) if a.shape == b.shape else None
            return spatial(a, b, sdims)

        return measure

    def same_shape(a: "Tensor", b: "Tensor") -> bool:
        return a.shape == b.shape

    if family == "shift":

        def spectral(a: "Tensor", b: "Tensor", sdims: tuple[int, ...]) -> "tuple[float, float] | None":
            return spectral_error(a, b, sdims) if same_shape(a, b) else None

        method = "relative change of |DFT|"
        if mode != "circular":
            method += f" (borders excluded as in {mode} mode: circular shift, conv padding made circular)"
        return invariant_or(spectral), method, False, None

    if family in ("rot90", "flip"):

        def aligned(a: "Tensor", b: "Tensor", sdims: tuple[int, ...]) -> "tuple[float, float] | None":
            moved = transform.on_output(a)  # quarter turns of non-square maps swap their sides
            return direct_error(_sort_channels(moved), _sort_channels(b)) if same_shape(moved, b) else None

        method = "relative difference of transformed maps, channels sorted per pixel"
        return invariant_or(aligned), method, False, None

    if family == "angle":

        def on_disk(a: "Tensor", b: "Tensor", sdims: tuple[int, ...]) -> "tuple[float, float] | None":
            if len(sdims) != len(dims) or not same_shape(a, b):
                return None
            mask = transform.mask(tuple(a.shape), margin=1, device=a.device)
            return direct_error(_sort_channels(transform.on_output(a)), _sort_channels(b), mask)

        def baseline(x0: "Tensor", x1: "Tensor") -> float:
            # The interpolation loss of the input itself: rotate back, compare on the disk, halve.
            from pytest_equivariance.check.transforms import rotate

            back = rotate(x1, -transform.params["angle"], dims)
            mask = transform.mask(tuple(x0.shape), margin=1, device=x0.device)
            num, den = direct_error(x0, back, mask)
            return math.sqrt(num / den) / 2 if den > 0 else 0.0  # a round trip interpolates twice

        method = "relative difference of rotated maps on the inscribed disk"
        return invariant_or(on_disk), method, True, baseline

    if family == "group":
        element = transform.element

        def moved(a: "Tensor") -> "Tensor":  # the element on the grid only: a layer's fields are unknown
            return element.spatial(a, dims)

        def aligned_group(a: "Tensor", b: "Tensor", sdims: tuple[int, ...]) -> "tuple[float, float] | None":
            m = moved(a)
            if len(sdims) != len(dims) or m.shape != b.shape:
                return None
            mask = transform.mask(tuple(a.shape), margin=1, device=a.device)
            return direct_error(_sort_channels(m), _sort_channels(b), mask)

        def group_baseline(x0: "Tensor", x1: "Tensor") -> float:
            back = element.undo(x1, dims)
            mask = transform.mask(tuple(x0.shape), margin=1, device=x0.device)
            num, den = direct_error(x0, back, mask)
            return math.sqrt(num / den) / 2 if den > 0 else 0.0

        method = ("relative difference of transformed maps, channels sorted per pixel (a layer's fields are "
                  "not known: exact for scalar and regular fields, approximate for others)")
        if element.on_grid:
            return invariant_or(aligned_group), method, False, None
        return invariant_or(aligned_group), method + ", on the inscribed disk", True, group_baseline

    if family == "scale":
        rescaling = transform.element

        def rescaled(a: "Tensor", b: "Tensor", sdims: tuple[int, ...]) -> "tuple[float, float] | None":
            from pytest_equivariance.check.rescaling import scaled_size

            sizes = [scaled_size(a.shape[d], rescaling.factor) for d in dims]
            lead = len(dims)
            if len(sdims) != lead or sizes != [b.shape[d] for d in dims] or a.shape[:-lead] != b.shape[:-lead]:
                return None
            moved = rescaling.on_output(a, dims, "")  # a layer's scale channels are not known: scalar maps
            return direct_error(moved, rescaling.comparable(b, dims))

        band = ", within the band both grids hold" if rescaling.resampler.exact else ""
        method = f"relative difference of rescaled maps ({mode} resampling{band})"
        return invariant_or(rescaled), method, False, None

    method = f"not localised: a {family} transform has no defined action on intermediate feature maps"
    return None, method, False, None


def _sort_channels(a: "Tensor") -> "Tensor":
    # Sorting makes the comparison blind to channel permutations (regular representations).
    return a.sort(dim=1).values if a.ndim > 2 else a


# -- capturing layer outputs ----------------------------------------------------------------------


def _run_pairs(model, graph, x0, x1, measure: _Measure, batch_size, equivariant):
    """Run ``x`` and ``g·x`` through the model; return per-layer error sums, peak ratios and layer order.

    Each chunk of ``x`` runs in one batch with its partner chunk of ``g·x``, so every layer's output
    holds both halves and is measured the moment it is computed: nothing is stored between layers
    (memory stays that of one forward pass of ``batch_size`` images) and later in-place ops cannot
    touch it. Outputs whose first dim is not that joint batch cannot be split and are skipped. When
    ``g·x`` has another shape (a quarter turn of a non-square image), the two run one after the other,
    and each layer's output on ``x`` is copied until its partner arrives.
    """
    import torch

    sums: dict[Any, list[float]] = {}
    peaks: dict[Any, tuple[float, Any]] = {}
    order: dict[Any, None] = {}  # insertion-ordered set
    # An invariant model's output must not move at all, even if it still has spatial dims.
    outputs = set() if equivariant else _output_nodes(graph)

    def record(key, a, b) -> None:
        pair = direct_error(a, b) if id(key) in outputs else measure(a, b)
        if pair is None:
            return
        acc = sums.setdefault(key, [0.0, 0.0])
        acc[0] += pair[0]
        acc[1] += pair[1]
        ratio = peak_ratio(a)
        old = peaks.get(key)
        peaks[key] = (max(ratio, old[0]) if old else ratio, a.dtype)
        order.setdefault(key)

    n = x0.shape[0]
    joint = x0.shape[1:] == x1.shape[1:]
    step = (max(1, batch_size // 2) if joint else batch_size) if batch_size else n
    for start in range(0, n, step):
        m = min(step, n - start)
        c0, c1 = x0[start : start + m], x1[start : start + m]
        if joint:

            def split(key, out, m=m):
                if out.ndim and out.shape[0] == 2 * m:
                    record(key, out[:m], out[m:])

            _run(model, graph, torch.cat([c0, c1]), split)
            continue
        kept: dict[Any, Tensor] = {}
        # A copy: later in-place ops (ReLU(inplace=True), x += y) would overwrite the reference.
        _run(model, graph, c0, lambda key, out: kept.__setitem__(key, out.detach().clone()))
        _run(model, graph, c1, lambda key, out: record(key, kept.pop(key), out) if key in kept else None)
    return sums, peaks, list(order)


def _output_nodes(graph) -> set[int]:
    """Return the ids of the fx nodes whose values the model returns (empty without an fx graph)."""
    if graph is None or graph.graph_module is None:
        return set()
    import torch.fx

    out: set[int] = set()
    for node in graph.graph_module.graph.nodes:
        if node.op == "output":
            torch.fx.node.map_arg(node.args, lambda n: out.add(id(n)))
    return out


def _run(model, graph, x, visit) -> None:
    """Run ``model`` on ``x``, calling ``visit(key, output)`` for each measured layer in execution order.

    With a whole-model fx graph, an Interpreter visits every call site (modules, functions, methods);
    layers inside modules fx kept opaque, and every layer when there is no whole-model graph, are
    visited by forward hooks, keyed by ``(qualname, call number)`` since a module may run twice.
    """
    import torch.fx

    fx_graph = graph.graph_module.graph if graph is not None and graph.graph_module is not None else None
    in_graph = {id(node) for node in fx_graph.nodes} if fx_graph is not None else set()
    hooked = _module_sites(model, graph, skip=in_graph)
    calls: dict[int, int] = {}

    def hook_for(qualname):
        def hook(module, args, out):
            k = calls.get(id(module), 0)
            calls[id(module)] = k + 1
            if is_float_tensor(out):
                visit((qualname, k), out)

        return hook

    handles = [module.register_forward_hook(hook_for(qualname)) for qualname, module in hooked]
    try:
        if fx_graph is None:
            model(x)
            return
        # Only values computed from the input are feature maps; the rest (weights built in forward) are not.
        live: set[int] = set()
        for node in fx_graph.nodes:
            if node.op == "placeholder" or any(id(arg) in live for arg in node.all_input_nodes):
                live.add(id(node))
        sites = {id(site.node) for site in graph.sites if site.node is not None and id(site.node) in live}

        class Recorder(torch.fx.Interpreter):
            def run_node(self, node):
                out = super().run_node(node)
                if id(node) in sites and is_float_tensor(out):
                    visit(node, out)
                return out

        # The graph's own modules may be copies (e.g. on the meta device); run it over the real model.
        Recorder(model, graph=fx_graph).run(x)
    finally:
        for handle in handles:
            handle.remove()


def _module_sites(model, graph, skip: set[int]) -> list[tuple[str, "nn.Module"]]:
    """Return ``(qualname, module)`` of the module sites to hook: those not in the fx graph (``skip``)."""
    seen, out = set(), []
    if graph is not None:
        for site in graph.sites:
            if site.module is None or id(site.module) in seen or (site.node is not None and id(site.node) in skip):
                continue
            seen.add(id(site.module))
            out.append((site.qualname, site.module))
    elif not skip:  # no graph at all: every leaf module
        for name, module in model.named_modules():
            if name and not any(True for _ in module.children()):
                out.append((name, module))
    return out
