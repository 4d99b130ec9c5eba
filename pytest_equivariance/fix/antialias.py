"""``antialias(model)``: rewrite the aliasing downsamplers the linter flags, keeping the weights.

The linter is the one source of truth for what aliases: ``antialias`` runs
``lint_model(model, select=["EQ001", "EQ002", "EQ003"])`` and rewrites exactly the module findings:

============================  =============================================================
flagged layer                 replacement (same output shape, same parameter names)
============================  =============================================================
EQ001 ``MaxPoolNd(k, s)``     ``MaxBlurPoolNd(k, s)``: max pool stride 1, then BlurPool(s)
EQ002 ``ConvNd(stride=s)``    ``AntialiasedConvNd``: BlurPool(stride 1), then the conv with
                              its stride (``conv="blur_first"``, default); or the conv with
                              stride 1, then BlurPool(s) (``conv="conv_then_blur"``)
EQ003 ``AvgPoolNd(k, s)``     ``BlurAvgPoolNd(k, s, ...)``: the box at stride 1, then
                              BlurPool(s); the same arguments and output size
============================  =============================================================

``method="polyphase"`` (Chaman & Dokmanić 2021) keeps every window op at stride 1 and keeps the
polyphase component of largest norm instead of blurring: ``PolyphaseMaxPoolNd``,
``PolyphaseConvNd`` and ``PolyphaseAvgPoolNd`` (see :mod:`pytest_equivariance.layers.polyphase`),
exactly invariant to circular shifts in circular-padded models.

Functional calls (``F.max_pool2d(x, 2)``) cannot be rewritten on a module object; they are listed
in the report's ``skipped`` with their file:line, as is everything matched by ``skip``.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import itertools
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from pytest_equivariance import forms, guards
from pytest_equivariance.errors import EquivarianceUsageError, shown

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pytest_equivariance.lint.findings import Finding

#: The rule codes whose module findings ``antialias`` rewrites.
CODES = ("EQ001", "EQ002", "EQ003")

#: The recipe shown with these rules (``equiv-lint --explain EQ001``); docs/fixes.md has the details.
RECIPE = """\
Fix every flagged module at once, keeping the weights:

    from pytest_equivariance import antialias

    fixed = antialias(model)                        # a copy; inplace=True edits the model itself
    fixed.load_state_dict(checkpoint, strict=True)  # parameter names are unchanged
    print(fixed.antialias_report)                   # what was replaced, what was skipped and why

Strided max pools become MaxBlurPool (max pool stride 1, then BlurPool), strided convs
AntialiasedConv (a stride-1 BlurPool before the conv; conv="conv_then_blur" for conv stride 1, then
BlurPool), strided average pools a stride-1 average pool then BlurPool. Options: filter_size=3 (1..7),
skip=["layer4.*"], example_input=(1, 3, 224, 224). In a circular-padded model,
antialias(model, method="polyphase") makes the layers exactly invariant to circular shifts instead
(adaptive polyphase sampling, Chaman & Dokmanic 2021). Functional calls (F.max_pool2d, ...) are listed
with file:line for a source edit: blur_pool2d(F.max_pool2d(x, 2, stride=1), stride=2), with
blur_pool2d from pytest_equivariance.fix."""
#: ``conv=`` choices -> AntialiasedConv blur position.
CONV_FORMS = {"blur_first": "before", "conv_then_blur": "after"}
#: ``method=`` choices: blur before subsampling (Zhang 2019), or adaptive polyphase sampling.
METHODS = ("blur", "polyphase")


@dataclass(frozen=True)
class Change:
    """One layer ``antialias`` replaced: its qualified name, the rule that flagged it, before/after reprs."""

    qualname: str
    code: str
    before: str
    after: str


@dataclass(frozen=True)
class Skipped:
    """One finding ``antialias`` left alone, and why (functional calls carry their file:line)."""

    qualname: str
    code: str
    op: str
    reason: str
    file: str | None = None
    line: int | None = None

    @property
    def location(self) -> str | None:
        """``file:line`` of the call or construction site, when the linter found one."""
        if self.file is None:
            return None
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass
class AntialiasReport:
    """What ``antialias`` changed and what it could not change, for one model."""

    changes: list[Change] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    trace: str = "fx"  # the linter's trace mode for the model
    lint_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the model's form changed (a compiled model)

    @property
    def changed_qualnames(self) -> list[str]:
        """Qualified names of the replaced layers, in graph order."""
        return [c.qualname for c in self.changes]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the report."""
        return {
            "changes": [asdict(c) for c in self.changes],
            "skipped": [asdict(s) for s in self.skipped],
            "trace": self.trace,
            "lint_errors": list(self.lint_errors),
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        lines = [f"antialias: {len(self.changes)} layer(s) replaced, {len(self.skipped)} skipped"]
        for c in self.changes:
            lines.append(f"  {c.code} {c.qualname or '<model>'}: {c.before} -> {c.after}")
        for s in self.skipped:
            where = f" ({s.location})" if s.location else ""
            lines.append(f"  skipped {s.code} {s.qualname or '<model>'} {s.op}{where}: {s.reason}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


class _CannotRewrite(Exception):
    """A flagged module has no safe drop-in replacement; the message is the reason."""


def antialias(
    model: "nn.Module",
    *,
    method: str = "blur",
    filter_size: int | None = None,
    skip: Iterable[str] = (),
    inplace: bool = False,
    conv: str = "blur_first",
    example_input: Any = None,
    padding_mode: str | None = None,
    criterion: str = "l2",
) -> "nn.Module":
    """Return ``model`` with every aliasing downsampler the linter flags replaced by an anti-aliased one.

    Runs ``lint_model(model, example_input, select=["EQ001", "EQ002", "EQ003"])`` and rewrites each
    module finding. ``method="blur"`` (Zhang 2019): strided max pool ->
    :class:`~pytest_equivariance.fix.MaxBlurPool2d`; strided conv ->
    :class:`~pytest_equivariance.fix.AntialiasedConv2d` (``conv="blur_first"``: a stride-1 blur
    before the strided conv, the default because the conv then still runs at the output
    resolution; ``"conv_then_blur"``: the conv with stride 1, then BlurPool, ``stride**ndim``
    times the conv's FLOPs); strided average pool -> :class:`~pytest_equivariance.fix.BlurAvgPool2d`.
    ``method="polyphase"`` (Chaman & Dokmanić 2021): each op runs at stride 1 and keeps, per
    sample, the polyphase component of largest norm (``PolyphaseMaxPool2d``, ``PolyphaseConv2d``,
    ``PolyphaseAvgPool2d``): exactly invariant to circular shifts in a circular-padded model.
    Selections on maps of one shape in one forward pass share the first one's component
    (:func:`~pytest_equivariance.layers.polyphase.share_phases`), so a residual block's strided conv
    and strided shortcut stay aligned.
    Nested children, ``nn.Sequential`` and 1-d/2-d/3-d layers are all handled.

    Weights are kept: replacements hold the original ``Parameter`` objects under the original
    names and their blur filters are non-persistent buffers, so
    ``antialias(m).load_state_dict(m.state_dict(), strict=True)`` succeeds.

    Args:
        model: the model to fix. Copied first unless ``inplace=True``.
        method: ``"blur"`` or ``"polyphase"``.
        filter_size: binomial filter size, 1..7. Blur: 3 when None (Zhang's default; 5 suppresses
            more aliasing). Polyphase: None selects without blurring; a size blurs (circularly,
            at stride 1) before the selection.
        skip: ``fnmatch`` globs of qualified names to leave alone (``"layer4.*"``, ``"*.downsample.0"``).
        inplace: modify ``model`` itself instead of a deep copy.
        conv: ``"blur_first"`` or ``"conv_then_blur"`` (blur only).
        example_input: passed to the linter (tensor, tuple of tensors or shape); None = inferred.
        padding_mode: blur: the blurs' padding (None = circular next to circular convs, else
            reflect). Polyphase: ``"circular"`` wraps the extra windows that tile the stride
            around; None does so when the model's padded convs all pad circularly, else the edge
            is repeated.
        criterion: polyphase only: ``"l2"`` (default), ``"l1"`` or ``"max"``.

    A compiled model (``torch.compile``) is rewritten through its original module and the eager
    result is returned (compile it again); an exported or TorchScript model has no layers to swap
    and is refused in one sentence: antialias the eager model it was made from.

    Returns:
        The fixed model, with ``.antialias_report`` (an :class:`AntialiasReport`) listing each
        change and each finding left alone (skip globs, functional calls with file:line, layers
        without a drop-in replacement).

    Example::

        fixed = antialias(torchvision.models.resnet18())
        fixed.load_state_dict(checkpoint, strict=True)
        print(fixed.antialias_report)
    """

    from pytest_equivariance.layers.filters import check_blur_arguments

    # A compiled model is rewritten through its original module; an exported or scripted one has
    # no layers to swap and is refused in one sentence.
    compiled = forms.form_of(model) == forms.COMPILED
    model = guards.eager_module(model, "antialias")
    if not isinstance(method, str) or method not in METHODS:
        raise EquivarianceUsageError(
            f"Unknown antialias method {shown(method)}; use 'blur' (BlurPool) or 'polyphase' (adaptive polyphase "
            f"sampling)."
        )
    if not isinstance(conv, str) or conv not in CONV_FORMS:
        raise EquivarianceUsageError(
            f"Unknown conv form {shown(conv)} for antialias; use 'blur_first' or 'conv_then_blur'."
        )
    if padding_mode is not None and not isinstance(padding_mode, str):
        raise EquivarianceUsageError(
            f"antialias got padding_mode={shown(padding_mode)}; pass None or a mode such as 'reflect' or 'circular'."
        )
    if filter_size is not None and (isinstance(filter_size, bool) or not isinstance(filter_size, int)):
        raise EquivarianceUsageError(f"antialias got filter_size={shown(filter_size)}; pass an integer from 1 to 7, or None.")
    check_blur_arguments(3 if filter_size is None else filter_size, padding_mode or "reflect")
    if method == "polyphase":
        from pytest_equivariance.layers.polyphase import check_polyphase_arguments

        check_polyphase_arguments(1, criterion, filter_size)
    skip = guards.require_names(skip, "skip", "antialias", example='["layer4.*"]')
    guards.require_flag(inplace, "inplace", "antialias")
    guards.require_example(example_input, "example_input", "antialias")

    from pytest_equivariance.lint import lint_model

    lint_report = lint_model(model, example_input, select=list(CODES))
    work = model if inplace else _copy(model)
    report = AntialiasReport(trace=lint_report.trace, lint_errors=list(lint_report.errors))
    if compiled:
        report.notes.append(
            "compiled model: its original module (_orig_mod) was antialiased and is returned eager; "
            "compile the result again, e.g. torch.compile(fixed)"
        )
    if method == "polyphase":
        circular = padding_mode == "circular" if padding_mode else _pads_circularly(model)
        build = functools.partial(_polyphase_replacement, blur=filter_size, criterion=criterion, circular=circular)
    else:
        build = functools.partial(_replacement, filter_size=3 if filter_size is None else filter_size,
                                  blur_position=CONV_FORMS[conv], padding_mode=padding_mode)
    work = _rewrite(work, [f for f in lint_report.findings if f.code in CODES], report, skip=skip, build=build)
    if method == "polyphase":
        from pytest_equivariance.layers.polyphase import share_phases

        share_phases(work)
    work.antialias_report = report
    return work


def _copy(model: "nn.Module") -> "nn.Module":
    try:
        return copy.deepcopy(model)
    except Exception as exc:
        raise EquivarianceUsageError(
            f"Cannot copy {type(model).__name__} for antialias ({type(exc).__name__}: {exc}); "
            f"pass inplace=True to rewrite the model itself."
        ) from exc


def _rewrite(
    model: "nn.Module",
    findings: list["Finding"],
    report: AntialiasReport,
    *,
    skip: tuple[str, ...],
    build: Callable[..., "nn.Module"],
) -> "nn.Module":
    """Replace the modules named by ``findings`` in ``model``; record changes and skips in ``report``.

    ``build(module, device=..., dtype=...)`` returns a module's replacement or raises :class:`_CannotRewrite`.
    """
    device, dtype = _placement(model)
    replacements: dict[int, "nn.Module"] = {}
    seen: set[str] = set()
    for finding in findings:
        if finding.kind != "module":
            report.skipped.append(_skip(finding, _functional_reason(finding)))
            continue
        if finding.qualname in seen:  # one module called at several sites: one replacement
            continue
        seen.add(finding.qualname)
        pattern = next((p for p in skip if fnmatch.fnmatchcase(finding.qualname, p)), None)
        if pattern is not None:
            report.skipped.append(_skip(finding, f"matches skip pattern {pattern!r}"))
            continue
        try:
            module = model.get_submodule(finding.qualname)
        except AttributeError:
            report.skipped.append(_skip(finding, "no submodule of this name (built outside the model?)"))
            continue
        if id(module) in replacements:
            continue
        try:
            new = build(module, device=device, dtype=dtype)
        except _CannotRewrite as exc:
            report.skipped.append(_skip(finding, str(exc)))
            continue
        new.train(module.training)
        replacements[id(module)] = new
        report.changes.append(Change(finding.qualname, finding.code, _one_line(module), _one_line(new)))
    return _swap(model, replacements)


def _replacement(
    module: "nn.Module",
    *,
    filter_size: int,
    blur_position: str,
    padding_mode: str | None,
    device: "torch.device",
    dtype: "torch.dtype",
) -> "nn.Module":
    """Return the blurred drop-in for ``module``, or raise :class:`_CannotRewrite`."""
    from torch import nn

    from pytest_equivariance.layers import blurpool

    pad = padding_mode or "reflect"
    if isinstance(module, blurpool._AntialiasedConvNd):
        raise _CannotRewrite("already anti-aliased; check its blur filter size")
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        try:
            return blurpool.antialiased_conv(module, filter_size, blur_position, padding_mode)
        except EquivarianceUsageError as exc:
            raise _CannotRewrite(str(exc)) from exc
    if isinstance(module, nn.modules.pooling._MaxPoolNd):
        if module.return_indices:
            raise _CannotRewrite("returns indices (for MaxUnpool); replace it by hand")
        ndim = _pool_ndim(module)
        cls = (blurpool.MaxBlurPool1d, blurpool.MaxBlurPool2d, blurpool.MaxBlurPool3d)[ndim - 1]
        stride = module.stride if module.stride is not None else module.kernel_size
        return cls(
            module.kernel_size, stride, filter_size, pad,
            padding=module.padding, dilation=module.dilation, ceil_mode=module.ceil_mode,
            device=device, dtype=dtype,
        )  # fmt: skip
    if isinstance(module, nn.modules.pooling._AvgPoolNd) and hasattr(module, "count_include_pad"):
        ndim = _pool_ndim(module)
        cls = (blurpool.BlurAvgPool1d, blurpool.BlurAvgPool2d, blurpool.BlurAvgPool3d)[ndim - 1]
        return cls(*_avg_pool_arguments(module, ndim), filter_size=filter_size, padding_mode=pad, device=device,
                   dtype=dtype)
    raise _CannotRewrite(
        f"no drop-in rewrite for {type(module).__name__}; put a BlurPool after a stride-1 form of it"
    )


def _avg_pool_arguments(module: "nn.Module", ndim: int) -> tuple[Any, ...]:
    """``nn.AvgPoolNd``'s arguments, positionally (1-d pools have no divisor_override)."""
    head = (module.kernel_size, module.stride, module.padding, module.ceil_mode, module.count_include_pad)
    return head if ndim == 1 else (*head, getattr(module, "divisor_override", None))


def _polyphase_replacement(
    module: "nn.Module",
    *,
    blur: int | None,
    criterion: str,
    circular: bool,
    device: "torch.device",
    dtype: "torch.dtype",
) -> "nn.Module":
    """Return the polyphase drop-in for ``module``, or raise :class:`_CannotRewrite`."""
    from torch import nn

    from pytest_equivariance.layers import blurpool, polyphase

    if isinstance(module, (blurpool._AntialiasedConvNd, polyphase._PolyphaseConvNd)):
        raise _CannotRewrite("already anti-aliased; replace it by hand")
    options: dict[str, Any] = {"criterion": criterion, "blur": blur}
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        try:
            return polyphase.polyphase_conv(module, circular=circular or None, **options)
        except EquivarianceUsageError as exc:
            raise _CannotRewrite(str(exc)) from exc
    options["circular"] = circular
    if isinstance(module, nn.modules.pooling._MaxPoolNd):
        if module.return_indices:
            raise _CannotRewrite("returns indices (for MaxUnpool); replace it by hand")
        ndim = _pool_ndim(module)
        cls = (polyphase.PolyphaseMaxPool1d, polyphase.PolyphaseMaxPool2d, polyphase.PolyphaseMaxPool3d)[ndim - 1]
        return cls(module.kernel_size, module.stride, module.padding, dilation=module.dilation,
                   ceil_mode=module.ceil_mode, **options)
    if isinstance(module, nn.modules.pooling._AvgPoolNd) and hasattr(module, "count_include_pad"):
        ndim = _pool_ndim(module)
        cls = (polyphase.PolyphaseAvgPool1d, polyphase.PolyphaseAvgPool2d, polyphase.PolyphaseAvgPool3d)[ndim - 1]
        return cls(*_avg_pool_arguments(module, ndim), **options)
    raise _CannotRewrite(
        f"no polyphase rewrite for {type(module).__name__}; put a PolyphasePool after a stride-1 form of it"
    )


def _pads_circularly(model: "nn.Module") -> bool:
    """Whether the model's padded convolutions all pad circularly (and there is at least one)."""
    from torch import nn

    modes = [m.padding_mode for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)
             and not m.transposed and (isinstance(m.padding, str) or any(m.padding))]
    return bool(modes) and all(mode == "circular" for mode in modes)


def _pool_ndim(module: "nn.Module") -> int:
    name = type(module).__name__
    match = re.search(r"([123])d$", name)
    if match:
        return int(match.group(1))
    raise _CannotRewrite(f"cannot tell the number of spatial dims of {name}; replace it by hand")


def _swap(model: "nn.Module", replacements: dict[int, "nn.Module"]) -> "nn.Module":
    """Point every reference to a replaced module (shared or aliased ones too) at its replacement."""
    if id(model) in replacements:
        return replacements[id(model)]
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if child is not None and id(child) in replacements:
                parent._modules[name] = replacements[id(child)]
    return model


def _placement(model: "nn.Module") -> tuple["torch.device", "torch.dtype"]:
    """Device and floating dtype for new blur filters: those of the model's first tensor."""
    import torch

    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _skip(finding: "Finding", reason: str) -> Skipped:
    return Skipped(finding.qualname, finding.code, finding.op, reason, finding.file, finding.line)


_FUNCTIONAL_FIX = {
    "EQ001": "F.max_pool{n}d(x, k, stride=1) followed by blur_pool{n}d(x, stride)",
    "EQ002": "blur_pool{n}d(x, stride=1) before the strided conv",
    "EQ003": "blur_pool{n}d(x, stride) (or avg pool with stride 1, then blur_pool{n}d)",
}


def _functional_reason(finding: "Finding") -> str:
    match = re.search(r"([123])d", finding.op)
    template = _FUNCTIONAL_FIX.get(finding.code, "a stride-1 form followed by blur_pool{n}d")
    fix = template.format(n=match.group(1) if match else "2")
    return f"a {finding.kind} call, not a module; edit the source to use {fix}"


def _one_line(module: "nn.Module") -> str:
    """``repr(module)`` on one line: ``Name(args, (child): Child(...))``."""
    lines = [line.strip() for line in repr(module).splitlines()]
    if len(lines) == 1:
        return lines[0]
    return lines[0] + ", ".join(lines[1:-1]) + lines[-1]
