"""Source locations: the file:line a user would edit for a layer or a functional call.

A layer is located at its constructor call (``self.pool = nn.MaxPool2d(...)``, the k-th call of its
class inside an ``nn.Sequential`` literal, or the line in a user's helper that builds it); a
functional call at the innermost user frame of its stack trace. Source files are parsed once per
version (cached on their modification time and size).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import linecache
import os
import sys
import sysconfig
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn


@functools.lru_cache(maxsize=1)
def _internal_dirs() -> tuple[str, str]:
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # pytest_equivariance/
    dirs = (os.path.dirname(torch.__file__), package)
    return tuple(os.path.realpath(d) + os.sep for d in dirs)  # type: ignore[return-value]


#: Where each module the linter built was constructed: (file, line) of the constructor call in the
#: innermost frame that is not one of the module's own ``__init__`` methods (see recording_constructions).
_CONSTRUCTED: "weakref.WeakKeyDictionary[nn.Module, tuple[str, int]]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def recording_constructions() -> Iterator[None]:
    """Within the block, remember where every ``nn.Module`` is constructed (for :class:`SourceLocator`).

    A layer built in a user's helper (``def conv_bn(c, s): return nn.Sequential(nn.Conv2d(...), ...)``)
    is located at that ``nn.Conv2d(...)`` call, the line to edit, rather than where the helper was
    called. Not thread-safe: it patches ``nn.Module.__init__`` for the duration.
    """
    original = nn.Module.__init__

    def __init__(module: nn.Module, *args: Any, **kwargs: Any) -> None:
        original(module, *args, **kwargs)
        where = _constructor_call(module)
        if where is not None:
            _CONSTRUCTED[module] = where

    nn.Module.__init__ = __init__  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.__init__ = original  # type: ignore[method-assign]


def _constructor_call(module: nn.Module) -> tuple[str, int] | None:
    # Walk out past this hook, torch's frames and the module's own __init__ chain (a user subclass
    # calling super().__init__ included) to the frame that called the constructor.
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        own_init = code.co_name == "__init__" and frame.f_locals.get("self") is module
        if not own_init and _frame_kind(code.co_filename) == "user":
            return code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None


def is_user_file(filename: str) -> bool:
    """Return whether ``filename`` is the user's own source: not torch, not this package, not installed."""
    if _frame_kind(filename) != "user":
        return False
    parts = set(Path(os.path.realpath(filename)).parts)
    return not ({"site-packages", "dist-packages"} & parts) and not _in_stdlib(filename)


@functools.lru_cache(maxsize=1024)
def _in_stdlib(filename: str) -> bool:
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"]) + os.sep
    return os.path.realpath(filename).startswith(stdlib)


@functools.lru_cache(maxsize=4096)
def _frame_kind(filename: str) -> str:
    """Return "torch", "ours" (this package) or "user" for a code object's file."""
    if filename.startswith("<"):
        return "torch"  # generated code (fx's own, exec'd strings): never where a user edits
    torch_dir, our_dir = _internal_dirs()
    path = os.path.realpath(filename)
    return "torch" if path.startswith(torch_dir) else "ours" if path.startswith(our_dir) else "user"


def user_frame(depth: int = 1) -> tuple[str | None, int | None]:
    """Return ``(file, line)`` of the innermost user frame calling the op being recorded.

    Called while a tracer or a torch-function mode records an op: it walks out from the caller
    past torch's frames (and this package's recording frames) to the first frame of someone
    else's code — the user's ``forward``, or a helper it calls. Reaching this package again after
    torch's frames means the op came from torch itself: no user location. A walk over frame
    objects, not ``traceback.extract_stack``, which reads every source line on the way.
    """
    frame = sys._getframe(depth)
    seen_torch = False
    while frame is not None:
        kind = _frame_kind(frame.f_code.co_filename)
        if kind == "user":
            return frame.f_code.co_filename, frame.f_lineno
        if kind == "ours" and seen_torch:
            return None, None
        seen_torch = seen_torch or kind == "torch"
        frame = frame.f_back
    return None, None


@functools.lru_cache(maxsize=512)
def _parse_source(filename: str, mtime_ns: int, size: int) -> ast.Module | None:
    linecache.checkcache(filename)
    lines = linecache.getlines(filename)
    if not lines:
        return None
    try:
        return ast.parse("".join(lines), filename)
    except (SyntaxError, ValueError):
        return None


_COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor,
             ast.While, ast.With, ast.AsyncWith, ast.Try)


@dataclass
class _FileIndex:
    """What the locator needs from one source file, computed in a single walk of its syntax tree."""

    classes: list[ast.ClassDef]
    calls: dict[str, list[tuple[int, int, bool]]]  # callee name -> sorted (line, column, inside a loop)
    statements: dict[int, tuple[int, int]]  # line -> span of the innermost statement containing it
    spans: dict[tuple[int, int], ast.stmt]


def _file_index(filename: str) -> _FileIndex | None:
    try:
        stat = os.stat(filename)
    except OSError:
        return None
    return _build_file_index(filename, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _build_file_index(filename: str, mtime_ns: int, size: int) -> _FileIndex | None:
    tree = _parse_source(filename, mtime_ns, size)
    if tree is None:
        return None
    classes: list[ast.ClassDef] = []
    calls: dict[str, list[tuple[int, int, bool]]] = {}
    statements: dict[int, tuple[int, int]] = {}
    spans: dict[tuple[int, int], ast.stmt] = {}
    in_loop: set[int] = set()  # ids of nodes inside a loop or comprehension body
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.GeneratorExp,
                             ast.SetComp, ast.DictComp)) or id(node) in in_loop:
            for child in ast.iter_child_nodes(node):
                in_loop.add(id(child))
        if isinstance(node, ast.ClassDef):
            classes.append(node)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name is not None:
                calls.setdefault(name, []).append((node.lineno, node.col_offset, id(node) in in_loop))
        if isinstance(node, ast.stmt):
            span = (node.lineno, node.end_lineno or node.lineno)
            spans.setdefault(span, node)
            lines = [node.lineno] if isinstance(node, _COMPOUND) else range(span[0], span[1] + 1)
            for line in lines:
                best = statements.get(line)
                if best is None or span[1] - span[0] < best[1] - best[0]:
                    statements[line] = span
    for found in calls.values():
        found.sort()
    return _FileIndex(classes, calls, statements, spans)


@functools.lru_cache(maxsize=1024)
def _class_source(cls: type) -> tuple[str, ast.ClassDef] | None:
    """Return ``(file, ClassDef)`` of a class defined in Python source, or ``None``."""
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    try:
        filename = inspect.getsourcefile(cls) or filename
    except TypeError:
        return None
    index = _file_index(filename) if filename else None
    if index is None:
        return None
    candidates = [node for node in index.classes if node.name == cls.__name__]
    if len(candidates) == 1:
        return filename, candidates[0]  # type: ignore[return-value]
    try:  # several classes of that name in the file: let inspect pick by qualified name
        _, start = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return None
    for node in candidates:
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        if start in (node.lineno, first):
            return filename, node  # type: ignore[return-value]
    return None


def _user_classes(module: nn.Module) -> list[type]:
    # The module's class and its bases defined outside torch.nn, most derived first.
    return [c for c in type(module).__mro__
            if c is not object and not (c.__module__ or "").startswith("torch.nn")]


@functools.lru_cache(maxsize=1024)
def _class_assignments(cls: type) -> dict[str, list[tuple[int, str | None]]]:
    """Return ``{attr: [(line, callee)]}`` for ``self.<attr> = callee(...)`` and ``add_module`` in a class.

    ``callee`` is the name of the called class or function, ``None`` for other values
    (``self.proj = None``, ``self.downsample = downsample``).
    """
    found = _class_source(cls)
    if found is None:
        return {}
    assigned: dict[str, list[tuple[int, str | None]]] = {}

    def callee(value: ast.AST | None) -> str | None:
        if isinstance(value, ast.Call):
            func = value.func
            return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return None

    for node in ast.walk(found[1]):
        if isinstance(node, ast.Call):
            func = node.func
            args: list[ast.expr] = []
            if isinstance(func, ast.Attribute) and func.attr in ("add_module", "register_module", "__setattr__"):
                args = node.args
            elif isinstance(func, ast.Name) and func.id == "setattr":
                args = node.args[1:]
            if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                value = args[1] if len(args) > 1 else None
                assigned.setdefault(args[0].value, []).append((node.lineno, callee(value)))
            continue
        if isinstance(node, ast.Assign):
            targets, value = list(node.targets), node.value
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    assigned.setdefault(t.attr, []).append((node.lineno, callee(value)))
    for candidates in assigned.values():
        candidates.sort()
    return assigned


def _best_assignment(candidates: list[tuple[int, str | None]], class_name: str) -> int:
    # Prefer constructing the layer's own class, then any call, then the first assignment.
    for wanted in (lambda c: c == class_name, lambda c: c is not None):
        for line, called in candidates:
            if wanted(called):
                return line
    return candidates[0][0]


def _calls_in(filename: str, span: tuple[int, int], name: str) -> list[tuple[int, bool]]:
    """Return ``(line, inside a loop)`` of calls to ``name(...)`` / ``<x>.name(...)`` within a span."""
    index = _file_index(filename)
    if index is None:
        return []
    return [(line, looped) for line, _, looped in index.calls.get(name, ()) if span[0] <= line <= span[1]]


def statement_at(filename: str, line: int) -> tuple[int, int] | None:
    """Return the first and last line of the innermost statement containing ``line`` in a file."""
    index = _file_index(filename)
    return index.statements.get(line) if index is not None else None


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class SourceLocator:
    """Finds where a layer is constructed in the model's own source, from its qualified name."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self._cache: dict[str, tuple[str | None, int | None]] = {}

    def locate(self, qualname: str) -> tuple[str | None, int | None]:
        if qualname not in self._cache:
            try:
                self._cache[qualname] = self._locate(qualname)
            except Exception:  # source lookup is best effort
                self._cache[qualname] = (None, None)
        return self._cache[qualname]

    def _locate(self, qualname: str) -> tuple[str | None, int | None]:
        if not qualname:
            return None, None
        parent_name, _, attr = qualname.rpartition(".")
        parent = self.root.get_submodule(parent_name)
        module = parent.get_submodule(attr)
        recorded = _CONSTRUCTED.get(module)
        if recorded is not None and is_user_file(recorded[0]):
            return recorded  # the constructor call itself, seen while the linter built the model
        # Otherwise read the source: the assignment in the owning class, the k-th call in a container.
        plain_container = type(parent) in _CONTAINERS
        if not plain_container:
            for cls in _user_classes(parent):
                candidates = _class_assignments(cls).get(attr)
                if candidates:
                    found = _class_source(cls)
                    return (found[0] if found else None), _best_assignment(candidates, type(module).__name__)
        # Built inside a container (or in a loop): look for the k-th call to the layer's class in
        # the statement that built a plain container, then in the class owning it, then anywhere
        # in that file (a lone call inside a loop counts for all).
        siblings = [c for c in parent.children() if type(c) is type(module)]
        k = next((i for i, c in enumerate(siblings) if c is module), 0)
        name = type(module).__name__
        scopes: list[tuple[str, tuple[int, int]]] = []

        def add_classes(of: nn.Module) -> None:
            for cls in _user_classes(of):
                found = _class_source(cls)
                if found is not None:
                    scopes.append((found[0], (found[1].lineno, found[1].end_lineno or found[1].lineno)))

        file, line = self.locate(parent_name) if parent_name else (None, None)
        if not plain_container:
            # A user class builds its own children (torchvision's Conv2dNormActivation calls
            # conv_layer(...)): look only there, else the line that built the container is where
            # the user chose it.
            add_classes(parent)
        else:
            if file is not None and line is not None:
                span = statement_at(file, line)
                if span is not None:
                    scopes.append((file, span))
            owner = self._owner(parent_name)
            if owner is not None:
                add_classes(owner)
            if file is not None:
                scopes.append((file, (1, 10**9)))
        for scope_file, span in scopes:
            calls = _calls_in(scope_file, span, name)
            if len(calls) == len(siblings):
                return scope_file, calls[k][0]
            if len(calls) == 1 and calls[0][1]:
                return scope_file, calls[0][0]  # one call in a loop builds them all (VGG's make_layers)
        return file, line

    def _owner(self, qualname: str) -> nn.Module | None:
        # The nearest ancestor (or self) that is not a plain container.
        parts = qualname.split(".") if qualname else []
        while True:
            module = self.root.get_submodule(".".join(parts))
            if type(module) not in _CONTAINERS:
                return module
            if not parts:
                return None
            parts.pop()
