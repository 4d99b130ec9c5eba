"""The docs stay true: every dotted name they give resolves, and every marked figure is today's.

A full name such as ``pytest_equivariance.layers.polyphase.share_phases`` is followed attribute by
attribute, as Python evaluates it (importing a submodule only where the attribute is missing), so a
name that only ``from ... import`` could reach — an attribute of a module shadowed by a function of
the same name, as ``fix.antialias`` is — fails here as it would in a user's code. The short form in
code spans (``lint.sites.Site``, the map in docs/architecture.md) is a module path: its longest
importable prefix is the module, the rest attributes of it.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: A dotted name of the package; ``pytest_equivariance.py`` (a file name, not a name) is left out.
DOTTED = re.compile(r"\bpytest_equivariance(?:\.[A-Za-z_]\w*)+(?!\w)")
#: The short form the docs use in code spans, relative to the package: `fix.antialias`, `check.run`.
SHORT = re.compile(r"`((?:check|cli|fix|gates|layers|lint|plugin|report)(?:\.[A-Za-z_]\w*)+)(?![\w.])")
#: Code spans of the short form's shape that name something else: a pytest test report's attribute,
#: an ``AntialiasReport`` method.
NOT_PACKAGE_NAMES = {"report.equivariance", "report.to_json"}
FILE_SUFFIXES = (".py", ".md", ".toml", ".json", ".html")


def dotted_names(text: str) -> list[tuple[int, str, bool]]:
    """Return ``(line, name, short)`` for every dotted package name in ``text`` (file names left out);
    ``short`` for the module-path form of code spans, given here with the package's name."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in DOTTED.finditer(line):
            name = match.group(0)
            if not name.endswith(FILE_SUFFIXES):
                out.append((number, name, False))
        for match in SHORT.finditer(line):
            name = match.group(1)
            if name not in NOT_PACKAGE_NAMES and not name.endswith(FILE_SUFFIXES):
                out.append((number, f"pytest_equivariance.{name}", True))
    return out


def resolves(name: str, *, module_path: bool = False) -> bool:
    """Whether ``name`` evaluates, attribute by attribute, to a module or an object in one; with
    ``module_path``, whether its longest importable prefix is a module holding the rest."""
    parts = name.split(".")
    if module_path:
        for depth in range(len(parts), 0, -1):
            try:
                obj: object = importlib.import_module(".".join(parts[:depth]))
            except ModuleNotFoundError:
                continue
            return _attributes(obj, parts[depth:])
        return False
    obj = importlib.import_module(parts[0])
    for depth, part in enumerate(parts[1:], start=2):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        if not isinstance(obj, ModuleType):
            return False
        try:
            obj = importlib.import_module(".".join(parts[:depth]))
        except ModuleNotFoundError:
            return False
    return True


def _attributes(obj: object, names: list[str]) -> bool:
    for part in names:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def test_the_name_scanner_reads_names_and_leaves_file_names():
    text = ("use `pytest_equivariance.fix.antialias(model)`.\na local pytest_equivariance.py shadows it\n"
            "`fix.polyphase.share_phases(model)`, on `report.equivariance`")
    assert dotted_names(text) == [(1, "pytest_equivariance.fix.antialias", False),
                                  (3, "pytest_equivariance.fix.polyphase.share_phases", True)]


@pytest.mark.parametrize(("name", "module_path", "ok"), [
    ("pytest_equivariance.layers.polyphase.share_phases", False, True),
    ("pytest_equivariance.fix.BlurPool2d", False, True),
    ("pytest_equivariance.fix.polyphase.share_phases", False, False),  # no such module
    ("pytest_equivariance.fix.antialias.RECIPE", False, False),  # fix.antialias is the function
    ("pytest_equivariance.fix.antialias.RECIPE", True, True),  # the module's constant
    ("pytest_equivariance.lint.sites.Site", True, True),
    ("pytest_equivariance.fix.polyphase.share_phases", True, False),
])
def test_names_resolve_as_python_evaluates_them(name, module_path, ok):
    assert resolves(name, module_path=module_path) is ok


def test_every_dotted_name_in_the_docs_resolves():
    broken = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in DOCS
        for line, name, short in dotted_names(path.read_text(encoding="utf-8"))
        if not resolves(name, module_path=short)
    ]
    assert not broken, "dotted names that do not resolve:\n" + "\n".join(broken)
