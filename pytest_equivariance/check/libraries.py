"""escnn and e2cnn, duck-typed (neither is a dependency): their field types, groups, elements and modules.

A library's ``FieldType`` carries its own representation matrices; here its gspace's group becomes
one of ours (:class:`.groups.Group`), our elements become the library's own, and an
``EquivariantModule`` becomes a plain module between tensors, so the checks read it as any model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pytest_equivariance.check.groups import Group
from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    from torch import Tensor

#: Attribute of a wrapped escnn / e2cnn module holding its (in_type, out_type).
FIELD_TYPES = "_equivariance_field_types"


def _usage(message: str) -> EquivarianceUsageError:
    return EquivarianceUsageError(message)


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
    if getattr(group, "name", None) in _SPACE_GROUPS:  # escnn's groups of 3-D rotations
        return _SPACE_GROUPS[group.name]
    raise _usage(
        f"The model's gspace acts with {group}, which is none of the groups checked here (C<N>, D<N>, "
        f"SO2, O2 on images; O, Oh, SO3, O3 on volumes); check it with its library's own tools."
    )


#: escnn's names of the groups of space we check, and ours.
_SPACE_GROUPS = {"Octahedral": Group("O", 24), "FullOctahedral": Group("Oh", 24), "SO(3)": Group("SO3"),
                 "O(3)": Group("O3")}


def library_element(field_type: Any, element: Any) -> Any:
    """Return the library's own element for ``element`` (its rotation index, flip and angle)."""
    group = field_type.gspace.fibergroup
    kind = library_group(field_type)
    if kind.spatial_dims == 3:
        return _space_element(group, kind, element)
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


def _space_element(group: Any, kind: Group, element: Any) -> Any:
    """escnn's element of a group of space for ``element``: its rotation matrix, and the inversion
    where the group has one (escnn's ``[int | MAT]``)."""
    import numpy as np

    if element.flip and not kind.has_flips:
        raise _usage(f"{element.label} is not an element of the model's group {kind.name}; check rotations only.")
    if kind.finite and not element.on_grid:
        raise _usage(
            f"{element.label} is not an element of the model's group {kind.name}, which holds the cube's rotations "
            f"only; check group='O' (or 'Oh')."
        )
    rotation = np.array(element.rotation, dtype=np.float64)
    if kind.kind == "O3":
        return group.element((int(element.flip), rotation), "MAT")
    if kind.kind == "Oh":
        return group.element((int(element.flip), rotation), "[int | MAT]")
    return group.element(rotation, "MAT")


def library_matrix(field_type: Any, element: Any) -> Any:
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
                spatial = "H, W" if getattr(self.in_type.gspace, "dimensionality", 2) == 2 else "D, H, W"
                raise _usage(
                    f"The {lib} module takes {self.in_type.size} input channels (its in_type), got inputs "
                    f"of shape {tuple(x.shape)}; pass input_shape=(N, {self.in_type.size}, {spatial}) or "
                    f"inputs with that many channels."
                )
            return self.module(geometric(x, self.in_type)).tensor

    wrapper = FieldModule()
    wrapper.train(module.training)
    setattr(wrapper, FIELD_TYPES, (module.in_type, module.out_type))
    return wrapper

