"""Batched, chunked, device-aware evaluation of a model on many transformed inputs.

A check puts every transformed copy of the inputs through the model under ``torch.inference_mode()``
in chunks of ``batch_size`` images (chosen from a memory budget when not given), so a 32-shift check
costs about one batched forward pass. While it runs, :func:`prepared` puts the model in eval mode on
the check's device and switches TF32 off, and puts everything back afterwards.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Iterator

from pytest_equivariance import forms
from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

#: Output leaves: ``(path, tensor)`` pairs, the path as a report prints it ("", "['logits']", "[0]", ".boxes").
Leaves = list[tuple[str, "Tensor"]]

#: Memory a check may use for activations when ``batch_size`` is not given, in bytes. On a CPU a
#: forward pass of hundreds of images is slower per image than one of tens (its activations leave
#: the caches), so the budget is small: a streamed resnet18 check at 64x64 costs 1.06x a bare loop
#: of 32-image batches with it, 1.6x with 2 GiB (benchmarks/stream_overhead.py).
CPU_BUDGET = 128 << 20
#: On CUDA: this fraction of the free device memory.
CUDA_BUDGET_FRACTION = 0.25
#: Peak memory of a forward pass per image, as a multiple of its largest activation: the input and
#: output of the widest layer, and workspace.
ACTIVATION_FACTOR = 4
MAX_AUTO_BATCH = 1024


@dataclass
class Prepared:
    """The model ready for a check: where it runs, in which dtype, and what was changed for it."""

    model: "nn.Module"
    device: "torch.device"
    dtype: "torch.dtype"
    notes: list[str] = field(default_factory=list)


def resolve_device(device: "str | torch.device | None", model: "nn.Module | None" = None) -> "torch.device":
    """Return the torch device for ``device``: None = the model's own device, "auto" = CUDA when available."""
    import torch

    if device is None:
        return model_device(model) if model is not None else torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError, OverflowError) as exc:
        raise EquivarianceUsageError(
            f"device={shown(device)} is not a device; pass 'cpu', 'cuda', 'cuda:N' or 'auto'."
        ) from exc
    if resolved.type == "meta":
        raise EquivarianceUsageError(
            f"device={shown(device)} holds no values to compare; pass device='cpu', 'cuda' or 'auto'."
        )
    if resolved.type not in ("cpu", "cuda"):
        try:
            torch.empty(0, device=resolved)
        except Exception:  # noqa: BLE001 - any refusal of torch's means the same to the user
            raise EquivarianceUsageError(
                f"device={shown(device)} is not available in this torch build; pass device='cpu', 'cuda' or 'auto'."
            ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise EquivarianceUsageError(
                f"device={shown(device)} asks for CUDA but torch sees no CUDA device; pass device='cpu' or 'auto'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise EquivarianceUsageError(
                f"device={shown(device)} does not exist (torch sees {torch.cuda.device_count()} CUDA devices); "
                f"pass an index below that, or 'auto'."
            )
    return resolved


def model_device(model: "nn.Module") -> "torch.device":
    """Return the device of the model's first parameter or buffer (CPU when it has none)."""
    import torch

    for t in _tensors(model):
        return t.device
    return torch.device("cpu")


def model_dtype(model: "nn.Module") -> "torch.dtype | None":
    """Return the dtype of the model's first floating-point parameter or buffer, or None."""
    for t in _tensors(model):
        if t.is_floating_point():
            return t.dtype
    return None


def _tensors(model: "nn.Module") -> Iterator["Tensor"]:
    yield from model.parameters()
    yield from model.buffers()


@contextlib.contextmanager
def prepared(model: "nn.Module", device: "torch.device", dtype: "torch.dtype") -> Iterator[Prepared]:
    """Run the block with the model in eval mode on ``device`` and TF32 off; restore all three after.

    Training flags are restored module by module (a model may be partly frozen on purpose), and the
    model goes back to the device it came from.
    """
    import torch

    notes: list[str] = []
    modes = forms.has_modes(model)  # an exported module keeps the mode it was exported in
    training = {name: m.training for name, m in model.named_modules()} if modes else {}
    if any(training.values()):
        notes.append("model was in train mode; checked in eval mode (dropout off, batch-norm running statistics) and restored")
    original_device = model_device(model)
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if modes:
            model.eval()
        if original_device != device and any(True for _ in _tensors(model)):
            model.to(device)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        yield Prepared(model, device, dtype, notes)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        if original_device != device and any(True for _ in _tensors(model)):
            model.to(original_device)
        if modes:
            for name, m in model.named_modules():
                m.training = training.get(name, m.training)


class InPieces:
    """Call a module that accepts only batches of ``batch`` images on batches of any size.

    An exported module keeps the batch size it was exported with; a check's chunks are cut into
    pieces of that size (the last one padded with copies of its first image, dropped from the
    output), and the pieces' outputs are joined back along the batch.
    """

    def __init__(self, module: "nn.Module", batch: int) -> None:
        self.module, self.batch = module, batch

    def __call__(self, x: "Tensor") -> Any:
        import torch

        outputs = []
        for start in range(0, x.shape[0], self.batch):
            piece = x[start:start + self.batch]
            short = self.batch - piece.shape[0]
            if short:
                piece = torch.cat([piece, piece[:1].expand(short, *piece.shape[1:])])
            outputs.append((self.module(piece), self.batch - short))
        return _joined(outputs)


def shipped(model: "nn.Module") -> Any:
    """Return what a check calls for its figures: the model, or an exported one cut to its fixed batch."""
    batch = forms.fixed_batch(model)
    return InPieces(model, batch) if batch is not None else model


def _joined(outputs: list[tuple[Any, int]]) -> Any:
    import torch

    first = outputs[0][0]
    if isinstance(first, torch.Tensor):
        return torch.cat([out[:keep] for out, keep in outputs])
    if isinstance(first, dict):
        return {k: _joined([(out[k], keep) for out, keep in outputs]) for k in first}
    if isinstance(first, (tuple, list)):
        parts = [_joined([(out[i], keep) for out, keep in outputs]) for i in range(len(first))]
        return type(first)(*parts) if hasattr(first, "_fields") else type(first)(parts)
    return first


def flatten_output(output: Any, path: str = "") -> Leaves:
    """Return the tensors in a (nested) model output with their paths, in a stable order.

    Tensors, tuples, lists, dicts and namedtuples (fields as ``.name``) are walked; other values
    (None, ints, strings) carry no figures and are skipped.
    """
    import torch

    if isinstance(output, torch.Tensor):
        return [(path, output)]
    if isinstance(output, dict):
        return [leaf for k, v in output.items() for leaf in flatten_output(v, f"{path}[{k!r}]")]
    if isinstance(output, tuple) and hasattr(output, "_fields"):
        return [leaf for k in output._fields for leaf in flatten_output(getattr(output, k), f"{path}.{k}")]
    if isinstance(output, (tuple, list)):
        return [leaf for i, v in enumerate(output) for leaf in flatten_output(v, f"{path}[{i}]")]
    return []


def forward(model: "nn.Module", x: "Tensor") -> Leaves:
    """Return the model's output leaves for ``x`` under ``torch.inference_mode()``.

    Errors the model raises on the input (wrong shape, dtype, channels) become a usage error.
    """
    import torch

    try:
        with torch.inference_mode():
            output = model(x)
    except EquivarianceUsageError:
        raise
    except Exception as exc:
        raise rejected(exc, x) from exc
    leaves = flatten_output(output)
    if not leaves:
        raise EquivarianceUsageError(
            f"The model returned {type(output).__name__}, which holds no tensor to compare; "
            f"return a tensor, or a tuple, list, dict or namedtuple of tensors."
        )
    return leaves


def rejected(exc: BaseException, x: "Tensor") -> EquivarianceUsageError:
    """The usage error for a model that raised ``exc`` on inputs ``x`` (wrong shape, dtype, channels)."""
    return EquivarianceUsageError(
        # Name the per-image shape: the batch dimension here counts transformed copies too.
        f"The model rejected inputs of shape (N, {', '.join(map(str, x.shape[1:]))}) "
        f"({type(exc).__name__}: {_first_line(exc)}); pass inputs= or input_shape= that the model accepts."
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "no message"


@contextlib.contextmanager
def widest_activation(model: "nn.Module") -> Iterator[list[int]]:
    """Within the block, record in ``holder[0]`` the bytes of the largest tensor a leaf module outputs.

    Forward hooks on the leaf modules see every intermediate tensor once; the widest one bounds the
    peak memory of an inference pass (which frees activations as it goes).
    """
    holder = [0]

    def hook(module: Any, args: Any, output: Any) -> None:
        for _, t in flatten_output(output):
            holder[0] = max(holder[0], t.numel() * t.element_size())

    handles = []
    try:
        for m in model.modules():
            if next(m.children(), None) is None:
                handles.append(m.register_forward_hook(hook))
    except (AttributeError, RuntimeError):  # scripted modules do not take Python hooks
        pass
    try:
        yield holder
    finally:
        for h in handles:
            h.remove()


def activation_bytes_per_image(model: "nn.Module", x: "Tensor") -> tuple[Leaves, int]:
    """Return the output leaves for ``x`` and the bytes of the largest single activation per image."""
    with widest_activation(model) as holder:
        leaves = forward(shipped(model), x)
    largest = max([holder[0], x.numel() * x.element_size()] + [t.numel() * t.element_size() for _, t in leaves])
    n = max(x.shape[0], 1) if x.dim() else 1
    return leaves, max(1, largest // n)


@dataclass
class ChunkSize:
    """Images per forward pass: fixed, or (``measure=True``) set from the first chunk's activations.

    A measured chunk size starts at ``size`` (a first guess, see :func:`first_guess`), and after the
    first forward pass becomes what the memory budget of ``device`` allows (:func:`auto_batch_size`),
    so the reference and the first transformed copies share one pass without a separate probe.
    """

    size: int
    measure: bool = False
    device: "torch.device | None" = None


#: First guess of a forward pass's peak memory per image, as a multiple of the input image's bytes:
#: a ResNet stem's widest activation is about 21x its input, and a peak is a few activations. Full-
#: resolution 64-channel models (U-Nets) exceed it, but only the first chunk relies on the guess.
FIRST_GUESS_FACTOR = 64


def first_guess(x: "Tensor", device: "torch.device") -> int:
    """Return a chunk size to start with before any activation has been measured."""
    per_image = max(1, x[:1].numel() * x.element_size())
    return auto_batch_size(per_image * FIRST_GUESS_FACTOR // ACTIVATION_FACTOR, device)


def auto_batch_size(per_image_bytes: int, device: "torch.device") -> int:
    """Return how many images fit one chunk within the memory budget for ``device``."""
    import torch

    budget = CPU_BUDGET
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        budget = int(free * CUDA_BUDGET_FRACTION)
    return int(max(1, min(MAX_AUTO_BATCH, budget // (ACTIVATION_FACTOR * per_image_bytes))))


def run_batches(
    model: "nn.Module", jobs: Iterable[tuple[Hashable, "Tensor"]], batch_size: "int | ChunkSize"
) -> Iterator[tuple[Hashable, Leaves]]:
    """Yield ``(key, output leaves)`` for each ``(key, inputs)`` job, forwarding chunks of ``batch_size`` images.

    Jobs are packed together (several small jobs share one forward pass) or split (a job larger than
    a chunk spans several), and each job's outputs are yielded as soon as they are complete, in job
    order, so only the chunk in flight is held in memory. With a measuring :class:`ChunkSize` the
    chunk size is refined after the first pass.
    """
    import torch

    chunk = batch_size if isinstance(batch_size, ChunkSize) else ChunkSize(batch_size)
    pending: list[tuple[Hashable, "Tensor", bool]] = []
    pieces: dict[Hashable, list[Leaves]] = {}
    count = 0

    def flush() -> Iterator[tuple[Hashable, Leaves]]:
        # Always a fresh tensor: a model that writes into its input must not alter the next job's.
        batch = torch.cat([x for _, x, _ in pending])
        if chunk.measure:
            leaves, per_image = activation_bytes_per_image(model, batch)
            chunk.size = auto_batch_size(per_image, chunk.device or batch.device)
            chunk.measure = False
        else:
            leaves = forward(model, batch)
        sizes = [x.shape[0] for _, x, _ in pending]
        split = []
        for path, t in leaves:
            if t.dim() == 0 or t.shape[0] != batch.shape[0]:
                raise EquivarianceUsageError(
                    f"Model output{path} has shape {tuple(t.shape)}, without the batch dim of the input "
                    f"({batch.shape[0]}); return outputs with the batch first, or pass batch_size=1."
                )
            split.append((path, t.split(sizes)))
        for i, (key, _, last) in enumerate(pending):
            pieces.setdefault(key, []).append([(path, parts[i]) for path, parts in split])
            if last:
                parts_of_key = pieces.pop(key)
                if len(parts_of_key) == 1:
                    yield key, parts_of_key[0]
                else:
                    yield key, [
                        (path, torch.cat([p[j][1] for p in parts_of_key])) for j, (path, _) in enumerate(parts_of_key[0])
                    ]

    for key, x in jobs:
        if pending and pending[0][1].shape[1:] != x.shape[1:]:  # inputs of another size (rescaled) run apart
            yield from flush()
            pending, count = [], 0
        n, start = x.shape[0], 0
        while start < n:
            take = min(max(1, chunk.size - count), n - start)
            pending.append((key, x[start : start + take], start + take == n))
            count += take
            start += take
            if count >= chunk.size:
                yield from flush()
                pending, count = [], 0
    if pending:
        yield from flush()


def receptive_radius(model: "nn.Module", x: "Tensor", dims: tuple[int, ...]) -> tuple[float, ...] | None:
    """Return, per spatial dim, how far (input pixels) the centre output pixel sees; None if unmeasurable.

    Measured as the support of the gradient of the spatial outputs' centre pixels (mixed with fixed
    random weights, so channels cannot cancel) with respect to one input image: the extent of the
    receptive field that actually matters, padding included. Crop and zero shifts compare only
    outputs at least this far from the border.
    """
    import torch

    ndim = x.dim()
    probe = x[:1].detach().clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(0)
    try:
        with torch.enable_grad():
            leaves = flatten_output(model(probe))
            total = None
            centres: list[tuple[int, ...]] = []
            for _, t in leaves:
                if t.dim() != ndim or not t.is_floating_point() or not t.requires_grad:
                    continue
                index: list[Any] = [slice(None)] * ndim
                centre = tuple(t.shape[d] // 2 for d in dims)
                for d, c in zip(dims, centre):
                    index[d] = c
                pick = t[tuple(index)]
                weights = torch.randn(pick.shape, generator=gen, dtype=torch.float64).to(pick)
                term = (pick * weights).sum()
                total = term if total is None else total + term
                scale = tuple(x.shape[d] / t.shape[d] for d in dims)
                centres.append(tuple((c + 0.5) * s - 0.5 for c, s in zip(centre, scale)))
            if total is None:
                return None
            (grad,) = torch.autograd.grad(total, probe)
    except Exception:  # some models cannot run under autograd (inference-only kernels)
        return None
    support = grad.detach().abs()
    radii = []
    for i, d in enumerate(dims):
        other = [k for k in range(ndim) if k != d % ndim]
        profile = support.sum(dim=other) if other else support
        hit = torch.nonzero(profile > 0).flatten()
        if hit.numel() == 0:
            radii.append(0.0)
            continue
        centre = max(c[i] for c in centres)
        radii.append(max(centre - hit.min().item(), hit.max().item() - min(c[i] for c in centres), 0.0))
    return tuple(radii)
