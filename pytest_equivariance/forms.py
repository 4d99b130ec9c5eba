"""The form a model ships in — eager, compiled, exported or scripted — and what each entry runs of it.

In 2026 a model is tested in the form it ships: ``torch.compile(model)`` (an ``OptimizedModule``),
``torch.export.export(model, args)`` (an ``ExportedProgram``, run through its ``.module()``) or
``torch.jit.script`` / ``trace`` (a ``ScriptModule``). The checks' figures come from the form that
ships; whatever needs eager execution — forward hooks, shape propagation, the per-layer profile,
forward-mode AD, ``antialias`` — runs on a compiled model's original module (``_orig_mod``), where
our hooks cause no graph break and no recompilation. An exported or scripted model has no original
module to run, so those entries refuse in one sentence that points at the eager model.

This is the one place that tells the forms apart; every entry asks it (through :mod:`guards`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_equivariance.errors import EquivarianceUsageError

if TYPE_CHECKING:
    from torch import nn

EAGER = "eager"
COMPILED = "compiled"
EXPORTED = "exported"
SCRIPTED = "scripted"

#: What an entry that needs the eager model says of a form it cannot run eagerly.
_WHY = {
    EXPORTED: "an exported module runs as one ATen graph with no layers to hook",
    SCRIPTED: "a TorchScript module runs as one compiled graph with no layers to hook",
}


def is_program(model: Any) -> bool:
    """Return True for a ``torch.export.ExportedProgram`` (what ``torch.export.export`` returns)."""
    exported_program = _torch_attr("torch.export", "ExportedProgram")
    return exported_program is not None and isinstance(model, exported_program)


def form_of(model: Any) -> str:
    """Return the form of ``model``: :data:`EAGER`, :data:`COMPILED`, :data:`EXPORTED` or :data:`SCRIPTED`."""
    if is_program(model):
        return EXPORTED
    optimized = _torch_attr("torch._dynamo.eval_frame", "OptimizedModule")
    if optimized is not None and isinstance(model, optimized):
        return COMPILED
    script = _torch_attr("torch.jit", "ScriptModule")
    if script is not None and isinstance(model, script):
        return SCRIPTED
    if _is_exported_module(model):
        return EXPORTED
    return EAGER


def runnable(model: Any) -> Any:
    """Return the module that runs ``model``: an ``ExportedProgram``'s ``.module()``, anything else as it is."""
    return model.module() if is_program(model) else model


def original(model: Any) -> "nn.Module | None":
    """Return the eager module behind ``model``: a compiled model's ``_orig_mod``, an eager model itself,
    None for an exported or scripted one (which keep no eager module)."""
    form = form_of(model)
    if form == COMPILED:
        return original(model._orig_mod)
    return model if form == EAGER else None


def eager(model: Any, entry: str) -> "nn.Module":
    """Return the eager module ``entry`` runs for ``model`` (a compiled model's original module), or raise
    in one sentence for an exported or scripted model, which has none."""
    found = original(runnable(model))
    if found is not None:
        return found
    form = form_of(model)
    raise EquivarianceUsageError(
        f"{entry} needs the model's eager layers, but {_WHY[form]}; pass the eager model the {form} one was "
        f"made from."
    )


def has_modes(model: Any) -> bool:
    """Return False when ``model`` (or a module in it) refuses ``train()`` / ``eval()``, as an exported
    module does: it keeps the mode it was exported in."""
    return not any(_is_exported_module(m) for m in _modules(model))


def note(model: Any, *, figures: bool = True) -> str | None:
    """Return the note a result of ``model`` carries about its form, or None for an eager model.

    ``figures`` says the entry's figures come from the shipped form (a check); otherwise everything
    ran on the original module (a Lie derivative of a compiled model).
    """
    form = form_of(model)
    if form == COMPILED:
        if figures:
            return ("compiled model: figures from the compiled module; receptive field and per-layer profile "
                    "from its original module (_orig_mod)")
        return "compiled model: differentiated through its original module (_orig_mod), as forward-mode AD runs eagerly"
    if form == EXPORTED:
        return ("exported model: run as exported, in the mode it was exported in (an exported module has no "
                "train/eval); no per-layer profile (localize the eager model for one)")
    if form == SCRIPTED:
        return "TorchScript model: run as scripted; no per-layer profile (localize the eager model for one)"
    return None


def fixed_batch(model: Any) -> int | None:
    """Return the batch size an exported module was exported with when it accepts no other, else None."""
    if not _is_exported_module(model):
        return None
    inputs = [n for n in model.graph.nodes if n.op == "placeholder"]
    value = inputs[0].meta.get("val") if inputs else None
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) == 0:
        return None
    return shape[0] if isinstance(shape[0], int) else None


def exported_shape(model: Any) -> tuple[int, ...] | None:
    """Return the shape of an exported module's first input when every dim is static, else None."""
    if not _is_exported_module(model):
        return None
    inputs = [n for n in model.graph.nodes if n.op == "placeholder"]
    shape = getattr(inputs[0].meta.get("val"), "shape", None) if inputs else None
    if shape is None or not all(isinstance(s, int) for s in shape):
        return None
    return tuple(shape)


def _is_exported_module(model: Any) -> bool:
    # ExportedProgram.module() returns a GraphModule whose train() and eval() are replaced on the
    # instance by ones that raise; the class is private, so the instance's own methods say it.
    graph_module = _torch_attr("torch.fx", "GraphModule")
    return (graph_module is not None and isinstance(model, graph_module)
            and "eval" in vars(model) and "range_constraints" in vars(model))


def _modules(model: Any) -> list[Any]:
    modules = getattr(model, "modules", None)
    try:
        return list(modules()) if callable(modules) else [model]
    except Exception:  # noqa: BLE001 - a module that cannot list its children is one module
        return [model]


def _torch_attr(module: str, name: str) -> Any:
    # Only what is already imported: a model cannot be an instance of a class nobody has loaded, and
    # importing torch._dynamo or torch.export costs seconds that an eager check never needs.
    import sys

    return getattr(sys.modules.get(module), name, None)
