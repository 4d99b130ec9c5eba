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
    ``config.image_size`` and ``num_channels``). Otherwise channels come from the first ``ConvNd`` /
    ``ConvTransposeNd`` / ``AntialiasedConvNd`` (``in_channels``) or ``Linear`` (``in_features``,
    giving a 2-d shape) in definition order, and the spatial size from ``spatial`` (default
    :data:`LINT_SPATIAL`). Raises :class:`InputShapeError` when no such layer exists.
    """
    from torch import nn

    from pytest_equivariance.layers.blurpool import _AntialiasedConvNd

    if spatial is None:
        declared = declared_input_shape(model, batch)
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
    name = type(model).__name__
    raise InputShapeError(
        f"Cannot infer an input shape for {name} because it has no conv or linear layer to read "
        f"channels from; pass one explicitly, e.g. --input-shape 1,3,224,224 or input_shape=(1, 3, 64, 64)."
    )


def declared_input_shape(model: "nn.Module", batch: int = 1) -> tuple[int, ...] | None:
    """Return the ``(batch, channels, height, width)`` the model says it takes, or None.

    timm models carry ``pretrained_cfg`` (or ``default_cfg``) with ``input_size = (C, H, W)``;
    Hugging Face vision models a ``config`` with ``image_size`` (an int or ``(H, W)``) and
    ``num_channels``. Fixed-size models (``*_384``, dinov2 at 518, maxvit at 512) reject any other size.
    """
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
