"""What the transforms act on: each batch cast to the check's device and dtype, as its mode frames it.

In crop mode the inputs are a canvas ``max_shift`` pixels larger on each side than what the model
sees; in interp mode they are masked (or, for group checks, tapered) to the disk inscribed in the
image. :class:`Canvas` works this out once per check, from the first batch's shape, and then frames
every batch of a stream the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_equivariance import guards
from pytest_equivariance.check import transforms
from pytest_equivariance.check.spec import (
    DEFAULT_MAX_SHIFT,
    INTERP_EXPONENT,
    CheckSpec,
    dtype_name,
)
from pytest_equivariance.errors import InputShapeError

if TYPE_CHECKING:
    import torch
    from torch import Tensor


class Canvas:
    """How a check frames its inputs: the source's shape, the shape the model sees, and the notes saying so."""

    def __init__(
        self,
        spec: CheckSpec,
        shape: tuple[int, ...],
        dims: tuple[int, ...],
        dtype: "torch.dtype",
        device: "torch.device",
        *,
        given: bool,
        notes: list[str],
    ) -> None:
        self.spec, self.dims, self.dtype, self.device, self.given = spec, dims, dtype, device, given
        self.notes = notes
        if spec.protocol is not None:
            source_shape, model_shape = shape, _protocol_input(spec, shape, dims)
            if spec.protocol.layout == "crop":
                notes.append(
                    f"the model saw {'x'.join(map(str, model_shape[2:]))} crops of the inputs' "
                    f"{'x'.join(map(str, shape[2:]))} images"
                )
            elif spec.protocol.layout == "embed":
                pasted = spec.protocol.pasted_size(shape, model_shape, dims)
                own = tuple(shape[d] for d in dims)
                resized = f", resized to {'x'.join(map(str, pasted))}" if pasted != own else ""
                notes.append(
                    f"the model saw the inputs' {'x'.join(map(str, shape[2:]))} images{resized} pasted into "
                    f"{'x'.join(map(str, model_shape[2:]))} zero canvases"
                )
        elif spec.mode == "crop":
            margin = spec.max_shift or DEFAULT_MAX_SHIFT
            spec.max_shift = margin
            if given:
                small = [d for d in dims if shape[d] - 2 * margin < 1]
                if small:
                    raise InputShapeError(
                        f"In crop mode the inputs are the canvas, and {tuple(shape)} leaves no crop after "
                        f"{margin} pixels on each side; pass larger inputs or a smaller max_shift."
                    )
                source_shape = shape
            else:
                source_shape = tuple(s + 2 * margin if i - len(shape) in dims else s for i, s in enumerate(shape))
            model_shape = tuple(s - 2 * margin if i - len(shape) in dims else s for i, s in enumerate(source_shape))
            notes.append(
                f"crop mode: the model saw {'x'.join(map(str, model_shape[2:]))} crops of a "
                f"{'x'.join(map(str, source_shape[2:]))} canvas"
            )
        else:
            source_shape = model_shape = shape
        self.source_shape: tuple[int, ...] = tuple(source_shape)
        self.model_shape: tuple[int, ...] = tuple(model_shape)
        self._cast_noted = False
        self._window: "Tensor | None" = None
        if spec.mode == "interp" and spec.group is not None:
            notes.append(
                "group elements off the pixel grid are resampled band-limitedly; inputs tapered to the "
                f"inscribed {'ball' if len(dims) == 3 else 'disk'}, outputs compared inside it"
                + ("" if given else f", on 1/f^{INTERP_EXPONENT:g} images")
            )
            if spec.max_rel_l2 is not None:
                notes.append(
                    f"judged by the relative L2 error inside the {'ball' if len(dims) == 3 else 'disk'} "
                    f"(<= {spec.max_rel_l2:g}), as resampled "
                    f"filters are equivariant only up to their discretisation; pass atol=/rtol= to judge "
                    f"every element"
                )
        elif spec.mode == "interp":
            notes.append(
                "interp mode: inputs masked to the inscribed disk; outputs compared inside it"
                + ("" if given else f", on 1/f^{INTERP_EXPONENT:g} images that resample smoothly")
            )

    def generated(self, seed: int) -> "Tensor":
        """Return natural-like images of the source's shape from ``seed``, framed."""
        from pytest_equivariance.inputs import natural_images

        spec = self.spec
        if spec.mode == "crop":
            what = (f"mode='crop' with max_shift={spec.max_shift} (a {'x'.join(map(str, self.source_shape[2:]))} "
                    f"canvas for {'x'.join(map(str, self.model_shape[2:]))} crops)")
            remedy = "pass a smaller max_shift, or a smaller input_shape"
        else:
            what, remedy = f"input_shape={self.model_shape}", "pass a smaller input_shape"
        guards.require_fits(self.source_shape, self.dtype, self.device, what, remedy)
        # Resampling blurs what it rotates; smoother (1/f²) images keep that error well below what a
        # model that is not rotation-equivariant shows.
        exponent = INTERP_EXPONENT if spec.mode == "interp" else 1.0
        x = natural_images(self.source_shape, seed=seed, dtype=self.dtype, device=self.device, exponent=exponent)
        return self._framed(x)

    def frame(self, inputs: "Tensor") -> "Tensor":
        """Return a batch of given inputs on the check's device, in its dtype, framed."""
        x = inputs.detach()
        if x.is_floating_point() and x.dtype != self.dtype and not self._cast_noted:
            self.notes.append(f"inputs cast from {dtype_name(x.dtype)} to the model's {dtype_name(self.dtype)}")
            self._cast_noted = True
        x = x.to(device=self.device, dtype=self.dtype if x.is_floating_point() else x.dtype)
        return self._framed(x)

    def _framed(self, x: "Tensor") -> "Tensor":
        if self.spec.mode != "interp":
            return x
        if self._window is None:
            shape: Any = x.shape
            if self.spec.group is not None:
                self._window = transforms.soft_disk(shape, self.dims, dtype=x.dtype, device=x.device)
            else:
                self._window = transforms.disk_mask(shape, self.dims, dtype=x.dtype, device=x.device)
        return x * self._window


def _protocol_input(spec: CheckSpec, shape: tuple[int, ...], dims: tuple[int, ...]) -> tuple[int, ...]:
    """Return the input shape the model sees under a protocol: the crop (or canvas) ``input_shape``
    gives, or the model declares, for protocols that crop (or embed), the inputs' own shape for the others."""
    from pytest_equivariance.inputs import declared_input_shape

    protocol = spec.protocol
    given = spec.input_shape
    if given is not None:
        given = guards.require_shape(given, "input_shape", f"check_{protocol.family}_invariant")
    if protocol.layout == "own":
        if given is not None and tuple(given[1:]) != tuple(shape[1:]):
            raise InputShapeError(
                f"protocol={protocol.name!r} shifts the inputs' own {tuple(shape[1:])} images, but "
                f"input_shape={given} was given; drop input_shape=."
            )
        return tuple(shape)
    crops = protocol.layout == "crop"
    model = given if given is not None else declared_input_shape(spec.model, batch=shape[0])
    if model is None:
        example = "(1, 3, 224, 224) for 256x256 images" if crops else "(1, 3, 224, 224) for 100x100 images"
        raise InputShapeError(
            f"protocol={protocol.name!r} shows the model {'crops of' if crops else 'a canvas holding'} the inputs' "
            f"{tuple(shape[2:])} images; pass input_shape= with the model's input size, e.g. input_shape={example}."
        )
    if len(model) != len(shape) or model[1] != shape[1]:
        raise InputShapeError(
            f"protocol={protocol.name!r} shows the model {'crops of' if crops else 'a canvas holding'} the inputs' "
            f"{tuple(shape[1:])} images, but input_shape={tuple(model)} has other channels or dims; pass the "
            f"model's input size with the images' channels."
        )
    if crops and any(model[d] > shape[d] for d in dims):
        raise InputShapeError(
            f"protocol={protocol.name!r} crops the inputs' {tuple(shape[1:])} images to input_shape={tuple(model)}, "
            f"which does not fit inside them; pass the model's input size, smaller than the images."
        )
    seen = (shape[0], shape[1], *model[2:])
    protocol.require_fits(shape, seen, dims)  # before any image is cropped or pasted
    return seen

