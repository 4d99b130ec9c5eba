"""The lint cache: a target's reports, answered again while nothing they were made from has changed.

Pre-commit runs ``equiv-lint`` on every commit, and building and tracing a model costs an
``import torch`` and more. Like ruff's ``.ruff_cache``, ``.equiv_lint_cache/`` (next to the
settings file, or in the working directory) keeps one entry per target, keyed by:

- the target, the directory it is relative to, the working directory, ``sys.path`` and the Python
  that runs, the settings that change findings (rules, per-module ignores, input shape,
  factories, excludes) and this package's version;
- the files the lint read outside the standard library: the target file, every module it imported
  (the user's, which the loader removes from ``sys.modules`` again, and all others still there,
  site-packages ones included), each with its size, modification time and SHA-256;
- the versions of the installed distributions those modules belong to (torch among them).

A lookup reads the entry and checks every file: the user's files (outside site-packages) are hashed
again each time, installed ones are hashed only when their size or time changed. Any doubt is a
miss: an unreadable, truncated or foreign entry, a file gone or different, a version changed. A miss
lints and rewrites the entry atomically (write to a temporary file, then rename). Nothing here
imports torch, so a hit costs reading a few files. What a target's models gave is stored model by
model; a model that failed to load or lint is not, and is linted again by the next run while the
others are answered from the entry. ``--fix`` always lints afresh (it needs the models themselves).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import site
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from pytest_equivariance._version import __version__

#: The directory name, next to the settings file (or in the working directory).
CACHE_DIR = ".equiv_lint_cache"
#: The format of an entry; an entry of another format is a miss.
FORMAT = 3


def cache_key(parts: dict[str, Any]) -> dict[str, Any]:
    """Return the full key of a target: ``parts`` (target and settings) and the environment."""
    return {
        "format": FORMAT,
        "version": __version__,
        "python": sys.version,
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "sys_path": list(sys.path),
        **parts,
    }


@dataclass(frozen=True)
class Hit:
    """A stored result, and the files it was made from (each unchanged since)."""

    result: dict[str, Any]
    files: list[str]


class LintCache:
    """The entries of one cache directory: :meth:`lookup` a key, :meth:`store` a result under it."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        # Checks made once per process: the entries of many targets list the same torch files.
        self._checked: dict[tuple[Any, ...], bool] = {}
        self._versions: dict[str, str | None] = {}

    def path_for(self, key: dict[str, Any]) -> Path:
        """Return the file that holds the entry of ``key``."""
        text = json.dumps(key, sort_keys=True, default=str)
        return self.directory / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.json"

    def lookup(self, key: dict[str, Any]) -> Hit | None:
        """Return the result stored under ``key`` if every file and version it depends on is unchanged."""
        try:
            entry = json.loads(self.path_for(key).read_text(encoding="utf-8"))
            if entry["key"] != json.loads(json.dumps(key, default=str)):
                return None
            if not all(self._unchanged(record) for record in entry["files"]):
                return None
            for name, version in entry["distributions"].items():
                if name not in self._versions:
                    self._versions[name] = _version(name)
                if self._versions[name] != version:
                    return None
            return Hit(entry["result"], [record[0] for record in entry["files"]])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent, truncated or not ours: lint again and replace it

    def _unchanged(self, record: list[Any]) -> bool:
        key = tuple(record)
        if key not in self._checked:
            self._checked[key] = _unchanged(*record)
        return self._checked[key]

    def store(self, key: dict[str, Any], files: Iterable[str], result: dict[str, Any]) -> None:
        """Write ``result`` under ``key``, with the fingerprints of ``files``; never raises."""
        try:
            records, distributions = _fingerprints(files)
            entry = {"key": key, "files": records, "distributions": distributions, "result": result}
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():  # as ruff does: the cache never shows up in `git status`
                ignore.write_text("# Created by equiv-lint automatically.\n*\n", encoding="utf-8")
            target = self.path_for(key)
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".entry-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(entry, fh, default=str)
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except (OSError, TypeError, ValueError):
            return  # a read-only or full disk costs the next run a lint, nothing more


def loaded_module_files() -> dict[str, str]:
    """Return ``{file: top-level package}`` of the modules imported now, outside the standard library."""
    stdlib = _stdlib_roots()
    files: dict[str, str] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not file:
            continue
        path = os.path.abspath(file)
        if not path.startswith(stdlib) or _is_installed(path):
            files.setdefault(path, name.split(".", 1)[0])
    return files


@functools.lru_cache(maxsize=1)
def _stdlib_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(os.path.abspath(paths[k]) + os.sep for k in ("stdlib", "platstdlib") if k in paths)


@functools.lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    roots = [*site.getsitepackages(), site.getusersitepackages()]
    return tuple(os.path.abspath(r) + os.sep for r in roots if r)


def _is_installed(path: str) -> bool:
    return path.startswith(_installed_roots()) or f"{os.sep}site-packages{os.sep}" in path \
        or f"{os.sep}dist-packages{os.sep}" in path


def _digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _fingerprints(files: Iterable[str]) -> tuple[list[list[Any]], dict[str, str]]:
    """Return ``[path, size, mtime_ns, sha256, installed]`` for each file, and the versions of their
    distributions."""
    records = []
    for path in sorted(set(files)):
        try:
            stat = os.stat(path)
            records.append([path, stat.st_size, stat.st_mtime_ns, _digest(path), _is_installed(path)])
        except OSError:
            continue  # a module without a readable file (a zip import, say) is keyed by its version
    return records, _distributions(files)


def _distributions(files: Iterable[str]) -> dict[str, str]:
    """Return ``{distribution: version}`` for the installed packages among ``files``' modules."""
    from importlib import metadata

    modules = loaded_module_files()
    tops = {modules[f] for f in files if f in modules and _is_installed(f)}
    owners = metadata.packages_distributions()
    names = sorted({dist for top in tops for dist in owners.get(top, ())})
    return {name: version for name in names if (version := _version(name)) is not None}


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _unchanged(path: str, size: int, mtime_ns: int, digest: str, installed: bool) -> bool:
    stat = os.stat(path)
    if stat.st_size != size:
        return False
    if installed and stat.st_mtime_ns == mtime_ns:
        return True  # an installed file of the same size and time: its distribution's version decides
    return _digest(path) == digest
