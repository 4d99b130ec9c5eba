"""How a group element acts on the channels of a feature map: scalar, regular, vector, irrep and sign fields.

A :class:`Fields` layout says how an element acts on the channels of a feature map at each sample
(the *fibre*): blocks of scalar, regular, vector, ``irrep(k)`` or sign fields laid out along the
channel dim, an escnn or e2cnn ``FieldType`` (its own representation matrices), or a callable. The
spatial action and the fibre action commute (one moves samples, the other mixes channels per
sample). Every block asks the element for its matrix (:mod:`.groups`, :mod:`.volume_groups`), so
the same layouts serve the plane's groups and the groups of space. See ``docs/groups.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_equivariance.check.groups import Group
from pytest_equivariance.check.libraries import describe_field_type, is_field_type, library_element, library_matrix
from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    from torch import Tensor

#: Field names a layout accepts, for error messages.
FIELD_NAMES = ("scalar", "regular", "vector", "irrep(k)", "sign")

_IRREP = re.compile(r"^irrep\((\d+)\)$")


def _usage(message: str) -> EquivarianceUsageError:
    return EquivarianceUsageError(message)


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
    function: Callable[[Any, "Tensor"], "Tensor"] | None = None
    description: str = "scalar"
    _cache: dict[Any, "Tensor"] = field(default_factory=dict, repr=False)

    @property
    def trivial(self) -> bool:
        return self.library is None and self.function is None and all(b.kind == "scalar" for b in self.blocks)

    def act(self, element: Any, y: "Tensor") -> "Tensor":
        """Return ``y`` with every pixel's channels (dim 1) acted on by ``element``'s representation."""
        import torch

        if self.function is not None:
            return self.function(element, y)
        if self.trivial:
            return y
        key = (element.label, y.dtype, y.device)
        matrix = self._cache.get(key)
        if matrix is None:
            matrix = self.matrix(element).to(dtype=y.dtype, device=y.device)
            self._cache[key] = matrix
        return torch.einsum("ij,nj...->ni...", matrix, y)

    def matrix(self, element: Any) -> "Tensor":
        """Return the ``C × C`` matrix of ``element`` on the channels (float64)."""
        import torch

        if self.library is not None:
            return torch.as_tensor(library_matrix(self.library, element), dtype=torch.float64)
        parts = [_block_matrix(b, element, self.group) for b in self.blocks]
        return torch.block_diag(*parts)


def _block_matrix(block: Block, element: Any, group: Group) -> "Tensor":
    import torch

    if block.kind == "scalar":
        return torch.ones(1, 1, dtype=torch.float64)
    if block.kind == "sign":
        return torch.full((1, 1), -1.0 if element.flip else 1.0, dtype=torch.float64)
    if block.kind == "regular":
        return group.regular_matrix(element)
    if block.kind == "vector":
        return element.vector_matrix()
    return element.vector_matrix(block.freq) if group.spatial_dims == 2 else element.irrep_matrix(block.freq)


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
    group: Group, elements: Sequence[Any], dims: tuple[int, ...], mode: str, fin: Fields,
    outs: Mapping[str, Fields], *, library: Any = None,
) -> list[Any]:
    """Return one ``Transform`` per element, acting on the grid and on the fields ``fin`` / ``outs``."""
    from pytest_equivariance.check.transforms import group_element

    acts_out = any(not f.trivial for f in outs.values())
    out = []
    for element in elements:
        if library is not None:
            library_element(library[0], element)  # a usage error for elements outside its group

        def fiber_in(x: "Tensor", element: Any = element) -> "Tensor":
            return fin.act(element, x)

        def fiber_out(y: "Tensor", leaf: str, element: Any = element) -> "Tensor":
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
                f"fields, or a finite group ('C<N>', 'D<N>', 'O', 'Oh')."
            )
        return Block("regular", group.order or 0)
    if text == "sign":
        if not group.has_flips:
            raise _usage(
                f"sign fields change sign under reflections, which {group.name} does not have; use "
                f"a group with reflections ('D<N>', 'O2', 'Oh', 'O3'), or scalar fields."
            )
        return Block("sign", 1)
    if text == "vector" or _IRREP.match(text):
        space = group.spatial_dims
        if ndim != space + 2:
            kind = "2-D vectors on an image plane" if space == 2 else "3-D vectors in a volume"
            shape = "(N, C, H, W)" if space == 2 else "(N, C, D, H, W)"
            raise _usage(
                f"{text} fields are {kind}, but the {where} has {ndim - 2} spatial dims; use "
                f"scalar fields, or check a {shape} model."
            )
        if text == "vector":
            return Block("vector", space)
        freq = int(_IRREP.match(text).group(1))  # type: ignore[union-attr]
        if freq == 0:
            return Block("scalar", 1)
        if space == 2:
            return Block("irrep", 2, freq)
        from pytest_equivariance.check.volume_groups import irrep_size

        return Block("irrep", irrep_size(freq, where), freq)
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

