"""EQ008, EQ009: heads and embeddings that give every spatial position weights of its own."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterator

from pytest_equivariance.lint.findings import Severity
from pytest_equivariance.lint.rules.rule import (
    SPATIAL_PRODUCERS,
    Hit,
    Rule,
)

if TYPE_CHECKING:
    from pytest_equivariance.lint.sites import ModelGraph, Site


_HEAD_TRANSPARENT = frozenset({"identity", "dropout", "activation", "norm"})


def check_flatten_into_dense(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ008: a dense layer reading a flattened C x H x W map (spatial size > 1)."""
    if site.family != "linear":
        return
    source = graph.walk_back(site, lambda s: s.family in _HEAD_TRANSPARENT)
    if source is None or source.family not in ("flatten", "reshape"):
        return
    before, after = source.input_shape, source.output_shape
    if before is None or after is None or len(before) < 3 or not after:
        return
    origin = graph.walk_back(source, lambda s: s.family in _HEAD_TRANSPARENT or s.family == "identity")
    if origin is None or origin.family not in SPATIAL_PRODUCERS:
        return  # a reshape of tokens or attention heads, not of a convolutional feature map
    spatial = before[2:]
    if before[1] <= 1 or math.prod(spatial) <= 1 or after[-1] != math.prod(before[1:]):
        return
    d = len(spatial)
    grid = "x".join(str(v) for v in before[1:])
    message = (f"{site.describe()} reads a flattened {grid} feature map, so every spatial position has "
               f"its own weights")
    out = site.params.get("out_features") or "out_features"
    fix = (f"pool globally first: x = F.adaptive_avg_pool{d}d(x, 1).flatten(1), "
           f"then nn.Linear({before[1]}, {out})")
    yield Hit(site, message, fix)


_EMBEDDING_PATH = frozenset({"getitem", "reshape", "identity", "interpolate", "cat"})


def _position_embedding(graph: "ModelGraph", value: Any) -> tuple[str, tuple[int, ...]] | None:
    """If ``value`` (an fx node) is a learned tensor that varies over positions, name it."""
    import torch
    from torch import nn

    for _ in range(6):
        attr = graph.attribute(value)
        if attr is not None:
            name, tensor = attr
            trainable = isinstance(tensor, nn.Parameter) and tensor.requires_grad
            varying = sum(1 for s in tensor.shape if s > 1)
            return (name, tuple(tensor.shape)) if trainable and varying >= 2 else None
        source = graph.site_of(value)
        if source is None or source.node is None or not source.node.args:
            return None
        if source.kind == "module" and isinstance(source.module, nn.Embedding):
            # Embedding rows looked up by position: torch.arange(...), or a constant index tensor
            # (fx folds torch.arange(256) into one).
            arg = source.node.args[0]
            origin = getattr(arg, "target", None)
            constant = graph.attribute(arg)
            if origin is torch.arange or (constant is not None and not constant[1].is_floating_point()):
                weight = source.module._parameters.get("weight")
                return (source.qualname, tuple(weight.shape) if weight is not None else ())
            return None
        if source.family not in _EMBEDDING_PATH:
            return None
        if source.family == "getitem" and _indexes_with_tensor(source.node):
            return None  # a gather from a table (relative position bias), not an absolute embedding
        value = source.node.args[0]
    return None


def _indexes_with_tensor(node: Any) -> bool:
    index = node.args[1] if len(node.args) > 1 else None
    items = index if isinstance(index, tuple) else (index,)
    return any(hasattr(item, "meta") for item in items)


def check_position_embedding(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ009: ``features + learned_position_embedding``."""
    if site.family != "add" or site.node is None:
        return
    operands = list(site.node.args[:2])
    for i, operand in enumerate(operands):
        found = _position_embedding(graph, operand)
        if found is None:
            continue
        other = operands[1 - i] if len(operands) == 2 else None
        if other is not None and _position_embedding(graph, other) is not None:
            return  # two parameters added to each other, not features
        name, shape = found
        message = (f"{site.op} adds the learned absolute position embedding {name} "
                   f"{'x'.join(map(str, shape))} to the features")
        yield Hit(site, message, "a relative position bias, or a conditional position encoding "
                                 "(x = x + depthwise_conv(x))")
        return


EQ008 = Rule(
    code="EQ008",
    name="flatten-spatial-into-dense",
    severity=Severity.WARNING,
    enabled_by_default=True,
    summary="Spatial dimensions are flattened into a dense layer instead of pooled globally.",
    why=(
        "Flattening a C x H x W feature map into a Linear layer gives every spatial position its own "
        "weights, so the head sees where a feature is, not only whether it is there: the prediction "
        "changes when the input shifts, however equivariant the backbone is. Global pooling first "
        "makes the head shift-invariant."
    ),
    example=(
        "x = torch.flatten(self.features(x), 1)  # (N, 512 * 7 * 7)\n"
        "return self.classifier(x)               # nn.Linear(512 * 7 * 7, 1000)"
    ),
    fix=(
        "Pool globally before the head and size the dense layer to the channels.\n"
        "\n"
        "x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)  # (N, 512)\n"
        "return self.classifier(x)                                  # nn.Linear(512, 1000)"
    ),
    check=check_flatten_into_dense,
)


EQ009 = Rule(
    code="EQ009",
    name="absolute-position-embedding",
    severity=Severity.WARNING,
    enabled_by_default=True,
    summary="A learned absolute positional embedding is added to spatial features.",
    why=(
        "Adding a learned tensor that varies over positions (a ViT `pos_embedding`) tags every token "
        "or pixel with where it is. The same content at another position then produces different "
        "features, so the network is not shift-equivariant by construction."
    ),
    example=(
        "self.pos_embedding = nn.Parameter(torch.zeros(1, 197, 768))\n"
        "...\n"
        "x = x + self.pos_embedding"
    ),
    fix=(
        "Use a relative position encoding (relative position bias, as in Swin) or a conditional one "
        "computed from the features by a depthwise convolution (CPVT).\n"
        "\n"
        "self.pos = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)  # conditional position encoding\n"
        "x = x + self.pos(x)"
    ),
    check=check_position_embedding,
)
