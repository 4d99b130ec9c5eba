"""EQ010, EQ011: padding that breaks exact equivariance at borders, and half-pixel grid offsets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from pytest_equivariance.lint.findings import Severity
from pytest_equivariance.lint.rules.rule import (
    Hit,
    Rule,
    conv_ctor,
    fmt,
    ints,
    is_global_pool,
)

if TYPE_CHECKING:
    from pytest_equivariance.lint.sites import ModelGraph, Site


def check_zero_padding(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ010: zero or constant padding (convolutions, pools, explicit pads)."""
    params = site.params
    if site.family == "conv":  # a transposed conv's padding crops its output: nothing is padded
        padding = params.get("padding")
        kernel = ints(params.get("kernel_size"))
        padded = (padding == "same" and kernel is not None and any(k > 1 for k in kernel)) or (
            ints(padding) is not None and any(ints(padding)))
        if not padded or params.get("padding_mode", "zeros") != "zeros":
            return
        fix = (conv_ctor(site, site.op[3:], padding_mode="circular")
               if site.kind == "module" and site.op.startswith("nn.")
               else 'F.pad(x, ..., mode="circular") before the op, and padding=0')
        yield Hit(site, f"{site.describe()} pads with zeros", fix)
    elif site.family in ("max_pool", "avg_pool", "lp_pool") and not is_global_pool(site):
        padding = ints(params.get("padding"))
        if padding and any(padding):
            value = "-inf" if site.family == "max_pool" else "zeros"
            yield Hit(site, f"{site.describe()} pads with {value}",
                      'F.pad(x, ..., mode="circular") before the pool, and padding=0')
    elif site.family == "pad":
        pad = ints(params.get("pad"))
        if pad and any(pad) and (params.get("mode") or "constant") == "constant":
            yield Hit(site, f"{site.describe()} pads with a constant", 'mode="circular"')


def check_half_pixel(site: "Site", graph: "ModelGraph") -> Iterator[Hit]:
    """EQ011: even kernels (convs and pools) and asymmetric explicit padding."""
    params = site.params
    if site.family in ("conv", "max_pool", "avg_pool", "lp_pool") and not is_global_pool(site):
        kernel = ints(params.get("kernel_size"))
        dilation = ints(params.get("dilation")) or (1,) * len(kernel or ())
        if kernel is None:
            return
        extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
        if any(e % 2 == 0 for e in extent):
            yield Hit(site, f"{site.describe()} has an even-sized kernel ({fmt(extent)}), so its output "
                            f"grid is offset by half a pixel",
                      "an odd kernel size with symmetric padding, e.g. kernel_size=3, padding=1")
    elif site.family == "pad":
        pad = ints(params.get("pad"))
        if pad and len(pad) % 2 == 0 and any(pad[i] != pad[i + 1] for i in range(0, len(pad), 2)):
            yield Hit(site, f"{site.describe()} pads the sides of a dimension unequally, so the grid "
                            f"shifts by half a pixel",
                      "symmetric padding (the same amount on both sides of each dimension)")


EQ010 = Rule(
    code="EQ010",
    name="zero-padding",
    severity=Severity.INFO,
    enabled_by_default=False,
    summary="Zero or constant padding: exact equivariance fails near the borders.",
    why=(
        "Zero padding surrounds the image with a frame that does not move when the content shifts, so "
        "outputs near the border change under a circular shift, and the network can even learn "
        "absolute position from the border (Islam et al. 2020). Interior outputs are unaffected; this "
        "matters for exact checks, which is why the rule is off by default."
    ),
    example="self.conv = nn.Conv2d(64, 64, kernel_size=3, padding=1)",
    fix=(
        "Pad circularly where exact shift equivariance is tested.\n"
        "\n"
        "self.conv = nn.Conv2d(64, 64, kernel_size=3, padding=1, padding_mode=\"circular\")"
    ),
    check=check_zero_padding,
)


EQ011 = Rule(
    code="EQ011",
    name="half-pixel-offset",
    severity=Severity.INFO,
    enabled_by_default=True,
    summary="Even-sized kernel or asymmetric padding: a half-pixel offset breaks flip/rotation alignment.",
    why=(
        "A kernel with an even size, or padding that differs between the two sides of a dimension, "
        "has no centre pixel: its output grid sits half a pixel away from the input grid. Flipping or "
        "rotating the input then does not flip or rotate the output about the same point, so flip and "
        "rot90 equivariance fail even for symmetric kernels."
    ),
    example=(
        "self.conv = nn.Conv2d(64, 64, kernel_size=2)\n"
        "x = F.pad(x, (0, 1, 0, 1))"
    ),
    fix=(
        "Use odd kernel sizes with symmetric padding.\n"
        "\n"
        "self.conv = nn.Conv2d(64, 64, kernel_size=3, padding=1)"
    ),
    check=check_half_pixel,
)
