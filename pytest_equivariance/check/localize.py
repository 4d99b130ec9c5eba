"""Per-layer equivariance error: which layer breaks equivariance first.

:func:`localize` runs the model on ``x`` and on ``g·x``, captures the output of every layer of the
linter's graph (:func:`pytest_equivariance.lint.graph.build_graph`) in execution order, and measures at
each layer how far the pair of feature maps is from equivariant. The first layer whose error rises above
numerical noise is the *culprit*; the lint finding at that layer, when there is one, says how to fix it.

How a layer is measured depends on the group element (see ``docs/localize.md``):

- circular shifts: the relative change in the magnitude of the feature map's DFT over the spatial dims.
  A circular shift — by whole pixels, or by a fraction of a pixel of a band-limited map, as after an
  anti-aliased downsampler — only changes the DFT's phase, so ``|DFT|`` is unchanged at every layer that
  is equivariant, whatever its stride. Aliasing (strided pooling, convolution, slicing, nearest
  downscaling) changes it at the layer where it happens, even when global pooling later hides it.
- quarter turns and flips: the transformed feature map compared pixel by pixel, with each pixel's
  channel values sorted, so that layers whose channels permute under the group (regular
  representations, as in group convolutions) count as equivariant.
- shifts in crop or zero mode, and rotations by interpolation: approximate measures (|DFT| of tapered
  maps; rotated maps compared on the inscribed disk) whose baseline is not zero. The culprit is then the
  first layer whose error also exceeds :data:`RISE` times the largest error before it.

Feature maps without spatial dims (after global pooling or flattening) must be invariant and are
compared directly. Errors are relative (``‖Δ‖₂ / ‖reference‖₂`` over the whole batch), so they are
comparable across layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from pytest_equivariance.check.result import LayerError, Profile

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from pytest_equivariance.check.transforms import Transform

#: Safety factor of the noise floor over the rounding bound (see :func:`noise_floor`).
NOISE_FACTOR = 16.0
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
    :meth:`Transform.on_input`). The model runs in eval mode under ``torch.inference_mode()``, in chunks
    of ``batch_size`` inputs, on the device of its parameters unless ``device`` is given (the model is not
    moved: place it first). ``equivariant`` says whether the model's output should transform with the
    input (True) or stay the same (False); intermediate feature maps are always judged for equivariance,
    since invariant models are equivariant feature extractors followed by pooling.

    Example::

        >>> from pytest_equivariance.check.transforms import shift
        >>> profile = localize(model, images, shift((1, -3), (-2, -1)), equivariant=False)
        >>> profile.culprit.qualname
        'features.pool1'
    """
    import torch

    measure, method, approximate, baseline_measure = _measure_for(transform, inputs)
    dev = torch.device(device) if device is not None else _model_device(model)
    inputs = inputs.to(dev)
    x0, x1 = transform.reference(inputs), transform.on_input(inputs)
    example = x0[:1]

    graph = _build_graph(model, example)
    if measure is None:
        return Profile(layers=[], method=method)

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            sums, peaks, layers = _run_pairs(model, graph, x0, x1, measure, batch_size, equivariant)
    finally:
        model.train(was_training)

    baseline = 0.0
    if approximate and baseline_measure is not None:
        baseline = baseline_measure(x0, x1)
    sites = [_describe(key, graph) for key in layers]
    profile_layers = []
    for index, (key, site) in enumerate(zip(layers, sites)):
        num, den = sums[key]
        error = math.sqrt(num / den) if den > 0 else 0.0
        peak_ratio, dtype = peaks[key]
        profile_layers.append(
            LayerError(
                qualname=site.name,
                op=site.op,
                error=error,
                noise=noise_floor(dtype, position=index, peak_ratio=peak_ratio),
                params=_plain_params(site.params),
                file=site.file,
                line=site.line,
            )
        )
    culprit = first_break(profile_layers, approximate=approximate, baseline=baseline)
    if approximate:
        method += f"; approximate: a layer is named when its error exceeds {RISE:g}x the largest before it"
    profile = Profile(layers=profile_layers, culprit=culprit, method=method, transform=transform.label)
    if culprit is not None:
        finding = _matching_finding(model, example, sites[profile_layers.index(culprit)])
        if finding is not None:
            profile.finding_code, profile.finding_fix = finding.code, finding.fix
    return profile


def first_break(layers: list[LayerError], *, approximate: bool = False, baseline: float = 0.0) -> LayerError | None:
    """Return the first layer whose error rises above its noise floor (and, if ``approximate``, above
    :data:`RISE` times the largest error before it and ``baseline``), or None."""
    worst_before = baseline
    for layer in layers:
        above = layer.error > layer.noise
        if approximate:
            above = above and layer.error > RISE * worst_before
        if above:
            return layer
        worst_before = max(worst_before, layer.error)
    return None


def noise_floor(dtype: "torch.dtype", *, position: int = 0, peak_ratio: float = 1.0) -> float:
    """Return the relative error below which a layer's error counts as rounding noise.

    ``NOISE_FACTOR · eps(dtype) · sqrt(position + 1) · peak_ratio``: rounding errors are relative to the
    largest activation, so a map's relative L2 error from rounding is bounded by about ``eps`` times its
    peak-to-RMS ratio (``peak_ratio``); they accumulate like a random walk over the ``position`` layers
    before it; and the factor leaves room for reductions summed in a different order on ``g·x``.
    """
    import torch

    eps = torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(torch.float32).eps
    return NOISE_FACTOR * eps * math.sqrt(position + 1) * max(peak_ratio, 1.0)


# -- measures -----------------------------------------------------------------------------------


def spectral_error(a: "Tensor", b: "Tensor", dims: tuple[int, ...]) -> tuple[float, float]:
    """Return ``(‖|F b| - |F a|‖², ‖|F a|‖²)``, with ``F`` the DFT over ``dims`` (in float64).

    The magnitude of the DFT is unchanged by circular shifts, so the ratio is zero for feature maps that
    are circular shifts of each other, by any whole or (band-limited) fractional number of pixels.
    """
    import torch

    fa = torch.fft.rfftn(a.double(), dim=dims).abs()
    fb = torch.fft.rfftn(b.double(), dim=dims).abs()
    return float((fb - fa).square().sum()), float(fa.square().sum())


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


def _stride(a: "Tensor", reference: "Tensor", dims: tuple[int, ...]) -> tuple[int, ...] | None:
    strides = []
    for d in dims:
        n, m = reference.shape[d], a.shape[d]
        if m == 0 or n % m:
            return None
        strides.append(n // m)
    return tuple(strides)


def _measure_for(transform: "Transform", inputs: "Tensor"):
    """Return ``(measure, method, approximate, baseline_measure)`` for the transform's family and mode."""
    ndim, dims = inputs.ndim, tuple(transform.dims)
    family, mode = transform.family, transform.mode

    def invariant_or(spatial: Callable[["Tensor", "Tensor", tuple[int, ...]], "tuple[float, float] | None"]):
        def measure(a: "Tensor", b: "Tensor") -> "tuple[float, float] | None":
            if a.shape != b.shape:
                return None
            sdims = _spatial_dims(a, ndim, dims)
            if sdims is None:
                return None
            if not sdims:
                return direct_error(a, b)
            return spatial(a, b, sdims)

        return measure

    if family == "shift" and mode == "circular":
        method = "relative change of |DFT| over the spatial dims"
        return invariant_or(spectral_error), method, False, None

    if family in ("rot90", "flip"):

        def aligned(a: "Tensor", b: "Tensor", sdims: tuple[int, ...]) -> tuple[float, float]:
            if len(sdims) != len(dims):  # a spatial dim collapsed to size 1: judge what is left
                return spectral_error(a, b, sdims)
            return direct_error(_sort_channels(transform.on_output(a)), _sort_channels(b))

        method = "relative difference of transformed feature maps, channels sorted per pixel"
        return invariant_or(aligned), method, False, None

    if family == "shift":  # crop / zero: borders see different content, so nothing is exact

        def tapered(a: "Tensor", b: "Tensor", sdims: tuple[int, ...]) -> tuple[float, float]:
            window = _hann(a, sdims)
            return spectral_error(a * window, b * window, sdims)

        def baseline(x0: "Tensor", x1: "Tensor") -> float:
            num, den = tapered(x0, x1, tuple(d for d in dims if x0.shape[d] > 1))
            return math.sqrt(num / den) if den > 0 else 0.0

        method = f"relative change of |DFT| of Hann-tapered feature maps ({mode} mode)"
        return invariant_or(tapered), method, True, baseline

    if family == "angle":

        def on_disk(a: "Tensor", b: "Tensor", sdims: tuple[int, ...]) -> "tuple[float, float] | None":
            if len(sdims) != len(dims):
                return None
            mask = transform.mask(tuple(a.shape), margin=1, device=a.device)
            return direct_error(_sort_channels(transform.on_output(a)), _sort_channels(b), mask)

        def baseline(x0: "Tensor", x1: "Tensor") -> float:
            # The interpolation loss of the input itself: rotate back and compare on the disk.
            from pytest_equivariance.check.transforms import rotate

            back = rotate(x1, -transform.params["angle"], dims)
            mask = transform.mask(tuple(x0.shape), margin=1, device=x0.device)
            num, den = direct_error(x0, back, mask)
            return math.sqrt(num / den) if den > 0 else 0.0

        method = "relative difference of rotated feature maps on the inscribed disk"
        return invariant_or(on_disk), method, True, baseline

    return None, f"not localised: a {family} transform has no defined action on intermediate feature maps", False, None


def _sort_channels(a: "Tensor") -> "Tensor":
    # Sorting makes the comparison blind to channel permutations (regular representations).
    return a.sort(dim=1).values if a.ndim > 2 else a


def _hann(a: "Tensor", dims: tuple[int, ...]) -> "Tensor":
    import torch

    window = torch.ones((), dtype=torch.float64, device=a.device)
    for d in dims:
        n = a.shape[d]
        line = torch.hann_window(n, periodic=False, dtype=torch.float64, device=a.device)
        view = [1] * a.ndim
        view[d] = n
        window = window * line.view(view)
    return window.to(a.dtype)


# -- capturing layer outputs ----------------------------------------------------------------------


@dataclass
class _Site:
    """The part of a linter ``Site`` that a profile needs, and the name a chart shows for it."""

    qualname: str
    op: str
    kind: str = "module"
    params: dict[str, Any] = field(default_factory=dict)
    file: str | None = None
    line: int | None = None
    node_name: str | None = None

    @property
    def name(self) -> str:
        """``layer1.0.conv1`` for a module; the fx node's unique name under its owner for a call
        (``getitem``, ``layer1.0.add_1``): many calls share their owner's qualname."""
        if self.kind == "module" or not self.node_name:
            return self.qualname or "<model>"
        return f"{self.qualname}.{self.node_name}" if self.qualname else self.node_name


def _run_pairs(model, graph, x0, x1, measure: _Measure, batch_size, equivariant):
    """Run both inputs chunk by chunk; return per-layer error sums, peak ratios and layer order."""
    sums: dict[Any, list[float]] = {}
    peaks: dict[Any, tuple[float, Any]] = {}
    order: list[Any] = []
    # An invariant model's output must not move at all, even if it still has spatial dims.
    outputs = set() if equivariant else _output_nodes(graph)
    n = x0.shape[0]
    step = batch_size or n
    for start in range(0, n, step):
        reference: dict[Any, Tensor] = {}
        chunk_order: list[Any] = []

        def keep(key, out):
            # A copy: later in-place ops (ReLU(inplace=True), x += y) would overwrite the reference.
            reference[key] = out.detach().clone()
            chunk_order.append(key)

        def compare(key, out):
            a = reference.pop(key, None)
            if a is None or not _is_float_tensor(out):
                return
            pair = direct_error(a, out) if id(key) in outputs and a.shape == out.shape else measure(a, out)
            if pair is None:
                return
            acc = sums.setdefault(key, [0.0, 0.0])
            acc[0] += pair[0]
            acc[1] += pair[1]
            ratio = _peak_ratio(a)
            old = peaks.get(key)
            peaks[key] = (max(ratio, old[0]) if old else ratio, a.dtype)

        _run(model, graph, x0[start : start + step], keep)
        _run(model, graph, x1[start : start + step], compare)
        for key in chunk_order:
            if key in sums and key not in order:
                order.append(key)
    return sums, peaks, order


def _output_nodes(graph) -> set[int]:
    """Return the ids of the fx nodes whose values the model returns (empty without an fx graph)."""
    if graph is None or graph.graph_module is None:
        return set()
    out: set[int] = set()
    for node in graph.graph_module.graph.nodes:
        if node.op == "output":
            import torch.fx

            torch.fx.node.map_arg(node.args, lambda n: out.add(id(n)))
    return out


def _run(model, graph, x, visit) -> None:
    """Run ``model`` on ``x``, calling ``visit(key, output)`` for each measured layer in execution order."""
    if graph is not None and graph.graph_module is not None:
        return _run_fx(model, graph, x, visit)
    return _run_hooks(model, graph, x, visit)


def _run_fx(model, graph, x, visit):
    import torch.fx

    fx_graph = graph.graph_module.graph
    # Only values computed from the input are feature maps; the rest (weights built in forward) are not.
    live: set[int] = set()
    for node in fx_graph.nodes:
        if node.op == "placeholder" or any(id(arg) in live for arg in node.all_input_nodes):
            live.add(id(node))
    sites = {id(site.node) for site in graph.sites if site.node is not None and id(site.node) in live}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            out = super().run_node(node)
            if id(node) in sites and _is_float_tensor(out):
                visit(node, out)
            return out

    # The graph's own modules may be copies (e.g. on the meta device); run it over the real model.
    Recorder(model, graph=fx_graph).run(x)


def _run_hooks(model, graph, x, visit):
    sites = _module_sites(model, graph)
    calls: dict[int, int] = {}
    handles = []

    def hook_for(qualname):
        def hook(module, args, out):
            k = calls.get(id(module), 0)
            calls[id(module)] = k + 1
            if _is_float_tensor(out):
                visit((qualname, k), out)

        return hook

    for qualname, module in sites:
        handles.append(module.register_forward_hook(hook_for(qualname)))
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()


def _module_sites(model, graph) -> list[tuple[str, "nn.Module"]]:
    seen, out = set(), []
    if graph is not None:
        for site in graph.sites:
            if site.module is not None and id(site.module) not in seen:
                seen.add(id(site.module))
                out.append((site.qualname, site.module))
    if not out:  # no graph at all: every leaf module
        for name, module in model.named_modules():
            if name and not any(True for _ in module.children()):
                out.append((name, module))
    return out


def _describe(key, graph) -> _Site:
    """Return what the profile says about the layer captured under ``key`` (an fx node or a module call)."""

    def of(site) -> _Site:
        node = getattr(site, "node", None)
        return _Site(
            site.qualname, site.op, site.kind, dict(site.params or {}), site.file, site.line,
            node.name if node is not None else None,
        )

    if graph is not None:
        if not isinstance(key, tuple):
            site = graph.site_of(key)
            if site is not None:
                return of(site)
        else:
            for site in graph.sites:
                if site.qualname == key[0] and site.module is not None:
                    return of(site)
    if isinstance(key, tuple):
        return _Site(key[0], "module")
    return _Site("", str(getattr(key, "target", "op")), "function", node_name=getattr(key, "name", None))


def _build_graph(model, example):
    """Return the linter's graph of ``model``, or None when it cannot be built (hooks on leaves then)."""
    try:
        from pytest_equivariance.lint.graph import build_graph
    except ImportError:
        return None
    try:
        return build_graph(model, example)
    except Exception:  # the profile degrades to leaf-module hooks rather than failing the check
        return None


def _matching_finding(model, example, site: _Site):
    """Return the lint finding at ``site`` (any rule, suppressions ignored), or None.

    Modules match by qualified name; calls by source line (several calls share their owner's name).
    """
    try:
        from pytest_equivariance.lint import lint_model
        from pytest_equivariance.lint.rules import RULES

        report = lint_model(model, example, select=list(RULES), respect_suppressions=False)
    except Exception:  # the profile stands without the link to the linter
        return None
    if site.kind == "module":
        candidates = [f for f in report.findings if f.kind == "module" and f.qualname == site.qualname]
    else:
        candidates = [
            f for f in report.findings
            if f.kind != "module" and site.file is not None and (f.file, f.line) == (site.file, site.line)
        ]
    if len(candidates) > 1:
        candidates = [f for f in candidates if f.op == site.op] or candidates
    if not candidates:
        return None
    return max(candidates, key=lambda f: f.severity.rank)


# -- small helpers --------------------------------------------------------------------------------


def _is_float_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel() > 0


def _peak_ratio(a: "Tensor") -> float:
    a = a.detach().double()
    rms = float(a.square().mean().sqrt())
    return float(a.abs().max()) / rms if rms > 0 else 1.0


def _model_device(model: "nn.Module") -> "torch.device":
    import torch

    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


_PLAIN = (int, float, str, bool, type(None))


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """Keep the parameters that survive a JSON round trip (results travel between xdist workers)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, _PLAIN):
            out[key] = value
        elif isinstance(value, (tuple, list)) and all(isinstance(v, _PLAIN) for v in value):
            out[key] = list(value)
    return out

