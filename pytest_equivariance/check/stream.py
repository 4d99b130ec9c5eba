"""The streaming loop every finite check shares: batches through the model, pairs compared, statistics summed.

A check is a :class:`Plan`: which outputs are compared with which (its :class:`Pair`\\ s), batch by
batch and pass by pass. A plain check pairs the reference input with each of its transforms, the
same for every batch; an evaluation protocol (:mod:`.protocols`) may draw new pairs for every batch
and compare two transformed inputs with each other. Either way the loop is this one: every input a
batch's pairs need goes through the model once (chunked by :func:`.runner.run_batches`), each pair
adds the :class:`~.metrics.Sums` of its comparison to its slot, and the counts behind the accuracy
figures are kept per image. Nothing is averaged until the end, so the figures of a stream are those of
one concatenated batch, and across ``torchrun`` processes (:mod:`.distributed`) those of the whole set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pytest_equivariance.check import distributed, metrics, runner
from pytest_equivariance.check.metrics import Sums
from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    from torch import Tensor

    from pytest_equivariance.check.transforms import Transform


@dataclass(frozen=True)
class Pair:
    """Compare the model's output on ``b``'s input with its output on ``a``'s (None: the reference input).

    With ``a`` None and an equivariance check, the reference output is moved by ``b`` first.
    """

    slot: int  # the trial this comparison counts towards
    b: "Transform"
    a: "Transform | None" = None


@dataclass(frozen=True)
class Plan:
    """Which comparisons a check makes, as data: its slots (one trial each), passes, and pairs per batch."""

    slots: list[tuple[str, dict[str, Any]]]  # (label, params) of each trial
    pairs: Callable[[int, int], list[Pair]]  # (pass, batch index) -> the batch's pairs
    passes: int = 1
    reference: bool = True  # whether the reference input runs (equivariance, clean accuracy)

    @classmethod
    def fixed(cls, transforms: list["Transform"]) -> "Plan":
        """The plan of a plain check: the reference against each transform, for every batch."""
        pairs = [Pair(i, t) for i, t in enumerate(transforms)]
        return cls([(t.label, dict(t.params)) for t in transforms], lambda p, b: pairs)

    def remembering(self, first_pairs: list[Pair]) -> "Plan":
        """Return this plan, keeping the pairs it gives the first batch of the first pass in
        ``first_pairs`` (a check's profile is measured on that batch, under the worst trial's transform)."""

        def pairs(p: int, number: int) -> list[Pair]:
            out = self.pairs(p, number)
            if p == 0 and number == 0:
                first_pairs[:] = out
            return out

        return replace(self, pairs=pairs)


@dataclass
class Slot:
    """One trial's statistics: per output leaf, and the images classified right under its transform."""

    leaves: dict[str, Sums] = field(default_factory=dict)
    correct: float = 0.0
    labelled: float = 0.0


@dataclass
class Tally:
    """Counts per image across all of a batch's comparisons (summed over batches)."""

    images: float = 0.0  # images read (per pass)
    clean_correct: float = 0.0  # ... classified right on the reference input
    labelled: float = 0.0  # ... with labels
    all_agree: float = 0.0  # ... whose top-1 class survived every pair
    compared: float = 0.0  # ... whose top-1 class was compared at all
    all_correct: float = 0.0  # ... classified right on every input the batch ran


@dataclass
class Outcome:
    """What the stream measured: per slot, the statistics; over the images, the tally."""

    slots: list[Slot]
    tally: Tally
    has_reference: bool

    def reduce(self) -> None:
        """Combine every rank's statistics into the whole set's (nothing to do in one process)."""
        if distributed.world()[1] == 1:
            return
        sums, maxima, places = [], [], []
        for slot in self.slots:
            for leaf in slot.leaves.values():
                for name in metrics.FIELDS:
                    value = getattr(leaf, name)
                    if name in Sums.MAXIMA:
                        places.append((leaf, name, "max", len(maxima)))
                        maxima.append(value)
                    elif name in Sums.MINIMA:
                        places.append((leaf, name, "min", len(maxima)))
                        maxima.append(-value)
                    else:
                        places.append((leaf, name, "sum", len(sums)))
                        sums.append(value)
            for name in ("correct", "labelled"):
                places.append((slot, name, "sum", len(sums)))
                sums.append(getattr(slot, name))
        for name in Tally.__dataclass_fields__:
            places.append((self.tally, name, "sum", len(sums)))
            sums.append(getattr(self.tally, name))
        if not distributed.same_everywhere(len(sums) * 100_003 + len(maxima)):
            raise EquivarianceUsageError(
                "The processes of this torch.distributed run measured different trials or outputs; give every "
                "rank the same model, arguments and image size."
            )
        total, top = distributed.reduce(sums, maxima)
        for owner, name, how, i in places:
            value = total[i] if how == "sum" else (top[i] if how == "max" else -top[i])
            setattr(owner, name, value)


def stream(
    model: Any,
    plan: Plan,
    batches: Iterable[tuple[int, "Tensor", "Tensor | None"]],
    chunk: "runner.ChunkSize",
    compare: Callable[[Pair, runner.Leaves, runner.Leaves, "Tensor"], list[tuple[str, Sums, "Tensor | None"]]],
    *,
    reference: Callable[["Tensor"], "Tensor"],
    accept: Callable[[runner.Leaves, str], None],
    first_reference: runner.Leaves | None = None,
    advance: Callable[[int], None] = lambda n: None,
) -> Outcome:
    """Run ``plan`` over ``batches`` (``(pass, prepared inputs, labels)``) and return what it measured.

    ``compare(pair, outputs, against, inputs)`` returns each leaf's statistics and, for class scores,
    whether each image's top-1 class survived; ``reference(x)`` is the untransformed input the model
    sees; ``accept(leaves, what)`` rejects unusable outputs (NaN, no class scores when they are
    needed). ``first_reference``: the reference outputs of the first batch, when already computed.
    """
    slots = [Slot() for _ in plan.slots]
    tally = Tally()
    state: dict[int, _BatchState] = {}

    def jobs() -> Iterator[tuple[Any, "Tensor"]]:
        for number, (p, x, labels) in enumerate(batches):
            pairs = plan.pairs(p, number)
            assert pairs, "a plan pairs every batch with at least one transform"
            first = list(dict.fromkeys(pair.a for pair in pairs if pair.a is not None))
            st = state[number] = _BatchState(x, labels, pairs, first)
            if plan.reference:
                if number == 0 and first_reference is not None:
                    st.take_reference(first_reference, tally, accept)
                else:
                    yield (number, "ref", 0), reference(x)
            for i, a in enumerate(first):
                yield (number, "a", i), a.on_input(x)
            for i, pair in enumerate(pairs):
                yield (number, "b", i), pair.b.on_input(x)

    for (number, kind, i), leaves in runner.run_batches(model, jobs(), chunk):
        st = state[number]
        if kind == "ref":
            st.take_reference(leaves, tally, accept)
        elif kind == "a":
            accept(leaves, f"the input under {st.first[i].label}")
            st.outputs[i] = leaves
            st.note_correct(leaves)
        else:
            pair = st.pairs[i]
            accept(leaves, f"the input under {pair.b.label}")
            against = st.reference if pair.a is None else st.outputs[st.first.index(pair.a)]
            assert against is not None
            slot = slots[pair.slot]
            agreement = None
            for path, sums, agree in compare(pair, leaves, against, st.x):
                if path in slot.leaves:
                    slot.leaves[path] += sums
                else:
                    slot.leaves[path] = sums
                if agreement is None and agree is not None:
                    agreement = agree
            if agreement is not None:
                st.agree = agreement if st.agree is None else st.agree & agreement
            hits = st.note_correct(leaves)
            if hits is not None:
                slot.correct += float(hits.sum().item())
                slot.labelled += hits.shape[0]
            st.pending -= 1
        if st.done():
            st.finish(tally)
            advance(st.x.shape[0])
            del state[number]
    return Outcome(slots, tally, plan.reference)


class _BatchState:
    """What one batch holds while its jobs run: the outputs later pairs are compared with, per-image flags."""

    def __init__(self, x: "Tensor", labels: "Tensor | None", pairs: list[Pair], first: list["Transform"]) -> None:
        self.x = x
        self.labels = labels
        self.pairs = pairs
        self.first = first
        self.reference: runner.Leaves | None = None
        self.outputs: dict[int, runner.Leaves] = {}
        self.pending = len(pairs)
        self.agree: "Tensor | None" = None  # per image: top-1 class kept under every pair so far
        self.correct: "Tensor | None" = None  # per image: classified right on every input so far
        self.clean: "Tensor | None" = None  # per image: classified right on the reference input
        self._checked = False  # whether the labels were checked against the model's classes

    def take_reference(self, leaves: runner.Leaves, tally: Tally, accept: Callable[[runner.Leaves, str], None]) -> None:
        accept(leaves, "the reference input")
        self.reference = leaves
        self.clean = self.note_correct(leaves)

    def note_correct(self, leaves: runner.Leaves) -> "Tensor | None":
        """Return, per image, whether the class scores in ``leaves`` name its label (None without labels)."""
        if self.labels is None:
            return None
        scores = next((t for _, t in leaves if metrics.is_classifier_output(t)), None)
        if scores is None:
            return None
        if self.labels.device != scores.device:  # moved and checked once per batch, not per pair
            self.labels = self.labels.to(scores.device)
        labels = self.labels
        classes = scores.shape[1]
        if not self._checked:
            outside = (labels < 0) | (labels >= classes)
            if bool(outside.any()):
                bad = int(labels[outside][0])
                raise EquivarianceUsageError(
                    f"A label of the inputs is {bad}, but the model scores {classes} classes (0 to {classes - 1}); "
                    f"yield labels that index the model's classes."
                )
            self._checked = True
        hits = metrics.top1(scores) == labels
        self.correct = hits if self.correct is None else self.correct & hits
        return hits

    def done(self) -> bool:
        """Whether every pair is compared (the reference and ``a`` inputs run before any ``b``)."""
        return self.pending == 0

    def finish(self, tally: Tally) -> None:
        n = float(self.x.shape[0])
        tally.images += n
        if self.agree is not None:
            tally.compared += n
            tally.all_agree += float(self.agree.sum().item())
        if self.correct is not None:
            tally.labelled += n
            tally.all_correct += float(self.correct.sum().item())
            if self.clean is not None:
                tally.clean_correct += float(self.clean.sum().item())
