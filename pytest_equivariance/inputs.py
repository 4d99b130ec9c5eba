"""Example inputs shared by the linter and the checks: shape inference and natural-like images."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_equivariance.errors import InputShapeError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Spatial size used when a shape must be inferred, by number of spatial dims.
#: 224 fits every torchvision classifier (ViTs demand it) and video model (MViT and S3D need 16 frames
#: of 224²); shapes only propagate on the meta device, so the size costs nothing.
LINT_SPATIAL = {1: (1024,), 2: (224, 224), 3: (16, 224, 224)}
#: Smaller default for dynamic checks, which run real compute on many transformed copies.
CHECK_SPATIAL = {1: (256,), 2: (64, 64), 3: (8, 32, 32)}


def infer_input_shape(
    model: "nn.Module", spatial: dict[int, tuple[int, ...]] | None = None, batch: int = 1
) -> tuple[int, ...]:
    """Return ``(batch, channels, *spatial)``: the size the model declares, else read off its first layer.

    Without ``spatial``, a model that says its input size is taken at its word
    (:func:`declared_input_shape`: timm's ``pretrained_cfg["input_size"]``, a Hugging Face
    ``config.image_size`` and ``num_channels``, or the size its layers fix). With ``spatial``, only a
    size the layers fix is taken (:func:`implied_input_shape`). Otherwise channels come from the first
    ``ConvNd`` / ``ConvTransposeNd`` / ``AntialiasedConvNd`` (``in_channels``) or ``Linear``
    (``in_features``, giving a 2-d shape) in definition order, or from the weight of the first
    functional convolution (``F.conv2d(x, self.weight)``), and the spatial size from ``spatial``
    (default :data:`LINT_SPATIAL`). Raises :class:`InputShapeError` when there is none of these.
    """
    from torch import nn

    from pytest_equivariance.layers.blurpool import _AntialiasedConvNd

    if spatial is None:
        declared = declared_input_shape(model, batch)
    else:
        declared = implied_input_shape(model, batch, spatial)
    if declared is not None:
        return declared
    sizes = LINT_SPATIAL if spatial is None else spatial
    for module in model.modules():
        if isinstance(module, _AntialiasedConvNd):  # a conv with a blur before it, as fixes write
            return (batch, module.in_channels, *sizes[len(module.kernel_size)])
        if isinstance(module, (nn.modules.conv._ConvNd,)) and not isinstance(
            module, nn.modules.lazy.LazyModuleMixin
        ):
            ndim = len(module.kernel_size)
            return (batch, module.in_channels, *sizes[ndim])
        if isinstance(module, nn.Linear):
            return (batch, module.in_features)
    weight = _functional_conv_weight(model)
    if weight is not None:
        return (batch, weight[1], *sizes[len(weight) - 2])
    name = type(model).__name__
    raise InputShapeError(
        f"Cannot infer an input shape for {name} because it has no conv or linear layer to read "
        f"channels from; pass one explicitly, e.g. --input-shape 1,3,224,224 or input_shape=(1, 3, 64, 64)."
    )


def declared_input_shape(model: "nn.Module", batch: int = 1) -> tuple[int, ...] | None:
    """Return the ``(batch, channels, *spatial)`` the model says it takes, or None.

    timm models carry ``pretrained_cfg`` (or ``default_cfg``) with ``input_size = (C, H, W)``;
    Hugging Face vision models a ``config`` with ``image_size`` (an int or ``(H, W)``) and
    ``num_channels``. Fixed-size models (``*_384``, dinov2 at 518, maxvit at 512) reject any other size.
    Other models may fix their size by their layers (:func:`implied_input_shape`).
    """
    configured = _configured_input_shape(model, batch)
    return configured if configured is not None else implied_input_shape(model, batch)


def _configured_input_shape(model: "nn.Module", batch: int) -> tuple[int, ...] | None:
    for attribute in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attribute, None)
        size = cfg.get("input_size") if isinstance(cfg, dict) else None
        if _positive_ints(size) and len(size) == 3:
            return (batch, *(int(s) for s in size))
    config = getattr(model, "config", None)
    image_size = getattr(config, "image_size", None)
    channels = getattr(config, "num_channels", None)
    if config is None or image_size is None or not _positive_ints([channels]):
        return None
    if _positive_ints([image_size]):
        return (batch, int(channels), int(image_size), int(image_size))
    if _positive_ints(image_size) and len(image_size) == 2:
        return (batch, int(channels), *(int(s) for s in image_size))
    return None


#: Largest input side searched for when a layer fixes the size of a later one.
_MAX_SIDE = 4096


def implied_input_shape(
    model: "nn.Module", batch: int = 1, spatial: dict[int, tuple[int, ...]] | None = None
) -> tuple[int, ...] | None:
    """Return the ``(batch, channels, *spatial)`` the model's layers fix, or None where any size fits.

    None too where the model takes the default size (``spatial``, default :data:`LINT_SPATIAL`) on
    the meta device: definition order is not always the order data flows in (an auxiliary head
    defined among the blocks), so what the layers seem to fix is taken only when the default fails.

    Two layers fix the input size of a conv net, read in definition order from its first conv:

    - a learned positional grid after a patch conv (kernel = stride = k > 1) with ``D`` output
      channels: a parameter of shape ``(1, D, h, w)``, or ``(1, N, D)`` with ``N`` (less one class
      token) ``= g**ndim`` tokens, fixes the patch conv's output to ``h x w`` (``g``-sided);
    - the first ``Linear`` after the convs, when its ``in_features`` is the last conv's channels
      times ``g**ndim`` with ``g > 1`` (a flatten of a ``g``-sided map; no adaptive pool between).

    The input size is then the smallest one (nearest ``g`` times the strides) that the convs and
    pools in between, with their kernels, strides, padding and dilation, take to that output size.
    """
    implied = _layers_input_shape(model, batch)
    if implied is None:
        return None
    default = (batch, implied[1], *(LINT_SPATIAL if spatial is None else spatial)[len(implied) - 2])
    return None if implied == default or _runs_on_meta(model, default) else implied


def _runs_on_meta(model: "nn.Module", shape: tuple[int, ...]) -> bool:
    """Return whether ``model`` takes an input of ``shape``, run on the meta device (no compute)."""
    import torch

    state = {name: value.to("meta") for name, value in (*model.named_parameters(), *model.named_buffers())}
    try:
        with torch.no_grad():
            torch.func.functional_call(model, state, (torch.empty(shape, device="meta"),))
    except Exception:  # a size mismatch, or code that reads a meta tensor's value: not known to fit
        return False
    return True


def _layers_input_shape(model: "nn.Module", batch: int) -> tuple[int, ...] | None:
    from torch import nn

    chain: list[nn.Module] = []
    first = last = None
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd) and not isinstance(module, nn.modules.lazy.LazyModuleMixin):
            if module.transposed:
                return None  # an upsampling layer: the sizes before it are not read back here
            first = first or module
            last = module
            chain.append(module)
            grid = _positional_grid(model, module)
            if grid is not None:
                return _shape_through(first, chain, grid, batch)
        elif isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
            chain.append(module)
        elif isinstance(module, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
            return None  # any size fits what follows
        elif isinstance(module, nn.Linear):
            if last is None:
                return None
            ndim = len(last.kernel_size)
            side = _root(module.in_features // last.out_channels, ndim)
            if module.in_features % last.out_channels or side is None or side < 2:
                return None  # a per-token linear (channels last), not a flatten of the map
            return _shape_through(first, chain, (side,) * ndim, batch)
    return None


def _positional_grid(model: "nn.Module", conv: "nn.Module") -> tuple[int, ...] | None:
    """Return the token grid a learned positional embedding fixes after the patch conv ``conv``."""
    ndim = len(conv.kernel_size)
    if any(k != s or s < 2 for k, s in zip(conv.kernel_size, conv.stride)):
        return None
    width = conv.out_channels
    for parameter in model.parameters():
        shape = tuple(parameter.shape)
        if len(shape) == ndim + 2 and shape[:2] == (1, width):
            return shape[2:]
        if len(shape) == 3 and shape[0] == 1 and shape[2] == width:
            for tokens in (shape[1], shape[1] - 1):  # with or without a class token
                side = _root(tokens, ndim)
                if side is not None and side > 1:
                    return (side,) * ndim
    return None


def _root(value: int, ndim: int) -> int | None:
    """Return ``g`` with ``g**ndim == value``, or None."""
    if value < 1:
        return None
    side = round(value ** (1 / ndim))
    return next((g for g in (side - 1, side, side + 1) if g > 0 and g**ndim == value), None)


def _shape_through(first: "nn.Module", chain: list["nn.Module"], out: tuple[int, ...],
                   batch: int) -> tuple[int, ...] | None:
    """Return the input shape that ``chain`` (convs and pools, in order) takes to spatial size ``out``."""
    spatial = []
    for axis, target in enumerate(out):
        strides = 1
        for layer in chain:
            strides *= _at(layer.stride, axis)
        guess = target * strides
        sides = sorted(range(1, _MAX_SIDE + 1), key=lambda n: (abs(n - guess), n))
        side = next((n for n in sides if _size_through(chain, n, axis) == target), None)
        if side is None:
            return None
        spatial.append(side)
    return (batch, first.in_channels, *spatial)


def _size_through(chain: list["nn.Module"], n: int, axis: int) -> int | None:
    """Return the size along ``axis`` after ``chain`` of an input of size ``n``, or None if it vanishes."""
    import math

    for layer in chain:
        padding = getattr(layer, "padding", 0)
        if padding == "same":
            continue
        padding = 0 if padding == "valid" else _at(padding, axis)
        kernel, stride = _at(layer.kernel_size, axis), _at(layer.stride, axis)
        dilation = _at(getattr(layer, "dilation", 1), axis)
        span = n + 2 * padding - dilation * (kernel - 1) - 1
        n = (math.ceil if getattr(layer, "ceil_mode", False) else math.floor)(span / stride) + 1
        if n < 1:
            return None
    return n


def _at(value: int | tuple[int, ...], axis: int) -> int:
    return value[axis] if isinstance(value, tuple) else value


def _functional_conv_weight(model: "nn.Module") -> tuple[int, ...] | None:
    """Return the shape of the parameter the first functional convolution of ``model`` uses as weight.

    Read off a ``torch.fx`` trace (``F.conv2d(x, self.weight)``, ``torch.conv1d``, ...); None when
    the model does not trace or uses no parameter so.
    """
    import torch
    import torch.nn.functional as F

    convs = {F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d}
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # any model code may fail to trace; then nothing is read
        return None
    for node in graph.nodes:
        if node.op == "call_function" and node.target in convs:
            weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
            if isinstance(weight, torch.fx.Node) and weight.op == "get_attr":
                try:
                    shape = tuple(model.get_parameter(str(weight.target)).shape)
                except AttributeError:
                    return None
                return shape if 3 <= len(shape) <= 5 else None
    return None


def _positive_ints(values: object) -> bool:
    if not isinstance(values, (tuple, list)) or not values:
        return False
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"1,3,224,224"`` (or ``"1x3x224x224"``) into a tuple of positive ints."""
    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(s <= 0 for s in shape):
        raise InputShapeError(
            f"Malformed input shape {text!r}; write positive integers separated by commas, "
            f"batch and channels first, e.g. 1,3,224,224."
        )
    return shape


def natural_images(
    shape: tuple[int, ...],
    *,
    seed: int = 0,
    dtype: "torch.dtype | None" = None,
    device: "torch.device | str | None" = None,
    exponent: float = 1.0,
) -> "torch.Tensor":
    """Return deterministic noise with a ``1/f**exponent`` amplitude spectrum over the spatial dims.

    Natural images have roughly 1/f amplitude spectra (Field 1987), so unlike white noise these
    inputs carry most energy at low frequencies, as photographs do, while still exercising every
    frequency a downsampler can alias. Dims ``2:`` are spatial; each (batch, channel) map is scaled
    to zero mean and unit variance. Generated in float64 on the CPU from ``seed``, so the same seed
    gives the same images on every device and dtype.
    """
    import torch

    if len(shape) < 3:
        gen = torch.Generator().manual_seed(seed)
        out = torch.randn(shape, generator=gen, dtype=torch.float64)
        return out.to(dtype=dtype or torch.get_default_dtype(), device=device)
    spatial = shape[2:]
    gen = torch.Generator().manual_seed(seed)
    white = torch.randn(shape, generator=gen, dtype=torch.float64)
    spectrum = torch.fft.rfftn(white, dim=tuple(range(2, len(shape))))
    freqs = [torch.fft.fftfreq(n, dtype=torch.float64) for n in spatial[:-1]]
    freqs.append(torch.fft.rfftfreq(spatial[-1], dtype=torch.float64))
    grids = torch.meshgrid(*freqs, indexing="ij")
    radius = torch.sqrt(sum(g**2 for g in grids))
    # The DC term gets the weight of the lowest non-zero frequency rather than infinity.
    floor = 1.0 / max(spatial)
    weight = radius.clamp_min(floor) ** (-exponent)
    images = torch.fft.irfftn(spectrum * weight, s=spatial, dim=tuple(range(2, len(shape))))
    flat = images.flatten(2)
    flat = (flat - flat.mean(-1, keepdim=True)) / flat.std(-1, keepdim=True).clamp_min(1e-12)
    out = flat.reshape(shape)
    return out.to(dtype=dtype or torch.get_default_dtype(), device=device)


#: The classes of :func:`labelled_shapes`, in label order.
SHAPES = ("circle", "ring", "square", "triangle", "cross")


def labelled_shapes(
    count: int, size: int, *, seed: int = 0, margin: int = 10, channels: int = 1
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Return ``(images, labels)``: ``count`` labelled images of one shape each, from ``seed``.

    A classification set that needs no download, to train and test a real classifier in a test run:
    one of :data:`SHAPES` at a random centre, size, rotation and brightness, with hard edges (plenty
    of high frequencies for a strided network to alias) on faint noise. Labels are balanced.
    Centres lie at least ``margin`` pixels inside the ``size`` x ``size`` image, so crops smaller by
    up to ``margin`` pixels on each side keep most of the shape (Zhang's crop protocol needs images
    larger than the model's input). Images are ``(count, channels, size, size)`` float32 (the
    channels repeat one map), labels int64.
    """
    import math

    import torch

    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % len(SHAPES)
    labels = labels[torch.randperm(count, generator=generator)]

    def uniform(low: float, high: float) -> "torch.Tensor":
        return low + (high - low) * torch.rand(count, 1, 1, generator=generator)

    cy, cx = uniform(margin, size - margin), uniform(margin, size - margin)
    radius, theta, brightness = uniform(3.5, 7.0), uniform(0.0, 2 * math.pi), uniform(0.6, 1.0)
    axis = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    dy, dx = yy - cy, xx - cx
    u = dx * torch.cos(theta) + dy * torch.sin(theta)  # coordinates in the shape's own frame
    v = -dx * torch.sin(theta) + dy * torch.cos(theta)
    dist = torch.sqrt(dx**2 + dy**2)
    masks = torch.stack(
        [
            dist <= radius,
            (dist <= radius) & (dist >= 0.55 * radius),
            (u.abs() <= 0.8 * radius) & (v.abs() <= 0.8 * radius),
            (v >= -0.5 * radius) & (math.sqrt(3) * u.abs() + v <= radius),
            ((u.abs() <= radius) & (v.abs() <= 0.3 * radius)) | ((v.abs() <= radius) & (u.abs() <= 0.3 * radius)),
        ],
        dim=1,
    )  # (count, classes, size, size)
    mask = masks[torch.arange(count), labels].float()
    noise = 0.1 * torch.randn(count, size, size, generator=generator)
    images = (brightness * mask + noise).unsqueeze(1).expand(count, channels, size, size).contiguous()
    return images, labels
