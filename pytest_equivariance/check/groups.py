"""Groups of rotations and reflections of the plane, and how their elements act on feature fields.

A :class:`Group` is ``C<N>`` (N rotations by 360°/N), ``D<N>`` (those and N reflections), ``SO2``
(every rotation) or ``O2`` (every rotation and reflection). An :class:`Element` is ``R_θ ∘ F^f``:
first a mirror ``F`` of the W axis when ``flip``, then a rotation by ``θ`` degrees, counterclockwise
as displayed (rows grow downwards), about the centre of the plane. Quarter turns and flips are
exact pixel permutations (``θ = 90°`` is ``torch.rot90(k=1, dims=(-2, -1))``); other angles are
resampled band-limitedly (:func:`rotate_bandlimited`). These are escnn's conventions
(``rot2dOnR2``, ``flipRot2dOnR2``), so that its field types can be read directly.

A :class:`Fields` layout says how an element acts on the channels of a feature map at each pixel
(the *fibre*): blocks of scalar, regular, vector, ``irrep(k)`` or sign fields laid out along the
channel dim, an escnn or e2cnn ``FieldType`` (its own representation matrices), or a callable. The
spatial action and the fibre action commute (one moves pixels, the other mixes channels per pixel).
See ``docs/groups.md``.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    from torch import Tensor

#: Field names a layout accepts, for error messages.
FIELD_NAMES = ("scalar", "regular", "vector", "irrep(k)", "sign")
#: Angles (degrees) an SO2 or O2 check sweeps when no trials are given.
CONTINUOUS_SWEEP = tuple(float(a) for a in range(15, 360, 15))
#: Attribute of a wrapped escnn / e2cnn module holding its (in_type, out_type).
FIELD_TYPES = "_equivariance_field_types"
#: Upsampling factor of the band-limited rotation of non-grid angles.
OVERSAMPLE = 2

_GROUP = re.compile(r"^(C|D)(\d+)$")
_IRREP = re.compile(r"^irrep\((\d+)\)$")


def _usage(message: str) -> EquivarianceUsageError:
    return EquivarianceUsageError(message)


# --------------------------------------------------------------------------------------------
# Groups and their elements


@dataclass(frozen=True)
class Group:
    """A group of plane rotations (and reflections): ``kind`` is "C", "D", "SO2" or "O2"."""

    kind: str
    n: int | None = None  # rotations of a finite group

    @property
    def name(self) -> str:
        return f"{self.kind}{self.n}" if self.n is not None else self.kind

    @property
    def finite(self) -> bool:
        return self.n is not None

    @property
    def has_flips(self) -> bool:
        return self.kind in ("D", "O2")

    @property
    def order(self) -> int | None:
        """The number of elements, None for SO2 and O2."""
        if self.n is None:
            return None
        return self.n * (2 if self.has_flips else 1)

    @property
    def exact(self) -> bool:
        """Whether every element is a pixel permutation (rotations by multiples of 90° only)."""
        return self.finite and 4 % self.n == 0  # type: ignore[operator]

    def elements(self, *, trials: int | None = None, seed: int = 0) -> list["Element"]:
        """Return the elements a check applies: every element but the identity of a finite group;
        for SO2 and O2 the sweep (every 15°) or ``trials`` random angles drawn from ``seed``."""
        flips = (False, True) if self.has_flips else (False,)
        if self.finite:
            assert self.n is not None
            out = [Element(360.0 * k / self.n, f, k, self.n) for f in flips for k in range(self.n)]
            return out[1:]
        if trials:
            rng = random.Random(seed)
            angles = [round(rng.uniform(1.0, 359.0), 1) for _ in range(trials)]
            return [Element(a, rng.random() < 0.5 if self.has_flips else False) for a in angles]
        out = [Element(a, False) for a in CONTINUOUS_SWEEP]
        if self.has_flips:
            out += [Element(0.0, True)] + [Element(a, True) for a in CONTINUOUS_SWEEP]
        return out


#: The largest N of C<N> and D<N>: each element is one trial (check.arguments.MAX_TRIALS).
MAX_ORDER = 10_000
#: The smallest N of each finite kind: C1 is the trivial group (no element but the identity to
#: check); D1 is one flip.
MIN_ORDER = {"C": 2, "D": 1}
#: What to do instead of group='C1', for the API's error and the markers' (check.arguments).
TRIVIAL_REMEDY = ("drop group= (pass angles= to choose the rotations) or name a group with rotations, "
                  "e.g. 'C4'")


def is_trivial(value: Any) -> bool:
    """Whether ``value`` names the trivial group, C1, which has nothing to check."""
    match = _GROUP.match(value.strip().upper().replace("(", "").replace(")", "")) if isinstance(value, str) else None
    return bool(match) and match.group(1) == "C" and int(match.group(2)) == 1


def parse_group(value: Any) -> Group:
    """Return the :class:`Group` named ``value`` ("C4", "D8", "SO2", "O2"); a usage error otherwise."""
    if isinstance(value, Group):
        return value
    text = value.strip().upper().replace("(", "").replace(")", "") if isinstance(value, str) else None
    if text in ("SO2", "O2"):
        return Group(text)
    if is_trivial(value):
        raise _usage(f"group={shown(value)} is the trivial group: its one element is the identity, so there is "
                     f"nothing to check; {TRIVIAL_REMEDY}.")
    match = _GROUP.match(text or "")
    if match and MIN_ORDER[match.group(1)] <= int(match.group(2)) <= MAX_ORDER:
        return Group(match.group(1), int(match.group(2)))
    if match:
        raise _usage(
            f"group={shown(value)} has {match.group(2)} rotations; pass N between {MIN_ORDER[match.group(1)]} and "
            f"{MAX_ORDER} (every element is one trial), or 'SO2' / 'O2' for a sweep of the continuous group."
        )
    raise _usage(
        f"Unknown group {shown(value)}; use 'C<N>' (N rotations, e.g. 'C4'), 'D<N>' (rotations and "
        f"reflections, e.g. 'D4'), 'SO2' (all rotations) or 'O2' (all rotations and reflections)."
    )


@dataclass(frozen=True)
class Element:
    """``R_θ ∘ F^flip``: mirror the W axis when ``flip``, then rotate by ``angle`` degrees (CCW as displayed).

    ``k`` is the rotation's index in a finite group of ``n`` rotations (``angle = 360·k/n``).
    """

    angle: float
    flip: bool = False
    k: int | None = None
    n: int | None = None

    @property
    def on_grid(self) -> bool:
        """Whether the element permutes pixels exactly (a multiple of 90°, possibly with a flip)."""
        return math.isclose(self.angle % 90.0, 0.0, abs_tol=1e-9) or math.isclose(self.angle % 90.0, 90.0, abs_tol=1e-9)

    @property
    def label(self) -> str:
        """``rotation 45° (2π·1/8)``, ``rotation 90° ∘ flip``, ``flip``: what reports print."""
        if self.k is not None and self.n is not None and self.k:
            rotation = f"rotation {_degrees(self.angle)} (2π·{self.k}/{self.n})"
        elif self.angle % 360:
            rotation = f"rotation {_degrees(self.angle)}"
        else:
            rotation = ""
        if self.flip:
            return f"{rotation} ∘ flip" if rotation else "flip"
        return rotation or "identity"

    @property
    def params(self) -> dict[str, Any]:
        return {"angle": self.angle, "flip": self.flip}

    def spatial(self, x: "Tensor", dims: tuple[int, int]) -> "Tensor":
        """Return ``x`` moved on its plane ``dims`` (rows, columns) by this element."""
        import torch

        if self.flip:
            x = torch.flip(x, (dims[1],))
        quarter = self.angle / 90.0
        if self.on_grid:
            return torch.rot90(x, int(round(quarter)) % 4, dims) if round(quarter) % 4 else x
        return rotate_bandlimited(x, self.angle, dims)


def _degrees(angle: float) -> str:
    return f"{angle:g}°"


def rotate_bandlimited(x: "Tensor", angle: float, dims: tuple[int, int] = (-2, -1)) -> "Tensor":
    """Rotate ``x`` by ``angle`` degrees: upsample ``OVERSAMPLE``× by zero-padding its spectrum,
    rotate bilinearly there, and low-pass back to the original grid.

    Bilinear interpolation on the original grid attenuates the high frequencies of what it rotates;
    done on a finer grid of the same band-limited signal, and low-passed back, its error falls by
    about ``OVERSAMPLE²`` (as escnn's equivariance checks rotate at a higher resolution).
    """
    from pytest_equivariance.check.transforms import rotate

    moved = x.movedim((dims[0], dims[1]), (-2, -1))
    h, w = moved.shape[-2:]
    fine = _resample_plane(moved, (h * OVERSAMPLE, w * OVERSAMPLE))
    out = _resample_plane(rotate(fine, angle), (h, w))
    return out.movedim((-2, -1), (dims[0], dims[1]))


def _resample_plane(x: "Tensor", size: tuple[int, int]) -> "Tensor":
    """Resample the last two dims of ``x`` to ``size`` by zero-padding or cropping its real 2-D spectrum.

    One ``rfft2`` and one ``irfft2``: the fast form of :func:`.resample.resample_fourier` for a plane
    (an even axis's Nyquist bin is kept on one side, which band-limited inputs leave near zero).
    """
    import torch

    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    h, w = work.shape[-2:]
    big_h, big_w = size
    spectrum = torch.fft.rfft2(work)
    rows = min(h, big_h)
    low, high = (rows + 1) // 2, rows // 2
    cols = min(w, big_w) // 2 + 1
    out = spectrum.new_zeros((*spectrum.shape[:-2], big_h, big_w // 2 + 1))
    out[..., :low, :cols] = spectrum[..., :low, :cols]
    if high:
        out[..., big_h - high :, :cols] = spectrum[..., h - high :, :cols]
    return (torch.fft.irfft2(out, s=(big_h, big_w)) * (big_h * big_w / (h * w))).to(x.dtype)


# --------------------------------------------------------------------------------------------
# Fields: how an element acts on channels


@dataclass(frozen=True)
class Block:
    """One field: ``kind`` is "scalar", "regular", "vector", "irrep" (``freq`` k) or "sign"."""

    kind: str
    size: int
    freq: int = 0

    @property
    def name(self) -> str:
        return f"irrep({self.freq})" if self.kind == "irrep" else self.kind


@dataclass
class Fields:
    """How a group acts on the channels of one feature map (see the module docstring)."""

    group: Group
    blocks: tuple[Block, ...] = ()
    library: Any = None  # an escnn / e2cnn FieldType
    function: Callable[[Element, "Tensor"], "Tensor"] | None = None
    description: str = "scalar"
    _cache: dict[Any, "Tensor"] = field(default_factory=dict, repr=False)

    @property
    def trivial(self) -> bool:
        return self.library is None and self.function is None and all(b.kind == "scalar" for b in self.blocks)

    def act(self, element: Element, y: "Tensor") -> "Tensor":
        """Return ``y`` with every pixel's channels (dim 1) acted on by ``element``'s representation."""
        import torch

        if self.function is not None:
            return self.function(element, y)
        if self.trivial:
            return y
        key = (element.angle, element.flip, y.dtype, y.device)
        matrix = self._cache.get(key)
        if matrix is None:
            matrix = self.matrix(element).to(dtype=y.dtype, device=y.device)
            self._cache[key] = matrix
        return torch.einsum("ij,nj...->ni...", matrix, y)

    def matrix(self, element: Element) -> "Tensor":
        """Return the ``C × C`` matrix of ``element`` on the channels (float64)."""
        import torch

        if self.library is not None:
            return torch.as_tensor(library_matrix(self.library, element), dtype=torch.float64)
        parts = [_block_matrix(b, element, self.group) for b in self.blocks]
        return torch.block_diag(*parts)


def _block_matrix(block: Block, element: Element, group: Group) -> "Tensor":
    import torch

    if block.kind == "scalar":
        return torch.ones(1, 1, dtype=torch.float64)
    if block.kind == "sign":
        return torch.full((1, 1), -1.0 if element.flip else 1.0, dtype=torch.float64)
    if block.kind == "regular":
        return _regular_matrix(element, group)
    # vector and irrep(k): (u along W, v along H, pointing down), rotated and mirrored with the grid.
    theta = math.radians(element.angle * (1 if block.kind == "vector" else block.freq))
    c, s = math.cos(theta), math.sin(theta)
    rotation = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    mirror = torch.tensor([[-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64) if element.flip else torch.eye(2, dtype=torch.float64)
    if block.kind == "irrep" and block.freq == 0:
        return torch.eye(1, dtype=torch.float64)
    return rotation @ mirror


def _regular_matrix(element: Element, group: Group) -> "Tensor":
    """The regular representation: ``e_h -> e_{g h}``, elements indexed ``f·N + k`` for ``R_k F^f``."""
    import torch

    n = group.n
    assert n is not None and element.k is not None
    order = group.order or n
    out = torch.zeros(order, order, dtype=torch.float64)
    f1, k1 = int(element.flip), element.k
    for f2 in range(2 if group.has_flips else 1):
        for k2 in range(n):
            # R_{k1} F^{f1} R_{k2} F^{f2} = R_{k1 + (-1)^{f1} k2} F^{f1 + f2}
            k = (k1 + (-k2 if f1 else k2)) % n
            f = (f1 + f2) % 2
            out[f * n + k, f2 * n + k2] = 1.0
    return out


def parse_fields(value: Any, group: Group, channels: int, *, where: str, ndim: int) -> Fields:
    """Return the :class:`Fields` that ``value`` names for a map of ``channels`` channels.

    ``value`` is one field name (repeated to fill the channels), a sequence of names laid out along
    the channel dim, an escnn / e2cnn ``FieldType``, or a callable ``(element, tensor) -> tensor``.
    ``where`` names the map in messages ("input", "output['flow']").
    """
    if callable(value) and not isinstance(value, str) and not is_field_type(value):
        return Fields(group, function=value, description=getattr(value, "__name__", "callable"))
    if is_field_type(value):
        if value.size != channels:
            raise _usage(
                f"The {where} field type has {value.size} channels but the {where} has {channels}; pass "
                f"the field type of that tensor."
            )
        return Fields(group, library=value, description=describe_field_type(value))
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, Sequence) else None
    if not names or not all(isinstance(n, str) for n in names):
        raise _usage(
            f"{where} fields {shown(value)} are not a layout; pass a field name ({', '.join(FIELD_NAMES)}), a "
            f"list of them, an escnn or e2cnn FieldType, or a callable (element, tensor) -> tensor."
        )
    blocks = [_block(name, group, where, ndim) for name in names]
    if len(blocks) == 1:
        size = blocks[0].size
        if channels % size:
            raise _usage(
                f"{channels} {where} channels cannot hold {blocks[0].name} fields of {group.name} "
                f"({size} channels each); pass a layout that fills the channels, e.g. a list of field names."
            )
        blocks = blocks * (channels // size)
    total = sum(b.size for b in blocks)
    if total != channels:
        raise _usage(
            f"The {where} fields {names} take {total} channels but the {where} has {channels}; pass one "
            f"field per block of channels."
        )
    kinds = sorted({b.name for b in blocks})
    counts = ", ".join(f"{sum(1 for b in blocks if b.name == k)} {k}" for k in kinds)
    return Fields(group, blocks=tuple(blocks), description=counts)


def layouts(
    group: Group, library: Any, input_fields: Any, output_fields: Any, input_shape: Sequence[int],
    outputs: Sequence[tuple[str, "Tensor"]],
) -> tuple[Fields, dict[str, Fields]]:
    """Return the input's :class:`Fields` and each output leaf's (by path) for a check.

    ``library`` is an escnn / e2cnn module's ``(in_type, out_type)``, or None for plain fields
    (``"scalar"`` where none are given). Leaves without a channel dim carry no fields.
    """
    if library is not None:
        fin = Fields(group, library=library[0], description=describe_field_type(library[0]))
        out_fields = Fields(group, library=library[1], description=describe_field_type(library[1]))
        return fin, {path: out_fields for path, _ in outputs}
    check_leaf_keys(output_fields, [path for path, _ in outputs])
    nd = len(input_shape)
    fin = parse_fields("scalar" if input_fields is None else input_fields, group, input_shape[1], where="input", ndim=nd)
    outs = {}
    for path, leaf in outputs:
        if leaf.dim() >= 2:
            value = leaf_fields("scalar" if output_fields is None else output_fields, path)
            outs[path] = parse_fields(value, group, leaf.shape[1], where=f"output{path}", ndim=nd)
    return fin, outs


def element_transforms(
    group: Group, elements: Sequence[Element], dims: tuple[int, int], mode: str, fin: Fields,
    outs: Mapping[str, Fields], *, library: Any = None,
) -> list[Any]:
    """Return one ``Transform`` per element, acting on the grid and on the fields ``fin`` / ``outs``."""
    from pytest_equivariance.check.transforms import group_element

    acts_out = any(not f.trivial for f in outs.values())
    out = []
    for element in elements:
        if library is not None:
            library_element(library[0], element)  # a usage error for elements outside its group

        def fiber_in(x: "Tensor", element: Element = element) -> "Tensor":
            return fin.act(element, x)

        def fiber_out(y: "Tensor", leaf: str, element: Element = element) -> "Tensor":
            fields = outs.get(leaf)
            return y if fields is None else fields.act(element, y)

        out.append(group_element(element, dims, mode, None if fin.trivial else fiber_in,
                                 fiber_out if acts_out else None))
    return out


def _block(name: str, group: Group, where: str, ndim: int) -> Block:
    text = name.strip().lower()
    if text == "scalar":
        return Block("scalar", 1)
    if text == "regular":
        if not group.finite:
            raise _usage(
                f"regular fields need a finite group, and {group.name} is continuous; use irrep(k) "
                f"fields, or group='C<N>' / 'D<N>'."
            )
        return Block("regular", group.order or 0)
    if text == "sign":
        if not group.has_flips:
            raise _usage(
                f"sign fields change sign under reflections, which {group.name} does not have; use "
                f"group='D<N>' or 'O2', or scalar fields."
            )
        return Block("sign", 1)
    if text == "vector" or _IRREP.match(text):
        if ndim != 4:
            raise _usage(
                f"{text} fields are 2-D vectors on an image plane, but the {where} has {ndim - 2} "
                f"spatial dims; use scalar fields, or check a (N, C, H, W) model."
            )
        if text == "vector":
            return Block("vector", 2)
        freq = int(_IRREP.match(text).group(1))  # type: ignore[union-attr]
        return Block("scalar", 1) if freq == 0 else Block("irrep", 2, freq)
    raise _usage(f"Unknown field {shown(name)} in the {where} fields; use one of {', '.join(FIELD_NAMES)}.")


def leaf_fields(value: Any, path: str) -> Any:
    """Return the field value for output leaf ``path`` from a dict of them (keyed by leaf path,
    dict key or tuple index), or ``value`` itself when it is not a dict."""
    if not isinstance(value, Mapping):
        return value
    for key, fields in value.items():
        if names_leaf(key, path):
            return fields
    return "scalar"


def names_leaf(key: Any, path: str) -> bool:
    """Whether a key of an ``output_fields`` dict names output leaf ``path``."""
    return path in (str(key), f"[{key!r}]", f"[{key}]", f".{key}")


def check_leaf_keys(output_fields: Any, paths: Sequence[str]) -> None:
    """Raise for a key of an ``output_fields`` dict that names no output leaf: it would be ignored."""
    if not isinstance(output_fields, Mapping):
        return
    for key in output_fields:
        if not any(names_leaf(key, path) for path in paths):
            outputs = ", ".join(p for p in paths if p) or "a single tensor, with no keys"
            raise _usage(
                f"output_fields names the output {shown(key)}, but the model's outputs are {outputs}; key "
                f"output_fields by those names (a key that names nothing would leave its fields unchecked)."
            )


# --------------------------------------------------------------------------------------------
# escnn and e2cnn, duck-typed: neither is a dependency


def library_of(obj: Any) -> str | None:
    """Return "escnn" or "e2cnn" when ``obj`` comes from that library, else None."""
    root = type(obj).__module__.split(".")[0]
    return root if root in ("escnn", "e2cnn") else None


def is_field_type(obj: Any) -> bool:
    """Whether ``obj`` is an escnn or e2cnn ``FieldType``."""
    return library_of(obj) is not None and hasattr(obj, "gspace") and hasattr(obj, "representation") \
        and hasattr(obj, "size")


def is_equivariant_module(obj: Any) -> bool:
    """Whether ``obj`` is an escnn or e2cnn ``EquivariantModule`` (it has field types in and out)."""
    return library_of(obj) is not None and is_field_type(getattr(obj, "in_type", None)) \
        and is_field_type(getattr(obj, "out_type", None))


def describe_field_type(field_type: Any) -> str:
    """Return ``"2 regular, 1 irrep_1"``: a field type's representations and how many of each."""
    counts: dict[str, int] = {}
    for rep in getattr(field_type, "representations", []):
        name = getattr(rep, "name", str(rep))
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {name}" for name, n in counts.items()) or f"{field_type.size} channels"


def library_group(field_type: Any) -> Group:
    """Return the :class:`Group` of an escnn / e2cnn field type's gspace."""
    group = field_type.gspace.fibergroup
    name = type(group).__name__
    if name == "CyclicGroup":
        return Group("C", int(group.order()))
    if name == "DihedralGroup":
        return Group("D", int(group.order()) // 2)
    if name in ("SO2", "O2"):
        return Group(name)
    raise _usage(
        f"The model's gspace acts with {group}, which is not a group of plane rotations and "
        f"reflections; check it with its library's own tools."
    )


def library_element(field_type: Any, element: Element) -> Any:
    """Return the library's own element for ``element`` (its rotation index, flip and angle)."""
    group = field_type.gspace.fibergroup
    kind = library_group(field_type)
    radians = math.radians(element.angle)
    if kind.finite:
        k = element.angle * kind.n / 360.0  # type: ignore[operator]
        if not math.isclose(k, round(k), abs_tol=1e-6):
            raise _usage(f"{element.label} is not an element of the model's group {kind.name}; check a subgroup of it.")
        k = int(round(k)) % kind.n  # type: ignore[operator]
        value: Any = (int(element.flip), k) if kind.has_flips else k
    else:
        value = (int(element.flip), radians) if kind.has_flips else radians
    if element.flip and not kind.has_flips:
        raise _usage(f"{element.label} is not an element of the model's group {kind.name}; check rotations only.")
    if library_of(field_type) == "escnn":
        return group.element(value)
    return value  # e2cnn's representations take the plain value


def library_matrix(field_type: Any, element: Element) -> Any:
    """Return the representation matrix of ``element`` on ``field_type``'s channels."""
    return field_type.representation(library_element(field_type, element))


def wrap_library_module(module: Any) -> Any:
    """Return a plain ``nn.Module`` that takes and returns tensors around an escnn / e2cnn module."""
    from torch import nn

    lib = library_of(module)
    geometric = __import__(f"{lib}.nn", fromlist=["GeometricTensor"]).GeometricTensor

    class FieldModule(nn.Module):
        """``module`` between tensors: inputs wrapped in its ``in_type``, the output's ``.tensor``."""

        def __init__(self) -> None:
            super().__init__()
            self.module = module
            self.in_type, self.out_type = module.in_type, module.out_type

        def forward(self, x: "Tensor") -> "Tensor":
            if x.dim() < 2 or x.shape[1] != self.in_type.size:
                raise _usage(
                    f"The {lib} module takes {self.in_type.size} input channels (its in_type), got inputs "
                    f"of shape {tuple(x.shape)}; pass input_shape=(N, {self.in_type.size}, H, W) or "
                    f"inputs with that many channels."
                )
            return self.module(geometric(x, self.in_type)).tensor

    wrapper = FieldModule()
    wrapper.train(module.training)
    setattr(wrapper, FIELD_TYPES, (module.in_type, module.out_type))
    return wrapper
