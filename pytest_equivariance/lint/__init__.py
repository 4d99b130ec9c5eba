"""Static core: model -> graph -> findings. Imports neither pytest nor rich.

The entry points are :func:`lint` (a list of findings) and :func:`lint_model` (a full
:class:`~pytest_equivariance.lint.findings.ModelReport`: findings, trace mode, coverage, errors).
torch is imported only when they are called.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from pytest_equivariance.lint.findings import Finding, ModelReport

if TYPE_CHECKING:
    from torch import nn

__all__ = ["lint", "lint_model"]


def lint_model(
    model: "nn.Module",
    example_input_or_shape: Any = None,
    *,
    target: str = "<model>",
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    per_module_ignores: Mapping[str, Sequence[str]] | None = None,
    respect_suppressions: bool = True,
) -> ModelReport:
    """Return a :class:`ModelReport` of the aliasing and equivariance hazards in ``model``.

    ``example_input_or_shape`` is a tensor, a tuple of tensors, or a shape such as
    ``(1, 3, 224, 224)``; ``None`` infers one from the first conv or linear layer
    (:func:`pytest_equivariance.inputs.infer_input_shape`). Only shapes are used: the model runs on
    the ``meta`` device, so linting costs no compute and works for models built under
    ``torch.device("meta")``.

    ``select`` / ``ignore`` take rule codes or prefixes (``"EQ00"``); ``None`` selects the rules on
    by default. ``per_module_ignores`` maps qualified-name globs to codes
    (``{"layer*.downsample.*": ["EQ002"]}``); ``# equiv: ignore[EQ001]`` comments on a finding's
    source line suppress it unless ``respect_suppressions`` is false.

    Never raises for a problem inside the model: what could not be analysed is listed in
    ``report.errors``. Raises :class:`~pytest_equivariance.errors.EquivarianceUsageError` for bad
    arguments (an unknown rule code, a model that is not an ``nn.Module``).

    Example::

        >>> import torchvision
        >>> report = lint_model(torchvision.models.resnet18(), (1, 3, 224, 224))
        >>> sorted({f.code for f in report.findings})
        ['EQ001', 'EQ002']
    """
    from torch import nn

    from pytest_equivariance.errors import EquivarianceUsageError, InputShapeError
    from pytest_equivariance.guards import require_example, require_flag, require_module
    from pytest_equivariance.inputs import infer_input_shape
    from pytest_equivariance.lint.engine import (
        apply_filters,
        run_rules,
        select_rules,
        validate_per_module_ignores,
    )
    from pytest_equivariance.lint.graph import build_graph

    from pytest_equivariance import forms

    model = forms.runnable(model)
    require_module(model, "lint_model")
    form = forms.form_of(model)
    require_example(example_input_or_shape, "example_input_or_shape", "lint_model")
    require_flag(respect_suppressions, "respect_suppressions", "lint_model")
    rules = select_rules(select, ignore)
    validate_per_module_ignores({} if per_module_ignores is None else per_module_ignores)
    report = ModelReport(target=target)
    if form == forms.COMPILED:  # the graph is read from the module torch.compile wrapped
        model = forms.original(model)
        report.notes.append("compiled model: linted through its original module (_orig_mod)")
    example = example_input_or_shape
    if example is None and form != forms.EXPORTED:  # an exported graph knows its shapes
        try:
            example = infer_input_shape(model)
        except InputShapeError as exc:
            report.errors.append(str(exc))
            example = None
    if form == forms.EXPORTED:  # an ATen graph already: read, not traced
        from pytest_equivariance.lint.exported import build_exported_graph

        graph = build_exported_graph(model)
    else:
        graph = build_graph(model, example)
    report.trace = graph.mode
    report.coverage = round(graph.coverage, 4)
    if graph.input_shapes:
        report.input_shape = tuple(graph.input_shapes[0])
    findings = run_rules(graph, rules)
    report.findings = apply_filters(
        findings, per_module_ignores=per_module_ignores, respect_suppressions=respect_suppressions
    )
    report.errors.extend(graph.errors)
    report.notes.extend(graph.notes)
    return report


def lint(
    model: "nn.Module",
    example_input_or_shape: Any = None,
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
) -> list[Finding]:
    """Return the findings for ``model``: aliasing downsamplers and other equivariance hazards.

    A shortcut for ``lint_model(model, example_input_or_shape, select=..., ignore=...).findings``;
    see :func:`lint_model` for the arguments. Suppression comments in the model's source apply.

    Example::

        >>> import pytest_equivariance, torchvision
        >>> [f.code for f in pytest_equivariance.lint(torchvision.models.alexnet())][:2]
        ['EQ002', 'EQ001']
    """
    return lint_model(model, example_input_or_shape, select=select, ignore=ignore).findings


class _CallableModule(types.ModuleType):
    """``pytest_equivariance.lint`` is both this package and the :func:`lint` function.

    Importing the subpackage rebinds the name ``lint`` on ``pytest_equivariance`` to the package,
    so the package itself answers calls: ``pytest_equivariance.lint(model, shape)`` works whichever
    was imported first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> list[Finding]:
        return lint(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
