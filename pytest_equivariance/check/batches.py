"""A check's inputs as a source of batches: one tensor, or any iterable of batches, read once.

Everywhere a check (or :func:`~pytest_equivariance.lie_derivative`, :func:`~pytest_equivariance.attribute`)
takes ``inputs``, it takes a :class:`Batches` too, or anything it wraps: a
``torch.utils.data.DataLoader``, a list or generator of batches. Each batch is

- a tensor of images;
- a tuple or list ``(images, labels, ...)``: the first element holds the images, the second, when it
  is an integer tensor of one label per image, the class labels (other targets are ignored);
- a mapping: the images under ``image_key`` (default: the first floating-point tensor), the labels
  under ``label_key`` (default: the first of ``label``, ``labels``, ``target``, ``targets``, ``y``).

Batches are read once, in order, and never held beyond the one in flight (the first is kept for the
per-layer profile). A source that a protocol reads several times (its passes) is iterated again, as
the protocol's reference code does; a one-shot iterator cannot be, and says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_equivariance import guards
from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    from torch import Tensor

#: Keys a mapping's labels are looked up under when no ``label_key`` is given, in this order.
LABEL_KEYS = ("label", "labels", "target", "targets", "y")


@dataclass(frozen=True)
class Batch:
    """One batch of a source: its images, their class labels when the batch carries them, its position."""

    images: "Tensor"
    labels: "Tensor | None"
    index: int


class Batches:
    """Batches from a tensor or an iterable, normalised to :class:`Batch`, capped at ``limit`` images.

    ``image_key`` / ``label_key`` say where a mapping keeps its images and labels. Pass a
    ``Batches`` to a check to set them; a plain loader, list or tensor is wrapped with the defaults.

    Example::

        check_shift_invariant(model, Batches(loader, image_key="pixel_values", label_key="labels"))
    """

    def __init__(
        self,
        source: Any,
        *,
        image_key: str | None = None,
        label_key: str | None = None,
        limit: int | None = None,
    ) -> None:
        self.source = source
        self.image_key = image_key
        self.label_key = label_key
        self.limit = limit
        self.entry = "check"
        self._first: Batch | None = None
        self._rest: Iterator[Any] | None = None
        self._layout: tuple[tuple[int, ...], bool] | None = None  # batch 0's image shape, and whether it had labels

    # -- what the source is ---------------------------------------------------------------------

    @property
    def is_tensor(self) -> bool:
        """Whether the source is one tensor (the figures are those of one batch)."""
        import torch

        return isinstance(self.source, torch.Tensor)

    def size_hint(self) -> int | None:
        """Return how many images one pass will read, when the source says (for a progress bar)."""
        n = None
        if self.is_tensor:
            n = int(self.source.shape[0]) if self.source.dim() else None
        else:
            sampler = getattr(self.source, "sampler", None)
            for sized in (sampler, getattr(self.source, "dataset", None)):
                try:
                    n = len(sized)  # type: ignore[arg-type]
                    break
                except TypeError:
                    continue
            if n is None and self._first is not None:
                try:
                    n = len(self.source) * int(self._first.images.shape[0])
                except TypeError:
                    n = None
        if self.limit is not None:
            n = self.limit if n is None else min(n, self.limit)
        return n

    def distributed_sampler(self) -> bool | None:
        """Whether a DataLoader shards its set by a ``DistributedSampler`` (None: not a DataLoader)."""
        return distributed_sampler(self.source)

    # -- reading --------------------------------------------------------------------------------

    def first(self) -> Batch:
        """Return the first batch, reading it once and keeping it for the first pass."""
        if self._first is None:
            self._rest = self._iterator()
            self._first = self._next(self._rest, 0)
            if self._first is None:
                raise EquivarianceUsageError(
                    f"{self.entry} got inputs that yielded no batch ({_described(self.source)}); pass a loader "
                    f"or iterable with at least one batch of images."
                )
            if self.limit is not None and self._first.images.shape[0] > self.limit:
                self._first = _head(self._first, self.limit)  # what the first pass will check
        return self._first

    def passes(self, count: int) -> Iterator[Iterator[Batch]]:
        """Yield ``count`` passes over the source, each an iterator of batches (the first pass starts
        with the batch :meth:`first` read)."""
        for p in range(count):
            yield self._pass(p)

    def __iter__(self) -> Iterator[Batch]:
        """One pass over the source."""
        return self._pass(0)

    def _pass(self, p: int) -> Iterator[Batch]:
        if p == 0:
            first = self.first()
            rest = self._rest
        else:
            rest = self._iterator()
            if rest is self.source:  # an iterator: a second pass would see nothing
                raise EquivarianceUsageError(
                    f"{self.entry} reads its inputs {p + 1} times but got a one-shot "
                    f"{type(self.source).__name__}; pass a DataLoader, a list of batches or a tensor."
                )
            first = self._next(rest, 0)
            if first is None:
                return
        assert rest is not None
        seen = 0
        batch: Batch | None = first
        index = 0
        while batch is not None:
            if self.limit is not None and seen + batch.images.shape[0] > self.limit:
                batch = _head(batch, self.limit - seen)
            seen += batch.images.shape[0]
            yield batch
            if self.limit is not None and seen >= self.limit:
                break
            index += 1
            batch = self._next(rest, index)
        if p == 0:
            self._first = None  # not held beyond the first pass
            self._rest = None

    def _iterator(self) -> Iterator[Any]:
        import torch

        if isinstance(self.source, torch.Tensor):
            return iter([self.source])
        try:
            return iter(self.source)
        except TypeError:
            raise EquivarianceUsageError(
                f"{self.entry} needs inputs as a tensor or an iterable of batches, got {_described(self.source)}; "
                f"pass a (batch, channels, *spatial) tensor or a DataLoader."
            ) from None

    def _next(self, it: Iterator[Any], index: int) -> Batch | None:
        try:
            item = next(it)
        except StopIteration:
            return None
        return self._normalise(item, index)

    def _normalise(self, item: Any, index: int) -> Batch:
        """Return ``item`` as a :class:`Batch`, or raise one sentence on what is wrong with it."""
        import torch

        where = f"batch {index} of the inputs"
        labels: Any = None
        if isinstance(item, torch.Tensor):
            images = item
        elif isinstance(item, Mapping):
            images = self._image_of(item, where)
            labels = self._labels_of(item, where)
        elif isinstance(item, (tuple, list)) and item:
            images = item[0]
            if len(item) > 1 and _looks_like_labels(item[1]):
                labels = item[1]
        else:
            raise EquivarianceUsageError(
                f"{self.entry} got {where} as {_described(item)}; yield tensors of images, (images, labels) "
                f"pairs or mappings."
            )
        if self.is_tensor:  # one tensor: the check itself says what is wrong with its shape
            return Batch(images, None, index)
        guards.require_tensor(images, f"the images of {where}", self.entry)
        if images.dim() < 3:
            raise EquivarianceUsageError(
                f"{self.entry} got {where} with images of shape {tuple(images.shape)}; yield batches shaped "
                f"(batch, channels, *spatial), e.g. with a DataLoader over (C, H, W) images."
            )
        if labels is not None:
            labels = _as_labels(labels, images.shape[0], where, self.entry)
        layout = (tuple(images.shape[1:]), labels is not None)
        if self._layout is None:
            self._layout = layout
        elif layout[0] != self._layout[0]:
            raise EquivarianceUsageError(
                f"{self.entry} got {where} with images of shape {layout[0]} after {self._layout[0]} in batch 0; "
                f"resize or crop every image to one size in the loader."
            )
        elif layout[1] != self._layout[1]:
            raise EquivarianceUsageError(
                f"{self.entry} got {where} {'with' if layout[1] else 'without'} labels, unlike batch 0; "
                f"yield labels with every batch or with none."
            )
        return Batch(images, labels, index)

    def _image_of(self, item: Mapping[Any, Any], where: str) -> Any:
        import torch

        if self.image_key is not None:
            if self.image_key not in item:
                raise EquivarianceUsageError(
                    f"{self.entry} got {where} without the key {self.image_key!r} (it has "
                    f"{_keys(item)}); pass image_key= one of those."
                )
            return item[self.image_key]
        for value in item.values():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return value
        raise EquivarianceUsageError(
            f"{self.entry} got {where} as a mapping with no floating-point tensor (keys {_keys(item)}); "
            f"pass Batches(inputs, image_key=...) naming the images."
        )

    def _labels_of(self, item: Mapping[Any, Any], where: str) -> Any:
        if self.label_key is not None:
            if self.label_key not in item:
                raise EquivarianceUsageError(
                    f"{self.entry} got {where} without the key {self.label_key!r} (it has "
                    f"{_keys(item)}); pass label_key= one of those, or None."
                )
            return item[self.label_key]
        return next((item[k] for k in LABEL_KEYS if k in item), None)


def as_batches(inputs: Any, entry: str, *, limit: Any = None) -> Batches:
    """Return ``inputs`` (a tensor, an iterable of batches or a :class:`Batches`) as :class:`Batches`."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise EquivarianceUsageError(f"limit={shown(limit)} is not accepted; pass a positive number of images.")
    if isinstance(inputs, Batches):
        batches = Batches(inputs.source, image_key=inputs.image_key, label_key=inputs.label_key,
                          limit=inputs.limit if limit is None else limit)
    else:
        if isinstance(inputs, (str, bytes, Mapping)):
            raise EquivarianceUsageError(
                f"{entry} needs inputs as a tensor or an iterable of batches, got {_described(inputs)}; "
                f"pass a (batch, channels, *spatial) tensor or a DataLoader."
            )
        batches = Batches(inputs, limit=limit)
    batches.entry = entry
    _require_shards(batches)
    return batches


def _require_shards(batches: Batches) -> None:
    require_shards(batches.source, batches.entry, "image")


def distributed_sampler(source: Any) -> bool | None:
    """Whether a DataLoader shards its set by a ``DistributedSampler`` (None: not a DataLoader)."""
    try:
        from torch.utils.data import DataLoader
        from torch.utils.data.distributed import DistributedSampler
    except ImportError:  # pragma: no cover - every supported torch has both
        return None
    if not isinstance(source, DataLoader):
        return None
    inner = getattr(getattr(source, "batch_sampler", None), "sampler", None)
    return isinstance(source.sampler, DistributedSampler) or isinstance(inner, DistributedSampler)


def require_shards(source: Any, entry: str, unit: str) -> None:
    """Refuse a DataLoader that every process of a ``torchrun`` job would read whole.

    Without a ``DistributedSampler`` each rank would stream the same items (images, graphs) and the
    all-reduced figures would count every one once per process. Other iterables are taken to be
    sharded by their owner (nothing can tell).
    """
    from pytest_equivariance.check import distributed

    size = distributed.world()[1]
    if size > 1 and distributed_sampler(source) is False:
        raise EquivarianceUsageError(
            f"{entry} runs in {size} processes but its DataLoader has no DistributedSampler, so each "
            f"process would read the whole set and count every {unit} {size} times; pass "
            f"DataLoader(dataset, sampler=DistributedSampler(dataset), ...)."
        )


def is_stream(inputs: Any) -> bool:
    """Whether ``inputs`` is a source of batches rather than one tensor (or None)."""
    import torch

    return inputs is not None and not isinstance(inputs, torch.Tensor)


def _looks_like_labels(value: Any) -> bool:
    import torch

    if isinstance(value, torch.Tensor):
        return not (value.is_floating_point() or value.is_complex()) and value.dim() <= 1
    return isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _as_labels(value: Any, n: int, where: str, entry: str) -> "Tensor":
    import torch

    if isinstance(value, (list, tuple)):
        value = torch.as_tensor(value)
    if not isinstance(value, torch.Tensor) or value.is_floating_point() or value.is_complex():
        raise EquivarianceUsageError(
            f"{entry} got labels in {where} as {_described(value)}; yield integer class labels, one per image."
        )
    if value.dim() == 0:
        value = value.reshape(1)
    if value.dim() != 1 or value.shape[0] != n:
        raise EquivarianceUsageError(
            f"{entry} got {value.numel()} labels shaped {tuple(value.shape)} for {n} images in {where}; "
            f"yield one integer label per image."
        )
    return value


def _head(batch: Batch, n: int) -> Batch:
    labels = batch.labels[:n] if batch.labels is not None else None
    return Batch(batch.images[:n], labels, batch.index)


def _keys(item: Mapping[Any, Any]) -> str:
    keys = [repr(k) for k in list(item)[:8]]
    return ", ".join(keys) + (", ..." if len(item) > 8 else "") if keys else "no keys"


def _described(value: Any) -> str:
    if isinstance(value, (str, bytes)):
        return f"a {type(value).__name__} ({shown(value)})"
    return f"a {type(value).__name__}" if value is not None else "None"
