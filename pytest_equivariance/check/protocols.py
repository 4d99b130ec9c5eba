"""The field's evaluation protocols of shift robustness, as data the shared streaming loop runs.

"Consistency 0.91" means nothing without saying how it was measured: each paper pairs shifted images
its own way. A :class:`Protocol` says which inputs its reference code compares, batch by batch and
pass by pass — as a :class:`~.stream.Plan` of pairs — and which figure it reports; the streaming
loop every check shares (:mod:`.stream`) runs it on the user's loader. The pairings follow each
paper's public evaluation code (the sizes, ranges, draws and what a batch shares), drawn from
``numpy.random.RandomState(seed)`` in the reference's order, so a loader and a seed give the
reference's offsets:

``zhang2019``
    Zhang, "Making Convolutional Networks Shift-Invariant Again" (ICML 2019; ``validate_shift`` in
    adobe/antialiased-cnns). The loader's images are the canvas (256 there) and the model sees crops
    of ``input_shape`` (224): per batch, two offsets ``randint(canvas - crop)`` per axis, shared by
    the batch; the two crops' top-1 classes are compared; 5 passes over the loader. Figure: top-1
    consistency.
``azulay2019``
    Azulay & Weiss, "Why do deep convolutional networks generalize so poorly to small image
    transformations?" (JMLR 2019; ``JaggedNess`` in AzulEye/CNN-Failures). Each image (a canvas, 234
    there) is cropped to ``input_shape`` at ``(c, c)`` and ``(c+1, c+1)`` for the 8 diagonal positions
    ``c`` about its centre: a one-pixel diagonal shift. Figures: the probability of a top-1 change
    (``1 - consistency``) and the mean absolute change of the first crop's top-class probability
    (``prob_change``). The reference stops after 1001 images: pass ``limit=1001``. That is the crop
    setting; the paper's embedding settings paste a smaller image into a black canvas of the model's
    input size. ``azulay2019(setting="black")`` moves it by one pixel diagonally at the same 8
    positions (the reference's other branch, for images smaller than the input).
    ``check_scale_invariant(..., protocol="azulay2019")`` grows it by one pixel instead, its corner
    fixed (the paper's scaling setting; the reference code does not include it, and its pairing
    follows the animation the repository ships for it, ``GIFS/ScaleBlack.gif``: the embedded image
    one pixel larger, its top-left corner where it was), by anti-aliased bilinear resizing. The
    canvas is zero in the model's input space: the reference pastes normalised images into zeros, so
    "black" is the mean colour.
``chaman2021``
    Chaman & Dokmanić, "Truly shift-invariant convolutional neural networks" (CVPR 2021; ``validate``
    in achaman2/truly_shift_invariant_cnns). Per batch, two circular shifts ``randint(-32, 32)`` per
    axis, shared by the batch, drawn from seed 0 in the reference; the two shifted images' top-1
    classes are compared. Figures: consistency, and accuracy on the unshifted images.
``michaeli2023``
    Michaeli, Michaeli & Soudry, "Alias-Free Convnets: Fractional Shift Invariance via Polynomial
    Activations" (CVPR 2023; ``evaluate_full_adversarial_shift_metrics`` in
    hmichaeli/alias_free_convnets, with half-pixel shifts). An image counts only if it is classified
    right unshifted and under every circular shift ``(dy, dx)`` with ``1 <= dy, dx < 32`` and every
    half-pixel shift ``(0.5 - dy, 0.5 - dx)`` (ideal, band-limited). Figure: worst-case ("adversarial")
    accuracy.

Custom settings: :func:`zhang2019`, :func:`azulay2019`, :func:`chaman2021` and :func:`michaeli2023`
take the reference's constants as keywords (passes, ranges) and return the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult
    from pytest_equivariance.check.spec import CheckSpec
    from pytest_equivariance.check.stream import Plan
    from pytest_equivariance.check.transforms import Transform


#: How a protocol's images become the model's input (``Protocol.layout``).
LAYOUTS = ("crop", "embed", "own")


@dataclass(frozen=True)
class Frame:
    """What a protocol plans from: the loader's image size, the model's, the spatial dims, and the draws."""

    canvas: tuple[int, ...]  # spatial size of the loader's images
    crop: tuple[int, ...]  # spatial size the model sees (smaller when it crops, larger when it embeds)
    dims: tuple[int, ...]
    rng: Any  # numpy.random.RandomState(seed): the references draw from numpy's global legacy generator


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: how it pairs inputs (``planner``), and what it reports.

    ``layout`` says how the loader's images become the model's input: ``"crop"`` (they are a canvas
    the model sees crops of; ``input_shape`` is the crop), ``"embed"`` (they are pasted into a zero
    canvas of ``input_shape``), or ``"own"`` (the model sees them themselves, shifted circularly).
    ``family`` names the check that runs it: ``"shift"`` (``check_shift_invariant``) or ``"scale"``
    (``check_scale_invariant``).
    """

    name: str
    title: str  # one line: what is compared
    layout: str
    planner: Callable[[Frame], "Plan"] = field(repr=False, compare=False)
    options: dict[str, Any] = field(default_factory=dict)
    family: str = "shift"
    # Refuses, in one sentence, images the protocol cannot pair (checked before any image is moved).
    validate: Callable[[Frame], None] | None = field(default=None, repr=False, compare=False)
    # Embedding layouts: the size of the image pasted into the model's input (None: the loader's own).
    pasted: Callable[[Frame], tuple[int, ...]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise EquivarianceUsageError(
                f"Protocol {self.name!r} has layout={shown(self.layout)}; pass one of {', '.join(map(repr, LAYOUTS))}."
            )
        if self.family not in ("shift", "scale"):
            raise EquivarianceUsageError(
                f"Protocol {self.name!r} has family={shown(self.family)}; pass 'shift' (check_shift_invariant runs "
                f"it) or 'scale' (check_scale_invariant)."
            )

    def require_fits(self, canvas: tuple[int, ...], crop: tuple[int, ...], dims: tuple[int, ...]) -> None:
        """Refuse, in one sentence, a loader's ``canvas``-shaped images for a model of ``crop``-shaped
        inputs that this protocol cannot pair."""
        if self.validate is not None:
            self.validate(_frame(canvas, crop, dims))

    def pasted_size(self, canvas: tuple[int, ...], crop: tuple[int, ...], dims: tuple[int, ...]) -> tuple[int, ...]:
        """The spatial size of the image an embedding layout pastes into the model's input."""
        frame = _frame(canvas, crop, dims)
        return self.pasted(frame) if self.pasted is not None else frame.canvas

    def identity(self, canvas: tuple[int, ...], crop: tuple[int, ...], dims: tuple[int, ...]) -> "Transform | None":
        """Return the transform that shows the model an image unmoved: the central crop, or the image
        pasted at the centre; None when the model sees the images themselves."""
        from pytest_equivariance.check.transforms import crop_at, embed_at

        frame = _frame(canvas, crop, dims)
        if self.layout == "crop":
            return crop_at(tuple((c - k) // 2 for c, k in zip(frame.canvas, frame.crop)), frame.crop, dims)
        if self.layout == "embed":
            image = self.pasted_size(canvas, crop, dims)
            return embed_at(tuple((k - n) // 2 for k, n in zip(frame.crop, image)), image, frame.crop, dims)
        return None

    @property
    def note(self) -> str:
        """The note a result carries: which protocol planned its trials."""
        settings = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"protocol {self.name}: {self.title}" + (f" ({settings})" if settings else "")

    def plan(self, canvas: tuple[int, ...], crop: tuple[int, ...], dims: tuple[int, ...], seed: int) -> "Plan":
        """Return the plan of pairs for a loader of ``canvas``-sized images and a model of ``crop``-sized inputs.

        Under ``torchrun`` each rank draws from ``seed + rank`` (as Michaeli et al.'s code seeds its
        ranks): draws per batch follow the batches, which a ``DistributedSampler`` deals out anew.
        """
        import numpy as np

        from pytest_equivariance.check.distributed import world

        frame = _frame(canvas, crop, dims, np.random.RandomState(seed + world()[0]))
        if self.validate is not None:
            self.validate(frame)
        return self.planner(frame)


def _frame(canvas: tuple[int, ...], crop: tuple[int, ...], dims: tuple[int, ...], rng: Any = None) -> Frame:
    """The frame of full ``(batch, channels, *spatial)`` shapes: their sizes along ``dims``."""
    return Frame(tuple(canvas[d] for d in dims), tuple(crop[d] for d in dims), dims, rng)


# --------------------------------------------------------------------------------------------
# The four protocols: each a planner of a few lines, readable against its reference loop.


def zhang2019(*, passes: int = 5) -> Protocol:
    """Zhang 2019: two random crops per batch (offsets shared by the batch), ``passes`` passes."""
    _positive("passes", passes)

    def planner(frame: Frame) -> "Plan":
        from pytest_equivariance.check.stream import Pair, Plan
        from pytest_equivariance.check.transforms import crop_at

        ranges = tuple(c - k for c, k in zip(frame.canvas, frame.crop))
        if min(ranges) < 1:
            raise _too_small("zhang2019", frame, "at least one pixel larger than the crop along each dim")

        def pairs(p: int, batch: int) -> list[Pair]:
            off0 = tuple(frame.rng.randint(r) for r in ranges)
            off1 = tuple(frame.rng.randint(r) for r in ranges)
            return [Pair(p, crop_at(off1, frame.crop, frame.dims), crop_at(off0, frame.crop, frame.dims))]

        slots = [(f"pass {p + 1}: two random crops per batch", {"pass": p + 1}) for p in range(passes)]
        return Plan(slots, pairs, passes=passes, reference=False)

    return Protocol("zhang2019", "two random crops of each canvas, offsets shared by a batch",
                    layout="crop", planner=planner, options={"passes": passes} if passes != 5 else {})


#: Azulay & Weiss's settings: the crop, and the image embedded in a black canvas, moved or grown.
AZULAY_SETTINGS = ("crop", "black", "scale")


def azulay2019(*, positions: int = 8, setting: str = "crop", size: int | None = None) -> Protocol:
    """Azulay & Weiss 2019: one-pixel changes at ``positions`` diagonal positions ``c`` about the centre.

    ``setting="crop"`` (shifts): crops at ``(c, c)`` and ``(c+1, c+1)`` of each image.
    ``setting="black"`` (shifts): the image pasted into a zero canvas of the model's input size at
    ``(c, c)`` and at ``(c+1, c+1)``. ``setting="scale"`` (rescaling): the image pasted at ``(c, c)``,
    and the image one pixel larger pasted there. ``size`` resizes the loader's images to a square of
    ``size`` pixels before they are pasted (embedded settings only).
    """
    _positive("positions", positions)
    if setting not in AZULAY_SETTINGS:
        raise EquivarianceUsageError(
            f"setting={shown(setting)} is not one of Azulay & Weiss's settings; pass 'crop', 'black' or 'scale'."
        )
    if size is not None:
        _positive("size", size)
        if setting == "crop":
            raise EquivarianceUsageError(
                "size= resizes the image a canvas embeds, and setting='crop' embeds none; pass setting='black' "
                "or 'scale', or drop size=."
            )
    half = positions // 2

    def starts(frame: Frame) -> list[tuple[int, ...]]:
        if setting == "crop":
            centre = tuple((c - k - 1) // 2 for c, k in zip(frame.canvas, frame.crop))
        else:
            centre = tuple((k - n - 1) // 2 for k, n in zip(frame.crop, image(frame)))
        return [tuple(m + i for m in centre) for i in range(-half, positions - half)]

    def image(frame: Frame) -> tuple[int, ...]:  # embedded: what is pasted into the model's input
        return tuple(size for _ in frame.dims) if size is not None else frame.canvas

    def validate(frame: Frame) -> None:
        first, *_, last = starts(frame)
        if setting == "crop":
            if min(first) < 0 or any(s + 1 + k > c for s, k, c in zip(last, frame.crop, frame.canvas)):
                raise _too_small("azulay2019", frame, f"at least {positions + 1} pixels larger than the crop along each dim")
            return
        if (setting == "scale" or size is not None) and len(frame.dims) != 2:
            remedy = "use setting='black' without size=" if setting == "scale" else "drop size="
            raise EquivarianceUsageError(
                f"protocol='azulay2019' with setting={setting!r} resizes images on their plane (2 spatial dims), not "
                f"on {len(frame.dims)}; check images with dims=(-2, -1), or {remedy}."
            )
        if min(first) < 0 or any(s + 1 + n > k for s, n, k in zip(last, image(frame), frame.crop)):
            raise EquivarianceUsageError(
                f"protocol='azulay2019' with setting={setting!r} pastes {_size(image(frame))} images into the model's "
                f"{_size(frame.crop)} input at {positions} diagonal positions, which needs the input at least "
                f"{positions + 1} pixels larger along each dim; pass smaller images{' (size=)' if size else ''} or "
                f"fewer positions."
            )

    def planner(frame: Frame) -> "Plan":
        from pytest_equivariance.check.stream import Pair, Plan
        from pytest_equivariance.check.transforms import crop_at, embed_at

        at = starts(frame)  # Protocol.plan has validated the frame
        if setting == "crop":
            pairs = [Pair(i, crop_at(_plus(start, 1), frame.crop, frame.dims), crop_at(start, frame.crop, frame.dims))
                     for i, start in enumerate(at)]
            slots = [(f"crop at {_at(start)} vs {_at(_plus(start, 1))}", {"offset": list(start)}) for start in at]
            return Plan(slots, lambda p, b: pairs)
        # Embedded: the image is the content, the model's input the canvas it is pasted into.
        pasted = image(frame)
        moved, grown = (1, 0) if setting == "black" else (0, 1)
        pairs = [Pair(i, embed_at(_plus(start, moved), _plus(pasted, grown), frame.crop, frame.dims),
                      embed_at(start, pasted, frame.crop, frame.dims))
                 for i, start in enumerate(at)]
        if setting == "black":
            slots = [(f"image at {_at(start)} vs {_at(_plus(start, 1))}", {"offset": list(start)}) for start in at]
        else:
            slots = [(f"{_size(pasted)} vs {_size(_plus(pasted, 1))} image at {_at(start)}",
                      {"offset": list(start), "size": list(pasted)}) for start in at]
        return Plan(slots, lambda p, b: pairs)

    options: dict[str, Any] = {"positions": positions} if positions != 8 else {}
    if setting != "crop":
        options["setting"] = setting
    if size is not None:
        options["size"] = size
    title = {
        "crop": f"one-pixel diagonal shifts of the crop at {positions} positions",
        "black": f"one-pixel diagonal shifts of the image in a black canvas at {positions} positions",
        "scale": f"the image in a black canvas grown by one pixel, at {positions} positions",
    }[setting]
    layout = "crop" if setting == "crop" else "embed"
    return Protocol("azulay2019", title, layout=layout, planner=planner, options=options,
                    family="scale" if setting == "scale" else "shift", validate=validate,
                    pasted=image if size is not None else None)


def chaman2021(*, max_shift: int = 32) -> Protocol:
    """Chaman & Dokmanić 2021: two circular shifts per batch, each ``randint(-max_shift, max_shift)`` per axis."""
    _positive("max_shift", max_shift)

    def planner(frame: Frame) -> "Plan":
        from pytest_equivariance.check.stream import Pair, Plan
        from pytest_equivariance.check.transforms import shift

        def pairs(p: int, batch: int) -> list[Pair]:
            shift0 = tuple(frame.rng.randint(-max_shift, max_shift) for _ in frame.dims)
            shift1 = tuple(frame.rng.randint(-max_shift, max_shift) for _ in frame.dims)
            return [Pair(0, shift(shift1, frame.dims), shift(shift0, frame.dims))]

        return Plan([("two random circular shifts per batch", {})], pairs)

    return Protocol("chaman2021", "two random circular shifts of each image, shared by a batch",
                    layout="own", planner=planner, options={"max_shift": max_shift} if max_shift != 32 else {})


def michaeli2023(*, max_shift: int = 32, half_pixel: bool = True) -> Protocol:
    """Michaeli et al. 2023: correct under every circular shift in ``[1, max_shift)²`` (and the half-pixel ones)."""
    _positive("max_shift", max_shift)

    def planner(frame: Frame) -> "Plan":
        import itertools

        from pytest_equivariance.check.stream import Pair, Plan
        from pytest_equivariance.check.transforms import shift

        grid = list(itertools.product(range(1, max_shift), repeat=len(frame.dims)))
        moves = [shift(d, frame.dims) for d in grid]
        if half_pixel:  # the reference's subpixel_shift(2·d - 1) moves content by 0.5 - d
            moves += [shift(tuple(0.5 - v for v in d), frame.dims) for d in grid]
        pairs = [Pair(i, t) for i, t in enumerate(moves)]
        return Plan([(t.label, dict(t.params)) for t in moves], lambda p, b: pairs)

    options: dict[str, Any] = {"max_shift": max_shift} if max_shift != 32 else {}
    if not half_pixel:
        options["half_pixel"] = False
    what = "every circular shift" + (" and half-pixel shift" if half_pixel else "")
    return Protocol("michaeli2023", f"correct unshifted and under {what} of a grid",
                    layout="own", planner=planner, options=options)


#: The protocols by name, with their reference settings: shift protocols (``check_shift_invariant``)
PROTOCOLS: dict[str, Callable[[], Protocol]] = {
    "zhang2019": zhang2019,
    "azulay2019": azulay2019,
    "chaman2021": chaman2021,
    "michaeli2023": michaeli2023,
}
#: ... and rescaling protocols (``check_scale_invariant``).
SCALE_PROTOCOLS: dict[str, Callable[[], Protocol]] = {
    "azulay2019": lambda: azulay2019(setting="scale"),
}
_REGISTRIES = {"shift": (PROTOCOLS, "check_shift_invariant", "zhang2019(passes=1)"),
               "scale": (SCALE_PROTOCOLS, "check_scale_invariant", "azulay2019(setting='scale')")}


def resolve(protocol: Any, family: str = "shift") -> Protocol:
    """Return the :class:`Protocol` named by ``protocol`` for a check of ``family`` (a name, or a Protocol as it is)."""
    registry, entry, example = _REGISTRIES[family]
    if isinstance(protocol, Protocol):
        if protocol.family != family:
            other = _REGISTRIES[protocol.family][1]
            raise EquivarianceUsageError(
                f"protocol={protocol.name!r} ({protocol.title}) is run by {other}, not {entry}; call {other}, "
                f"or pass one of {entry}'s protocols."
            )
        return protocol
    if isinstance(protocol, str) and protocol in registry:
        return registry[protocol]()
    raise EquivarianceUsageError(
        f"protocol={shown(protocol)} is not a protocol of {entry}; pass one of {', '.join(map(repr, registry))}, "
        f"or a Protocol such as pytest_equivariance.check.protocols.{example}."
    )


#: What a check's own arguments default to: a protocol refuses any other value, as it chooses them.
_OWN_DEFAULTS = {"shift": {"mode": "circular", "measure": "error", "subpixel": False},
                 "scale": {"mode": "fourier", "measure": "error"}}
#: The mode a shift protocol's results report, by how it frames the images (a scale protocol's: "antialias").
_SHIFT_MODES = {"crop": "crop", "own": "circular", "embed": "zero"}


def protocol_check(spec: "CheckSpec", protocol: Any, family: str = "shift", **ignored: Any) -> "CheckResult":
    """Run ``check_shift_invariant(..., protocol=...)`` (or the scale check's): the protocol chooses the moves."""
    from pytest_equivariance.check.run import run_check
    from pytest_equivariance.check.spec import usage_error

    chosen = resolve(protocol, family)
    defaults = _OWN_DEFAULTS[family]
    given = [name for name, value in ignored.items() if value is not None and value != defaults.get(name)]
    if given:
        raise usage_error(
            f"protocol={chosen.name!r} chooses its own {'shifts' if family == 'shift' else 'rescalings'}, so "
            f"{given[0]}= does not apply; drop {given[0]}= (or drop protocol= to choose them yourself)."
        )
    if spec.inputs is None:
        raise usage_error(
            f"protocol={chosen.name!r} measures a classifier on your data; pass inputs= (a DataLoader of "
            f"labelled images, or a tensor)."
        )
    spec.protocol = chosen
    spec.mode = _SHIFT_MODES[chosen.layout] if family == "shift" else "antialias"
    spec.localize = False if spec.localize is None else spec.localize
    return run_check(spec, lambda ctx: [])


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EquivarianceUsageError(f"{name}={shown(value)} is not accepted; pass a positive integer.")


def _too_small(name: str, frame: Frame, need: str) -> EquivarianceUsageError:
    return EquivarianceUsageError(
        f"protocol={name!r} needs images {need}, got {frame.canvas} images for {frame.crop} crops; pass larger "
        f"images (the canvas) or a smaller input_shape (the crop)."
    )


def _at(offset: tuple[int, ...]) -> str:
    return str(offset if len(offset) > 1 else offset[0])


def _size(size: tuple[int, ...]) -> str:
    return "x".join(map(str, size))


def _plus(values: tuple[int, ...], step: int) -> tuple[int, ...]:
    return tuple(v + step for v in values)
