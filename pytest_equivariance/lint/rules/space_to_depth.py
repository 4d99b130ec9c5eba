"""EQ006: space-to-depth, as nn.PixelUnshuffle, F.pixel_unshuffle or written with reshapes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterator

from pytest_equivariance.lint.findings import Severity
from pytest_equivariance.lint.rules.rule import (
    SPECTRUM_PRESERVING,
    Hit,
    Rule,
    after_blur,
    blur_call,
    fmt,
    is_pure_blur,
)

if TYPE_CHECKING:
    from pytest_equivariance.lint.sites import ModelGraph, Site


def check_space_to_depth(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ006: pixel unshuffle (space-to-depth), as a layer, a function or written with reshapes."""
    if site.family == "reshape":
        yield from check_reshaped_space_to_depth(site, graph)
        return
    if site.family != "pixel_unshuffle" or after_blur(site, graph):
        return
    r = site.params.get("downscale_factor")
    message = f"{site.describe()} folds {r}x{r} pixel blocks into channels, so shifts that are not multiples of {r} permute channels"
    if site.kind == "module":
        fix = f"nn.Sequential(pytest_equivariance.BlurPool2d(stride=1), nn.PixelUnshuffle({r}))"
    else:
        fix = f"F.pixel_unshuffle({blur_call(2, 'x', 1)}, {r})"
    yield Hit(site, message, fix)


# Hand-written space-to-depth. A reshape that splits each spatial dim n*s into (n, s), followed by
# permutes and reshapes, is followed axis by axis: each axis is a tuple of "atoms" (input dim,
# part), major to minor. It is space-to-depth when the fine factors s of every spatial dim end up
# in the channel axis and the coarse factors n stay spatial: x.view(B, C, H/s, s, W/s, s)
# .permute(0, 3, 5, 1, 2, 4).reshape(B, s*s*C, H/s, W/s) (timm's tresnet), or channels-last
# x.reshape(B, H/2, 2, W/2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3) (Swin's patch merging).
# Window partition splits the same way but moves the coarse factors into the batch axis and keeps
# the fine ones spatial; channel shuffles, attention heads and depth-to-space split a non-spatial
# dim. None of those subsample, and none matches.

_Atom = tuple[int, int]  # (input dim of the splitting reshape, 0 = coarse / 1 = fine part)
_Axes = list[tuple[_Atom, ...]]
#: Ops a space-to-depth chain passes through (others end it), by fx target name.
_LAYOUT_OPS = frozenset({"view", "reshape", "flatten", "permute", "transpose", "swapaxes", "swapdims",
                         "squeeze", "unsqueeze", "contiguous", "clone", "detach", "float", "to", "type_as"})


def _layout_op(site: "Site") -> str | None:
    """Return the name of the layout op ``site`` is (``"permute"``, ``"flatten"``, ...), else ``None``."""
    if site.node is None:
        return None
    if site.kind == "module":  # nn.Flatten, nn.Identity
        return {"flatten": "flatten", "identity": "contiguous"}.get(site.family)
    name = getattr(site.node.target, "__name__", str(site.node.target))
    return name if name in _LAYOUT_OPS and site.family in ("reshape", "flatten", "identity") else None


def _regroup(before: tuple[int, ...], after: tuple[int, ...]) -> list[tuple[list[int], list[int]]] | None:
    """Pair the dims of a view's input and output into minimal groups of equal size, or ``None``.

    ``(2, 6, 8) -> (2, 6, 4, 2)`` gives ``[([0], [0]), ([1], [1]), ([2], [2, 3])]``.
    """
    if 0 in before or 0 in after or math.prod(before) != math.prod(after):
        return None
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(before) and j < len(after):
        ins, outs = [i], [j]
        p, q = before[i], after[j]
        i, j = i + 1, j + 1
        while p != q:
            if p < q:
                p, i = p * before[i], i + 1
                ins.append(i - 1)
            else:
                q, j = q * after[j], j + 1
                outs.append(j - 1)
        groups.append((ins, outs))
    if groups:  # trailing size-1 dims join the last group
        groups[-1][0].extend(range(i, len(before)))
        groups[-1][1].extend(range(j, len(after)))
    return groups


def _split_start(site: "Site") -> tuple[_Axes, dict[int, int], int] | None:
    """Return ``(axes, fine sizes by dim, channel dim)`` if ``site`` splits every spatial dim in two, else ``None``."""
    before, after = site.input_shape, site.output_shape
    if site.node is None or before is None or after is None or len(before) < 4 or len(after) <= len(before):
        return None
    groups = _regroup(before, after)
    if groups is None:
        return None
    axes: _Axes = []
    fine: dict[int, int] = {}
    for ins, outs in groups:
        if len(ins) == 1 and len(outs) == 1:
            axes.append(((ins[0], 0),))
        elif len(ins) == 1 and len(outs) == 2 and after[outs[1]] > 1:
            fine[ins[0]] = after[outs[1]]
            axes.extend([((ins[0], 0),), ((ins[0], 1),)])
        else:
            return None
    r = len(before)
    for spatial, channel in ((set(range(2, r)), 1), (set(range(1, r - 1)), r - 1)):  # NCHW, then NHWC
        if set(fine) == spatial:
            return axes, fine, channel
    return None


def _apply_layout(node: Any, name: str, axes: _Axes, sizes: dict[_Atom, int], before: tuple[int, ...],
                  after: tuple[int, ...]) -> _Axes | None:
    """Return the axes after the layout op ``name`` (fx ``node``), or ``None`` when it cannot be followed."""
    args = list(node.args[1:])
    if name in ("permute", "transpose", "swapaxes", "swapdims"):
        if name == "permute":
            dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
            dims = dims or node.kwargs.get("dims")
        else:
            dims = list(range(len(axes)))
            a, b = (args + [node.kwargs.get("dim0"), node.kwargs.get("dim1")])[:2]
            if not isinstance(a, int) or not isinstance(b, int):
                return None
            dims[a], dims[b] = dims[b], dims[a]
        if not dims or not all(isinstance(d, int) for d in dims) or len(dims) != len(axes):
            return None
        return [axes[d] for d in dims]
    if before == after and name not in ("view", "reshape", "flatten", "squeeze", "unsqueeze"):
        return axes  # contiguous, clone, a dtype change
    groups = _regroup(before, after)
    if groups is None:
        return None
    out: _Axes = []
    for ins, outs in groups:
        parts = _partition(tuple(atom for i in ins for atom in axes[i]), sizes, [after[j] for j in outs])
        if parts is None:
            return None  # a split inside an atom: not a plain space-to-depth
        out.extend(parts)
    return out


def _partition(atoms: tuple[_Atom, ...], sizes: dict[_Atom, int], lengths: list[int]) -> _Axes | None:
    """Deal ``atoms`` (major to minor) out to axes of the given lengths, or ``None`` if they do not fit."""
    parts: _Axes = []
    k = 0
    for n in lengths:
        part, p = [], 1
        while p < n and k < len(atoms):
            part.append(atoms[k])
            p *= sizes[atoms[k]]
            k += 1
        if p != n:
            return None
        parts.append(tuple(part))
    rest = atoms[k:]
    if any(sizes[a] > 1 for a in rest) or not parts:
        return None
    parts[-1] += rest  # size-1 atoms left over
    return parts


def _folds_fine_into_channels(axes: _Axes, sizes: dict[_Atom, int], fine: dict[int, int], channel: int) -> bool:
    """Whether the fine factors sit in the channel axis and the coarse ones on spatial axes of their own."""
    def where(atom: _Atom) -> int | None:
        return next((k for k, axis in enumerate(axes) if atom in axis), None)

    homes = {where((d, 1)) for d in fine}
    if len(homes) != 1:
        return False
    home = homes.pop()
    if home is None or home == 0:  # axis 0 is the batch: moving pixels there is windowing
        return False
    allowed = {(d, 1) for d in fine} | {(channel, 0)}
    if any(atom not in allowed and sizes[atom] > 1 for atom in axes[home]):
        return False
    if sizes[(channel, 0)] > 1 and (channel, 0) not in axes[home]:
        return False  # the fine factors form an axis of their own: window tokens, not channels
    for d in fine:
        k = where((d, 0))
        if sizes[(d, 0)] == 1:
            continue
        if k is None or k == 0 or any(a[1] != 0 or a[0] not in fine for a in axes[k] if sizes[a] > 1):
            return False
    return True


def check_reshaped_space_to_depth(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ006 for space-to-depth written with reshapes: reported at the reshape that splits the pixels."""
    if not site.from_input:
        return
    start = _split_start(site)
    if start is None:
        return
    axes, fine, channel = start
    before = site.input_shape
    sizes: dict[_Atom, int] = {(d, 0): n for d, n in enumerate(before)}  # type: ignore[arg-type]
    sizes.update({(d, 0): before[d] // s for d, s in fine.items()})  # type: ignore[index]
    sizes.update({(d, 1): s for d, s in fine.items()})
    node, found = site.node, False
    for _ in range(16):
        users = list(node.users)
        following = graph.site_of(users[0]) if len(users) == 1 else None
        if following is None or following.node is None or not following.node.args \
                or following.node.args[0] is not node:
            break
        name = _layout_op(following)
        if name is None or following.input_shape is None or following.output_shape is None:
            break
        axes = _apply_layout(following.node, name, axes, sizes, following.input_shape, following.output_shape)
        if axes is None:
            break
        if _folds_fine_into_channels(axes, sizes, fine, channel):
            found = True
            break
        node = following.node
    if not found or _blurred_before(site, graph):
        return
    factors = tuple(fine[d] for d in sorted(fine))
    r, d, n = fmt(factors), len(factors), len(before)  # type: ignore[arg-type]
    block = "x".join(map(str, factors))
    channels_last = channel == n - 1
    like = f" (as nn.PixelUnshuffle({r}))" if d == 2 and len(set(factors)) == 1 else ""
    message = (f"{site.op} starts a hand-written {'channels-last ' if channels_last else ''}space-to-depth{like}: "
               f"it folds {block} pixel blocks into channels, so shifts that are not multiples of {r} "
               f"permute channels")
    blur = f"blur_pool{d}d"
    if channels_last:
        to_first = ", ".join(map(str, (0, n - 1, *range(1, n - 1))))
        to_last = ", ".join(map(str, (0, *range(2, n), 1)))
        fix = f"x = {blur}(x.permute({to_first}), stride=1).permute({to_last}) before it"
    else:
        fix = f"x = {blur}(x, stride=1) before it"
    yield Hit(site, message, f"{fix}  # from pytest_equivariance.layers.filters import {blur}")


def _blurred_before(site: "Site", graph: "ModelGraph") -> bool:
    """Like :func:`after_blur`, also through permutes (a channels-last tensor blurred as NCHW)."""
    def through(s: "Site") -> bool:
        return s.family in SPECTRUM_PRESERVING or _layout_op(s) in ("permute", "transpose", "contiguous")

    return is_pure_blur(graph.walk_back(site, through))


EQ006 = Rule(
    code="EQ006",
    name="space-to-depth",
    severity=Severity.WARNING,
    enabled_by_default=True,
    summary=("Space-to-depth (nn.PixelUnshuffle, F.pixel_unshuffle, or written with reshapes) turns a "
             "shift into a channel permutation."),
    why=(
        "Pixel unshuffle moves each s x s block of pixels into s*s channels. A shift by a multiple of "
        "s shifts the output; any other shift permutes and mixes channels, so layers after it see a "
        "different signal. It loses no information, but downstream features are only equivariant to "
        "shifts on the coarse lattice. The same operation written by hand is flagged too: a reshape "
        "that splits each spatial dim into (H/s, s), followed by permutes and reshapes that move the "
        "s factors into the channel axis (timm's tresnet SpaceToDepth, channels-last Swin patch "
        "merging); it is reported at the splitting reshape. Window partition, which moves the H/s "
        "factors into the batch axis and keeps the s x s window spatial, does not subsample and is "
        "not flagged."
    ),
    example=(
        "self.down = nn.PixelUnshuffle(downscale_factor=2)\n"
        "# by hand, NCHW:\n"
        "x = x.view(B, C, H // 2, 2, W // 2, 2).permute(0, 3, 5, 1, 2, 4).reshape(B, 4 * C, H // 2, W // 2)\n"
        "# by hand, channels-last (patch merging):\n"
        "x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)"
    ),
    fix=(
        "Blur before it (a stride-1 blur directly before the unshuffle, or before the reshape that "
        "starts a hand-written one, is recognised), or use a polyphase-aware design that picks the "
        "phase from the input. A channels-last tensor is blurred as NCHW: "
        "`blur_pool2d(x.permute(0, 3, 1, 2), stride=1).permute(0, 2, 3, 1)`.\n"
        "\n"
        "self.down = nn.Sequential(pytest_equivariance.BlurPool2d(stride=1), nn.PixelUnshuffle(2))"
    ),
    check=check_space_to_depth,
)
