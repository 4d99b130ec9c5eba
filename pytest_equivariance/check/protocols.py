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
    transformations?" (JMLR 2019; ``JaggedNess`` in AzulEye/CNN-Failures, crop setting). Each image
    (a canvas, 234 there) is cropped to ``input_shape`` at ``(c, c)`` and ``(c+1, c+1)`` for the 8
    diagonal positions ``c`` about its centre: a one-pixel diagonal shift. Figures: the probability
    of a top-1 change (``1 - consistency``) and the mean absolute change of the first crop's top-class
    probability (``prob_change``). The reference stops after 1001 images: pass ``limit=1001``.
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


@dataclass(frozen=True)
class Frame:
    """What a protocol plans from: the loader's image size, the model's, the spatial dims, and the draws."""

    canvas: tuple[int, ...]  # spatial size of the loader's images
    crop: tuple[int, ...]  # spatial size the model sees
    dims: tuple[int, ...]
    rng: Any  # numpy.random.RandomState(seed): the references draw from numpy's global legacy generator


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: how it pairs inputs (``planner``), and what it reports.

    ``crops``: the loader's images are a canvas the model sees crops of (``input_shape`` is the crop);
    otherwise the model sees the images themselves, shifted circularly.
    """

    name: str
    title: str  # one line: what is compared
    crops: bool
    planner: Callable[[Frame], "Plan"] = field(repr=False, compare=False)
    options: dict[str, Any] = field(default_factory=dict)

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

        return self.planner(Frame(tuple(canvas[d] for d in dims), tuple(crop[d] for d in dims), dims,
                                  np.random.RandomState(seed + world()[0])))


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
                    crops=True, planner=planner, options={"passes": passes} if passes != 5 else {})


def azulay2019(*, positions: int = 8) -> Protocol:
    """Azulay & Weiss 2019: crops at ``(c, c)`` and ``(c+1, c+1)`` for ``positions`` diagonal positions ``c``."""
    _positive("positions", positions)
    half = positions // 2

    def planner(frame: Frame) -> "Plan":
        from pytest_equivariance.check.stream import Pair, Plan
        from pytest_equivariance.check.transforms import crop_at

        centre = tuple((c - k - 1) // 2 for c, k in zip(frame.canvas, frame.crop))
        starts = [tuple(m + i for m in centre) for i in range(-half, positions - half)]
        if min(starts[0]) < 0 or any(s + 1 + k > c for s, k, c in zip(starts[-1], frame.crop, frame.canvas)):
            raise _too_small("azulay2019", frame, f"at least {positions + 1} pixels larger than the crop along each dim")
        pairs = [
            Pair(i, crop_at(tuple(s + 1 for s in start), frame.crop, frame.dims), crop_at(start, frame.crop, frame.dims))
            for i, start in enumerate(starts)
        ]
        slots = [(f"crop at {_at(start)} vs {_at(tuple(s + 1 for s in start))}", {"offset": list(start)})
                 for start in starts]
        return Plan(slots, lambda p, b: pairs)

    return Protocol("azulay2019", f"one-pixel diagonal shifts of the crop at {positions} positions",
                    crops=True, planner=planner, options={"positions": positions} if positions != 8 else {})


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
                    crops=False, planner=planner, options={"max_shift": max_shift} if max_shift != 32 else {})


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
                    crops=False, planner=planner, options=options)


#: The protocols by name, with their reference settings.
PROTOCOLS: dict[str, Callable[[], Protocol]] = {
    "zhang2019": zhang2019,
    "azulay2019": azulay2019,
    "chaman2021": chaman2021,
    "michaeli2023": michaeli2023,
}


def resolve(protocol: Any) -> Protocol:
    """Return the :class:`Protocol` named by ``protocol`` (a name, or a Protocol as it is)."""
    if isinstance(protocol, Protocol):
        return protocol
    if isinstance(protocol, str) and protocol in PROTOCOLS:
        return PROTOCOLS[protocol]()
    raise EquivarianceUsageError(
        f"protocol={shown(protocol)} is not a protocol; pass one of {', '.join(map(repr, PROTOCOLS))}, or a "
        f"Protocol such as pytest_equivariance.check.protocols.zhang2019(passes=1)."
    )


def protocol_check(spec: "CheckSpec", protocol: Any, **ignored: Any) -> "CheckResult":
    """Run ``check_shift_invariant(..., protocol=...)``: the protocol chooses the shifts and the mode."""
    from pytest_equivariance.check.run import run_check
    from pytest_equivariance.check.spec import usage_error

    chosen = resolve(protocol)
    given = [name for name, value in ignored.items()
             if value is not None and value != {"mode": "circular", "measure": "error", "subpixel": False}.get(name)]
    if given:
        raise usage_error(
            f"protocol={chosen.name!r} chooses its own shifts, so {given[0]}= does not apply; drop {given[0]}= "
            f"(or drop protocol= to choose the shifts yourself)."
        )
    if spec.inputs is None:
        raise usage_error(
            f"protocol={chosen.name!r} measures a classifier on your data; pass inputs= (a DataLoader of "
            f"labelled images, or a tensor)."
        )
    spec.protocol = chosen
    spec.mode = "crop" if chosen.crops else "circular"
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
