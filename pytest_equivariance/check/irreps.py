"""How an element of O(3) or E(3) acts on the values of a point cloud: irreps, points, invariants.

A field of a point cloud or graph is declared by a string:

- an irreps declaration in e3nn's notation, ``"8x0e + 4x1o + 2x2e"``: ``mul x l p``, ``l`` the order
  (``2l+1`` values each), ``p`` the parity (``e`` even, ``o`` odd). The last dim of the tensor holds
  the irreps one after the other, each copy's ``2l+1`` values together (e3nn's layout); ``1o`` is a
  Cartesian vector ``(x, y, z)``, ``0o`` a pseudoscalar, ``1e`` a pseudovector (:mod:`.so3`).
- ``"points"``: Cartesian positions, rotated *and translated* (vectors, ``"1x1o"``, are only rotated).
- ``"invariant"``: left as it is (atom types, ``edge_index``, a batch vector, an energy).

An :class:`Irreps` is a small immutable value, parsed once; a :class:`Field` is what a check asks of a
declaration. The action is computed in float64 (:mod:`.so3`) and cast back to the tensor's dtype.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Iterator

from pytest_equivariance.check import so3
from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    from torch import Tensor

    from pytest_equivariance.check.graphs import GraphInputs
    from pytest_equivariance.check.runner import Leaves

_TERM = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+)\s*([eo])\s*$")
#: Names a field may be declared by besides an irreps string.
POINTS, INVARIANT = "points", "invariant"
_ALIASES = {"vectors": "1x1o", "vector": "1x1o", "scalars": INVARIANT, "scalar": INVARIANT, None: INVARIANT}


@dataclass(frozen=True)
class Irreps:
    """A direct sum of O(3) irreps, ``((mul, l, p), ...)``: what ``"8x0e + 4x1o"`` parses to."""

    terms: tuple[tuple[int, int, int], ...]

    @classmethod
    def parse(cls, text: Any) -> "Irreps":
        """Return the irreps ``text`` declares (e3nn's notation; an e3nn ``Irreps`` object works too)."""
        if isinstance(text, Irreps):
            return text
        source = str(text) if type(text).__name__ in ("Irreps", "Irrep") else text
        if not isinstance(source, str) or not source.strip():
            raise EquivarianceUsageError(
                f"{shown(text)} is not an irreps declaration; write one as e3nn does, e.g. '8x0e + 4x1o + 2x2e'."
            )
        terms = []
        for part in source.split("+"):
            match = _TERM.match(part)
            if match is None:
                raise EquivarianceUsageError(
                    f"{part.strip()!r} in irreps {source!r} is not of the form 'MULxLP'; write each term as "
                    f"e3nn does, e.g. '8x0e' or '1o'."
                )
            mul, l, parity = match.groups()  # noqa: E741
            terms.append((int(mul) if mul is not None else 1, int(l), 1 if parity == "e" else -1))
        return cls(tuple(terms))

    @property
    def dim(self) -> int:
        """The number of values the irreps take in a tensor's last dim: ``Σ mul·(2l+1)``."""
        return sum(mul * (2 * l + 1) for mul, l, _ in self.terms)

    @property
    def lmax(self) -> int:
        return max((l for _, l, _ in self.terms), default=0)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        return iter(self.terms)

    def __str__(self) -> str:
        return " + ".join(f"{mul}x{l}{'e' if p == 1 else 'o'}" for mul, l, p in self.terms)

    def matrix(self, R: "Tensor") -> "Tensor":  # noqa: N803
        """Return the block-diagonal matrices ``(..., dim, dim)`` of ``R`` ``(..., 3, 3)``, in float64."""
        import torch

        R = torch.as_tensor(R)
        out = torch.zeros(*R.shape[:-2], self.dim, self.dim, dtype=torch.float64, device=R.device)
        start = 0
        for (mul, l, _), D in zip(self.terms, so3.irreps_D([(l, p) for _, l, p in self.terms], R)):  # noqa: N806
            for _ in range(mul):
                out[..., start:start + 2 * l + 1, start:start + 2 * l + 1] = D
                start += 2 * l + 1
        return out

    def apply(self, R: "Tensor", x: "Tensor") -> "Tensor":  # noqa: N803
        """Return ``D(R)·x`` for every element: ``R`` ``(k, 3, 3)``, ``x`` ``(..., dim)`` -> ``(k, ..., dim)``, float64.

        Block by block (never the whole ``dim × dim`` matrix): each term's copies are a ``(mul, 2l+1)``
        slice of the last dim.
        """
        import torch

        x = x.to(torch.float64)
        blocks = so3.irreps_D([(l, p) for _, l, p in self.terms], R)
        out, start = [], 0
        for (mul, l, _), D in zip(self.terms, blocks):  # noqa: N806, E741
            width = mul * (2 * l + 1)
            piece = x[..., start:start + width].reshape(*x.shape[:-1], mul, 2 * l + 1)
            moved = torch.einsum("kij,...mj->k...mi", D, piece)
            out.append(moved.reshape(D.shape[0], *x.shape[:-1], width))
            start += width
        return torch.cat(out, dim=-1) if out else x.expand(R.shape[0], *x.shape).clone()


@dataclass(frozen=True)
class Field:
    """How an element acts on one tensor: ``kind`` is "points", "irreps" or "invariant"."""

    kind: str
    irreps: Irreps | None = None

    @classmethod
    def parse(cls, declaration: Any) -> "Field":
        """Return the field ``declaration`` names: "points", "vectors", "invariant", None, or irreps."""
        if isinstance(declaration, Field):
            return declaration
        name = declaration.strip().lower() if isinstance(declaration, str) else declaration
        name = _ALIASES.get(name, name) if isinstance(name, (str, type(None))) else name
        if name == POINTS:
            return cls(POINTS)
        if name == INVARIANT:
            return cls(INVARIANT)
        return cls("irreps", Irreps.parse(name))

    def __str__(self) -> str:
        return str(self.irreps) if self.irreps is not None else self.kind

    def width(self) -> int | None:
        """The size the tensor's last dim must have (None: any)."""
        return 3 if self.kind == POINTS else (self.irreps.dim if self.irreps is not None else None)

    def require_fits(self, t: "Tensor", where: str) -> None:
        """Raise in one sentence unless tensor ``t`` can carry this field."""
        width = self.width()
        if width is None:
            return
        last = t.shape[-1] if t.dim() else None
        if last != width or not t.is_floating_point():
            what = "3 coordinates (x, y, z)" if self.kind == POINTS else f"the {width} values of '{self}'"
            raise EquivarianceUsageError(
                f"{where} is declared {self} but has shape {tuple(t.shape)} ({t.dtype}); its last dim must hold "
                f"{what} as floats, so fix the declaration or pass the tensor it describes."
            )

    def act(self, R: "Tensor", t: "Tensor", shift: "Tensor") -> "Tensor":  # noqa: N803
        """Return ``g·t`` for every element ``(R, shift)``: ``(k, *t.shape)`` in float64 (invariants: repeated)."""
        import torch

        if self.kind == INVARIANT:
            return t.expand(R.shape[0], *t.shape)
        if self.kind == POINTS:
            moved = torch.einsum("kij,...j->k...i", R, t.to(torch.float64))
            return moved + shift.reshape(shift.shape[0], *([1] * (t.dim() - 1)), 3)
        assert self.irreps is not None
        return self.irreps.apply(R, t)


# --------------------------------------------------------------------------------------------
# Declarations of a cloud's inputs and outputs


def _single(declared: Any) -> bool:
    """Whether ``declared`` is one declaration (e3nn's ``Irreps`` is a tuple, but declares one tensor)."""
    return not isinstance(declared, (Mapping, tuple, list)) or type(declared).__name__ in ("Irreps", "Irrep")


def declared_inputs(graph: "GraphInputs", declared: Any, entry: str) -> dict[Any, Field]:
    """Each transformed input's field, checked against its tensor (``input_fields=`` of the point-cloud checks)."""
    if declared is None:
        if graph.form == "tensor":
            declared = {0: POINTS}
        elif "pos" in graph.tensors:
            declared = {"pos": POINTS}
        else:
            raise EquivarianceUsageError(
                f"{entry} cannot tell which inputs are positions and which are features; pass input_fields=, "
                f"e.g. ('points', '8x0e', None) for model(pos, x, edge_index) or {{'pos': 'points', 'x': '8x0e'}}."
            )
    elif graph.form == "tensor" and _single(declared):
        declared = {0: declared}
    elif isinstance(declared, (tuple, list)) and not _single(declared):
        if graph.form != "tuple" or len(declared) != len(graph.original):
            size = len(graph.original) if graph.form == "tuple" else 1
            raise EquivarianceUsageError(
                f"input_fields has {len(declared)} entries for {size} positional input(s); give one declaration per "
                f"argument (None for those that do not move), or a mapping {{key: declaration}}."
            )
        declared = {i: d for i, d in enumerate(declared) if d is not None}
    elif not isinstance(declared, Mapping):
        raise EquivarianceUsageError(
            f"input_fields={shown(declared)} is not a declaration of the inputs; pass a mapping {{key: declaration}}, "
            f"a tuple with one declaration per argument, or one declaration for a single tensor."
        )
    fields = {}
    for key, declaration in declared.items():
        if key not in graph.tensors:
            raise EquivarianceUsageError(
                f"input_fields names {key!r}, which is no tensor of the inputs (their keys: "
                f"{', '.join(map(repr, graph.tensors))}); declare the inputs by those keys."
            )
        fld = Field.parse(declaration)
        fld.require_fits(graph.tensors[key], graph.where(key))
        if fld.kind != INVARIANT:
            fields[key] = fld
    return fields


def declared_outputs(declared: Any, leaves: "Leaves", entry: str) -> dict[str, Field]:
    """Each declared output leaf's field, keyed by the leaf's path, checked against its tensor (``output_fields=``)."""
    if declared is None:
        return {}
    paths = [p for p, _ in leaves]
    if isinstance(declared, Mapping):
        named = {f"[{k!r}]": v for k, v in declared.items()}
    elif isinstance(declared, (tuple, list)) and not _single(declared):
        named = {f"[{i}]": v for i, v in enumerate(declared)}
    elif len(leaves) == 1:
        named = {paths[0]: declared}
    else:
        raise EquivarianceUsageError(
            f"output_fields={shown(declared)} is one declaration, but the model returns {len(leaves)} outputs "
            f"({', '.join(paths)}); declare each, by tuple position or mapping key."
        )
    fields = {}
    for path, declaration in named.items():
        if path not in paths:
            raise EquivarianceUsageError(
                f"output_fields declares output{path}, which the model does not return (it returns "
                f"{', '.join('output' + p for p in paths)}); declare the outputs it returns."
            )
        fld = Field.parse(declaration)
        fld.require_fits(dict(leaves)[path], f"output{path}")
        fields[path] = fld
    return fields
