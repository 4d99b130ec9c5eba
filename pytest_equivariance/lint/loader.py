"""Targets to models: ``model.py``, ``model.py::Name`` and ``pkg.module:name``.

A target names where models live; :func:`load_target` imports it and returns one
:class:`ModelSource` per model, each built on demand (so a file of many models holds one in memory
at a time). Every way a target can be wrong raises :class:`~pytest_equivariance.errors.ModelLoadError`
with one sentence naming the cause and the remedy, the original exception chained.

What a target yields:

- ``path/to/model.py``: every ``nn.Module`` subclass defined in that file whose constructor needs no
  arguments, every module-level ``nn.Module`` instance (which replaces its class: the configured
  instance is what the author meant), and the zero-argument functions named by ``factories``
  (names or globs, from ``[tool.equiv-lint] factories``). Names starting with ``_`` are building
  blocks, not models, and are passed over.
- ``path/to/model.py::Name`` or ``pkg.module:Name``: that class, instance or zero-argument factory.
  ``Name`` may be dotted (``zoo.py::MODELS.small``).
- ``pkg.module``: as a file, for an importable module.

Files are imported under a unique module name with their directory on ``sys.path`` (so sibling
imports work), or under their dotted name when they sit inside a package (so relative imports
work). Modules the target brought in from its own directory are removed from ``sys.modules`` again
when the ``with`` block ends, so two ``model.py`` files in one call do not see each other.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import importlib.util
import inspect
import itertools
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pytest_equivariance import forms
from pytest_equivariance.errors import ModelLoadError

if TYPE_CHECKING:
    from torch import nn

    from pytest_equivariance.lint.findings import ModelReport

#: Separates a file from a name inside it (pytest's node id style), and a module from a name.
FILE_SEPARATOR = "::"
MODULE_SEPARATOR = ":"

#: ``ModelReport.trace`` of a target that could not be loaded or linted (its error is in ``errors``).
NOT_LOADED = "none"

#: Folders a directory target does not descend into.
_SKIPPED_DIRS = frozenset({"__pycache__", "site-packages", "node_modules", "venv", "build", "dist"})

_TARGET_HELP = ("targets look like models/net.py, models/net.py::Net, mypkg.models:build_model, "
                "timm:resnet50 or transformers:resnet")
_unique = itertools.count()


class NoModelFoundError(ModelLoadError):
    """A file or module defines nothing that can be built without arguments."""


class NeedsArgumentsError(ModelLoadError):
    """A class or factory cannot be called without arguments (by its signature, or by trying)."""


@dataclass(frozen=True)
class Target:
    """A parsed target string: a file or a module, and optionally a name inside it."""

    text: str
    path: Path | None = None  # file targets
    module: str | None = None  # module targets
    name: str | None = None

    @property
    def is_file(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class ModelSource:
    """One model a target names: a class, an instance or a factory, built by :meth:`build`."""

    target: str  # display name, unique per model: "models/net.py::Net"
    obj: Any
    file: str | None = None  # where obj is defined, for locations of last resort
    line: int | None = None

    def build(self) -> "nn.Module":
        """Return the model: the instance itself, or the class / factory called without arguments."""
        from torch import nn

        if isinstance(self.obj, nn.Module):
            return self.obj
        name = getattr(self.obj, "__qualname__", repr(self.obj))
        missing = required_arguments(self.obj)
        if missing:
            what = "constructor" if isinstance(self.obj, type) else "factory"
            raise NeedsArgumentsError(
                f"{self.target}: the {what} {name}() needs arguments ({', '.join(missing)}); "
                f"{_needs_arguments_remedy(name)}"
            )
        try:
            model = self.obj(**_without_downloads(self.obj))
        except TypeError as exc:
            if "argument" not in str(exc):
                raise _build_error(self, name, exc) from exc
            # A constructor taking *args / **kwargs hides its required arguments from its signature.
            raise NeedsArgumentsError(
                f"{self.target}: {name}() needs arguments ({_describe(exc)}); "
                f"{_needs_arguments_remedy(name)}"
            ) from exc
        except Exception as exc:
            raise _build_error(self, name, exc) from exc
        model = forms.runnable(model)  # an ExportedProgram: lint_model says what it can read of it
        if not isinstance(model, nn.Module):
            raise ModelLoadError(
                f"{self.target}: {name}() returned a {type(model).__name__}, not an nn.Module; "
                f"point equiv-lint at a function that returns the model."
            )
        return model


@dataclass
class LoadedTarget:
    """What :func:`load_target` found: the models, and what it passed over (for ``--verbose``)."""

    target: Target
    sources: list[ModelSource] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "Block needs in_ch, out_ch"


def parse_target(text: str, *, root: Path | None = None) -> Target:
    """Return the :class:`Target` a command-line or config string names.

    A string is a file target when it contains ``::``, ends in ``.py``, contains a path separator
    or names an existing file or directory; otherwise ``pkg.module[:name]``. Relative paths resolve
    against ``root`` (default: the working directory).
    """
    text = text.strip()
    if not text:
        raise ModelLoadError(f"Empty target; {_TARGET_HELP}.")
    if "\x00" in text:  # no path or module name has one, and the OS refuses to look it up
        raise ModelLoadError(f"Cannot read target {text!r}: it holds a NUL character; {_TARGET_HELP}.")
    file_part, sep, name = text.partition(FILE_SEPARATOR)
    base = root if root is not None else Path.cwd()
    looks_like_file = (
        bool(sep)
        or file_part.endswith(".py")
        or "/" in file_part
        or os.sep in file_part
        or (base / file_part).exists()
    )
    if looks_like_file:
        path = Path(file_part)
        if not path.is_absolute():
            path = base / path
        return Target(text=text, path=path, name=name or None)
    module, _, name = text.partition(MODULE_SEPARATOR)
    if not module.replace(".", "").replace("_", "").isalnum():
        raise ModelLoadError(f"Cannot read target {text!r}; {_TARGET_HELP}.")
    return Target(text=text, module=module, name=name or None)


def mentions_torch(path: Path | str) -> bool:
    """Return whether a file's text mentions torch: a file that does not cannot define a model.

    Pre-commit passes every changed Python file; reading text is far cheaper than importing.
    """
    try:
        with open(path, "rb") as fh:
            return b"torch" in fh.read()
    except OSError:
        return True  # let load_target report the real problem


@contextlib.contextmanager
def load_target(
    target: Target | str,
    *,
    factories: Sequence[str] = (),
    root: Path | None = None,
    files: set[str] | None = None,
) -> Iterator[LoadedTarget]:
    """Import a target and yield the models it names; then undo its sys.path / sys.modules changes.

    Models are built by :meth:`ModelSource.build` inside the block. Raises :class:`ModelLoadError`
    (one sentence, cause and remedy) for a missing file, a syntax or import error, an unknown name,
    or a target with no model (:class:`NoModelFoundError`). ``files``, when given, receives the
    source files of the modules the import brought in (the user's ones are removed from
    ``sys.modules`` afterwards; the lint cache keys on them).
    """
    if isinstance(target, str):
        target = parse_target(target, root=root)
    with _import_scope(target, files) as module:
        yield _collect(target, module, factories)


def python_files(directory: Path) -> list[Path]:
    """Return the ``.py`` files below ``directory``, sorted, outside hidden, cache and venv folders."""
    found = []
    for path in sorted(directory.rglob("*.py")):
        parts = path.relative_to(directory).parts[:-1]
        if not any(p.startswith(".") or p in _SKIPPED_DIRS for p in parts):
            found.append(path)
    return found


def required_arguments(obj: Callable[..., Any]) -> list[str]:
    """Return the names of the parameters ``obj`` must be called with (no default, not ``*args``)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def failed_report(target: str, error: BaseException) -> "ModelReport":
    """Return the report of a target that could not be loaded: no findings, the error sentence."""
    from pytest_equivariance.lint.findings import ModelReport

    return ModelReport(target=target, trace=NOT_LOADED, coverage=0.0, errors=[str(error)])


def display_path(path: Path | str) -> str:
    """Return ``path`` relative to the working directory when it lies below it, else as given."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


# -- importing -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _import_scope(target: Target, files: set[str] | None = None) -> Iterator[ModuleType]:
    """Import the target's module; on exit restore ``sys.path``, drop the user modules it added."""
    saved_path = list(sys.path)
    before = set(sys.modules)
    directories: list[Path] = []
    if target.is_file and target.path is not None:
        root, dotted = _package_name(target.path.resolve())
        directories = [target.path.resolve().parent]
        if dotted is not None:
            directories.append(root / dotted.split(".")[0])
    added: set[str] | None = None
    try:
        if target.is_file:
            module = _import_file(target)
        else:
            module = _import_module(target)
        # Only what the import itself brought in: modules first imported later, while the model
        # is built and linted (torch internals, this package's own), must stay.
        added = set(sys.modules) - before
        yield module
    finally:
        sys.path[:] = saved_path
        if added is None:  # the import failed part-way: drop what it had brought in so far
            added = set(sys.modules) - before
        if files is not None:
            if target.path is not None:
                files.add(os.path.abspath(target.path))
            files.update(os.path.abspath(f) for f in (getattr(sys.modules.get(n), "__file__", None) for n in added)
                         if isinstance(f, str))
        for name in added:
            mod = sys.modules.get(name)
            if mod is not None and _is_user_module(mod, directories):
                del sys.modules[name]


def _import_file(target: Target) -> ModuleType:
    assert target.path is not None
    path = target.path
    shown = display_path(path)
    if not path.exists():
        raise ModelLoadError(f"{shown} does not exist; check the path ({_TARGET_HELP}).")
    if path.is_dir():
        raise ModelLoadError(
            f"{shown} is a directory; name a Python file inside it, e.g. {shown}/model.py "
            f"(the equiv-lint command also takes directories)."
        )
    if path.suffix != ".py":
        raise ModelLoadError(f"{shown} is not a Python file; {_TARGET_HELP}.")
    path = path.resolve()
    package_root, dotted = _package_name(path)
    # A file inside a package is imported under its dotted name, so relative imports work; a loose
    # file under a unique name, so two "model.py" in one call stay distinct.
    sys.path.insert(0, str(package_root))
    if dotted is not None:
        # Research code inside packages often imports its siblings absolutely, too.
        sys.path.insert(1, str(path.parent))
        return _guarded(lambda: importlib.import_module(dotted), shown, path)
    name = f"_equiv_lint_{_identifier(path.stem)}_{next(_unique)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always have a loader
        raise ModelLoadError(f"{shown} cannot be imported as a module; {_TARGET_HELP}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickling and inspect.getsource look modules up here

    def run() -> ModuleType:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module

    try:
        return _guarded(run, shown, path)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def _import_module(target: Target) -> ModuleType:
    assert target.module is not None
    # A console script's sys.path[0] is its bin directory; put the project (cwd) first, as
    # `python -m` would.
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target.module)
    except ModuleNotFoundError as exc:
        # Only the target itself (or a parent package) missing is "no such module"; a missing
        # dependency inside it is an import error of that module, reported with its own message.
        parts = target.module.split(".")
        if exc.name in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            raise ModelLoadError(
                f"No module named {exc.name!r}; install it, or run equiv-lint from the directory "
                f"that contains it ({_TARGET_HELP})."
            ) from exc
        raise _import_error(exc, target.module, None) from exc
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise _import_error(exc, target.module, None) from exc


def _guarded(run: Callable[[], ModuleType], shown: str, path: Path | None) -> ModuleType:
    """Run an import; turn whatever it raises (but Ctrl-C) into one ModelLoadError sentence."""
    try:
        return run()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise _import_error(exc, shown, path) from exc


#: Arguments of torchvision's builders that download pretrained weights by default; linting reads
#: the architecture only (detection and segmentation builders default to an ImageNet backbone).
_DOWNLOADING_ARGUMENTS = ("weights", "weights_backbone")


def _without_downloads(obj: Any) -> dict[str, None]:
    """Keyword arguments that stop a torchvision builder from downloading weights: ``weights_backbone=None``."""
    if not getattr(obj, "__module__", "").startswith("torchvision."):
        return {}
    try:
        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return {}
    return {name: None for name in _DOWNLOADING_ARGUMENTS
            if name in parameters and parameters[name].default is not None}


def _build_error(source: ModelSource, name: str, exc: Exception) -> ModelLoadError:
    import urllib.error

    remedy = "fix the constructor, or lint a factory that builds a working model"
    if isinstance(exc, (urllib.error.URLError, ConnectionError)):
        remedy = (
            "it tried to download pretrained weights, which linting does not need; lint a "
            "factory that builds the model without them (weights=None, weights_backbone=None)"
        )
    return ModelLoadError(
        f"{source.target}: building {name}() raised {_describe(exc)}"
        f"{_user_frame(exc, source.file)}; {remedy}."
    )


def _import_error(exc: BaseException, shown: str, path: Path | None) -> ModelLoadError:
    where = _user_frame(exc, path)
    if isinstance(exc, SyntaxError):
        location = f"{display_path(exc.filename)}:{exc.lineno}" if exc.filename else shown
        return ModelLoadError(
            f"Syntax error in {location}: {exc.msg}; fix the file and run equiv-lint again."
        )
    if isinstance(exc, ImportError):
        return ModelLoadError(
            f"Importing {shown} failed with {_describe(exc)}{where}; install the missing package "
            f"or fix the import."
        )
    if isinstance(exc, SystemExit):
        return ModelLoadError(
            f"Importing {shown} called sys.exit({exc.code!r}){where}; move script code under "
            f"`if __name__ == \"__main__\":`."
        )
    return ModelLoadError(
        f"Importing {shown} raised {_describe(exc)}{where}; fix the module-level code (code that "
        f"should not run on import belongs under `if __name__ == \"__main__\":`)."
    )


def _package_name(path: Path) -> tuple[Path, str | None]:
    """Return (directory to put on sys.path, dotted module name or None for a loose file)."""
    parts = [path.stem] if path.stem != "__init__" else []
    directory = path.parent
    while (directory / "__init__.py").is_file() and directory.parent != directory:
        parts.insert(0, directory.name)
        directory = directory.parent
    if directory == path.parent or not all(p.isidentifier() for p in parts):
        return path.parent, None
    return directory, ".".join(parts)


def _is_user_module(module: ModuleType, directories: Sequence[Path]) -> bool:
    """Return whether ``module`` is the user's own code: a file under ``directories``, not a library."""
    file = getattr(module, "__file__", None)
    ours = module.__name__.partition(".")[0] == __name__.partition(".")[0]
    if not file or not directories or ours:
        return False
    resolved = Path(file).resolve()
    if {"site-packages", "dist-packages"} & set(resolved.parts):
        return False  # a virtual environment inside the project
    return any(resolved.is_relative_to(d) for d in directories)


# -- finding models ------------------------------------------------------------------------------


def _collect(target: Target, module: ModuleType, factories: Sequence[str]) -> LoadedTarget:
    from torch import nn

    shown = display_path(target.path) if target.path is not None else target.module
    loaded = LoadedTarget(target)
    if target.name is not None:
        obj = _lookup(module, target, shown)
        if not (
            isinstance(obj, nn.Module)
            or (isinstance(obj, type) and issubclass(obj, nn.Module))
            or (callable(obj) and not isinstance(obj, type))
        ):
            raise ModelLoadError(
                f"{target.text} is a {type(obj).__name__}, not an nn.Module class, instance or "
                f"factory; name one of those ({_TARGET_HELP})."
            )
        loaded.sources.append(_source(f"{shown}{_sep(target)}{target.name}", obj, module))
        return loaded

    # One pass in definition order: classes defined here, module-level instances, named factories.
    namespace = vars(module)
    instance_types = {type(v) for v in namespace.values() if isinstance(v, nn.Module)}
    chosen: list[tuple[str, Any]] = []
    seen: set[int] = set()
    for name, obj in namespace.items():
        if id(obj) in seen or name.startswith("_"):
            continue  # private names are building blocks, not models (name them to lint them)
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            if obj.__module__ != module.__name__ or obj in instance_types or inspect.isabstract(obj):
                continue  # imported, or represented by its configured instance
            missing = required_arguments(obj)
            if missing:
                loaded.skipped.append(f"{name} needs {', '.join(missing)}")
                continue
        elif isinstance(obj, nn.Module):
            pass
        elif not (
            inspect.isfunction(obj) and any(fnmatch.fnmatchcase(name, p) for p in factories)
        ):
            continue
        seen.add(id(obj))
        chosen.append((name, obj))
    loaded.sources = [_source(f"{shown}{_sep(target)}{name}", obj, module) for name, obj in chosen]
    if not loaded.sources:
        if loaded.skipped:
            raise NoModelFoundError(
                f"No model in {shown} builds without arguments ({'; '.join(loaded.skipped)}); give the "
                f"constructor defaults, create an instance at module level, or name a zero-argument "
                f"factory in [tool.equiv-lint] factories or as {shown}{_sep(target)}build_model."
            )
        raise NoModelFoundError(
            f"No model found in {shown}: it defines no nn.Module subclass or instance; point "
            f"equiv-lint at the file that defines the model, or name a factory "
            f"({shown}{_sep(target)}build_model)."
        )
    return loaded


def _lookup(module: ModuleType, target: Target, shown: str) -> Any:
    obj: Any = module
    assert target.name is not None
    registered = _registered_model(module, target.name)
    if registered is not None:
        return registered
    for part in target.name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            from torch import nn

            defined = sorted(
                n
                for n, v in vars(module).items()
                if isinstance(v, nn.Module) or _defined_model_class(v, module)
            )
            available = (
                f"models defined there: {', '.join(defined)}" if defined else "check the spelling"
            )
            raise ModelLoadError(
                f"{shown} has no attribute {target.name!r}; {available}."
            ) from None
    return obj


def _registered_model(module: ModuleType, name: str) -> Callable[[], Any] | None:
    """Return a factory for a model a library names rather than defines, or None.

    ``timm:convnext_tiny`` is ``timm.create_model("convnext_tiny", pretrained=False)``;
    ``transformers:resnet`` is ``AutoModel.from_config(AutoConfig.for_model("resnet"))``: the
    architecture with its default config and random weights, never downloaded ones.
    """
    if hasattr(module, name):
        return None
    build: Callable[[], Any] | None = None
    if module.__name__ == "timm" and callable(getattr(module, "is_model", None)) and module.is_model(name):
        def build() -> Any:
            return module.create_model(name, pretrained=False)
    elif module.__name__ == "transformers" and hasattr(module, "AutoConfig"):
        try:
            config = module.AutoConfig.for_model(name)
        except (ValueError, KeyError):
            return None

        def build() -> Any:
            return module.AutoModel.from_config(config)
    if build is not None:
        build.__name__ = build.__qualname__ = name
    return build


def _defined_model_class(obj: Any, module: ModuleType) -> bool:
    from torch import nn

    return isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__


def _source(target: str, obj: Any, module: ModuleType) -> ModelSource:
    """Return a ModelSource located where its class or factory is defined (else at the module)."""
    from torch import nn

    subject = type(obj) if isinstance(obj, nn.Module) else obj
    if isinstance(obj, nn.Module) and subject.__module__ != module.__name__:
        # An instance of a library class: the user's module is the only useful place.
        return ModelSource(target=target, obj=obj, file=getattr(module, "__file__", None))
    try:
        file = inspect.getsourcefile(subject)
        line = inspect.getsourcelines(subject)[1]
    except (OSError, TypeError):
        file, line = getattr(module, "__file__", None), None
    return ModelSource(target=target, obj=obj, file=file, line=line)


def _sep(target: Target) -> str:
    return FILE_SEPARATOR if target.is_file else MODULE_SEPARATOR


def _needs_arguments_remedy(name: str) -> str:
    return (f"give them defaults, or point equiv-lint at a zero-argument factory "
            f"(e.g. a function build_model() returning {name}(...)).")


def _identifier(stem: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in stem)


def _describe(exc: BaseException) -> str:
    """Return "Type: first line of the message" (its closing period dropped: it is quoted mid-sentence)."""
    text = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _user_frame(exc: BaseException, path: Path | str | None) -> str:
    """Return " at file:line" for the deepest traceback frame in ``path``, or "" if none is."""
    frames = traceback.extract_tb(exc.__traceback__)
    if path is not None:
        wanted = str(Path(path).resolve())
        mine = [f for f in frames if f.filename and str(Path(f.filename).resolve()) == wanted]
        if mine:
            return f" at {display_path(mine[-1].filename)}:{mine[-1].lineno}"
    return ""
