"""``[tool.equiv-lint]`` settings: found in ``pyproject.toml`` upward from the working directory.

One table, validated when read, so that a typo in a key or a value stops the run with a sentence
that names the file and the key rather than being silently ignored::

    [tool.equiv-lint]
    targets = ["models/net.py", "mypkg.models:build_model"]
    select = ["EQ00"]                      # codes or prefixes; "ALL" for every rule
    ignore = ["EQ011"]
    per-module-ignores = { "head.*" = ["EQ008"] }   # qualname glob -> codes
    input-shape = [1, 3, 224, 224]         # or "1,3,224,224"
    fail-level = "warning"                 # info | warning | error
    factories = ["build_*"]                # zero-argument functions to call in model files
    exclude = ["tests/*"]                  # file targets to skip (globs, relative to the table's file)
    cache-dir = ".equiv_lint_cache"        # where results are cached (relative to the table's file)

Command-line flags override these values (:meth:`LintConfig.override`).
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_equivariance.errors import ConfigError, InputShapeError
from pytest_equivariance.lint.findings import Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The file searched for, and the table inside it.
PYPROJECT = "pyproject.toml"
TABLE = "equiv-lint"

@dataclass(frozen=True)
class LintConfig:
    """The linter's settings after validation; ``None`` / empty means "not set"."""

    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    per_module_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    fail_level: Severity = Severity.WARNING
    targets: tuple[str, ...] = ()
    factories: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: The lint cache's directory as written (None: ``.equiv_lint_cache`` in :attr:`root`).
    cache_dir: str | None = None
    #: The file the settings were read from (None: defaults only).
    path: Path | None = None

    @property
    def root(self) -> Path:
        """Return the directory relative targets and ``exclude`` globs are resolved against."""
        return self.path.parent if self.path is not None else Path.cwd()

    @property
    def cache_path(self) -> Path:
        """Return the lint cache's directory, relative ones resolved against :attr:`root`."""
        from pytest_equivariance.lint.cache import CACHE_DIR

        return self.root / (self.cache_dir or CACHE_DIR)

    def override(self, **changes: Any) -> "LintConfig":
        """Return a copy with every change whose value is not ``None`` applied (CLI flags win)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def find_config(start: Path | str | None = None) -> Path | None:
    """Return the nearest ``pyproject.toml`` at or above ``start`` with a ``[tool.equiv-lint]`` table.

    Like ruff, a ``pyproject.toml`` without the table does not stop the search, so a sub-project
    without settings inherits those of the repository.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / PYPROJECT
        if candidate.is_file():
            data = _read_toml(candidate)
            if TABLE in data.get("tool", {}):
                return candidate
    return None


def load_config(path: Path | str | None = None, *, start: Path | str | None = None) -> LintConfig:
    """Return the settings in ``path``, or in the file :func:`find_config` finds; defaults if none.

    ``path`` may be a ``pyproject.toml`` (its ``[tool.equiv-lint]`` table is read) or any other
    TOML file, whose top level is the table. Raises :class:`ConfigError` for a missing or malformed
    file, unknown keys and bad values.
    """
    if path is None:
        path = find_config(start)
        if path is None:
            return LintConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Config file {path} does not exist; check the --config path or drop the flag to use "
            f"the nearest pyproject.toml."
        )
    data = _read_toml(path)
    if path.name == PYPROJECT:
        table = data.get("tool", {}).get(TABLE, {})
    else:
        table = data.get("tool", {}).get(TABLE, data)
    return parse_config(table, path=path)


def parse_config(table: Mapping[str, Any], *, path: Path | None = None) -> LintConfig:
    """Return a validated :class:`LintConfig` for the keys of one ``[tool.equiv-lint]`` table."""
    where = f"[tool.{TABLE}] in {path}" if path is not None else f"[tool.{TABLE}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} is not a table; write it as [tool.{TABLE}] with key = value lines.")
    values: dict[str, Any] = {"path": path}
    for key, value in table.items():
        try:
            parse = _PARSERS[key]
        except KeyError:
            close = difflib.get_close_matches(key, _PARSERS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys are {', '.join(_PARSERS)}."
            raise ConfigError(f"Unknown key {key!r} in {where}; {hint}") from None
        attr, convert = parse
        try:
            values[attr] = convert(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Bad value for {key!r} in {where}: {exc}.") from exc
    return LintConfig(**values)


def parse_codes(codes: Iterable[str] | str, *, rules: Iterable[str] | None = None) -> tuple[str, ...]:
    """Return the rule codes that ``codes`` (codes, prefixes like ``EQ00``, ``ALL``) name, in order.

    ``rules`` is the full list of codes (default: the linter's rule table). Raises ``ValueError``
    naming an entry that matches no rule.
    """
    from pytest_equivariance.lint.rules import RULES, matching_codes

    if isinstance(codes, str):
        codes = codes.split(",")
    known = list(rules) if rules is not None else list(RULES)
    chosen: set[str] = set()
    for raw in codes:
        if not raw.strip():
            continue
        matched = matching_codes(raw, known)
        if not matched:
            raise ValueError(
                f"{raw.strip()!r} matches no rule (rules are {known[0]}..{known[-1]}; "
                f"see equiv-lint --list-rules)"
                if known
                else f"{raw.strip()!r} matches no rule"
            )
        chosen.update(matched)
    return tuple(k for k in known if k in chosen)


def is_excluded(path: Path | str, config: LintConfig) -> bool:
    """Return whether a file target matches one of ``config.exclude`` (globs relative to its root)."""
    if not config.exclude:
        return False
    target = Path(path).resolve()
    try:
        relative = target.relative_to(config.root.resolve()).as_posix()
    except ValueError:
        relative = target.as_posix()
    return any(
        Path(relative).match(pattern) or _fnmatch(relative, pattern) for pattern in config.exclude
    )


# -- value parsers: each raises ValueError with a clause that completes "Bad value for 'key' in ...: "


def _fnmatch(relative: str, pattern: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(relative, pattern) or fnmatchcase(relative, pattern.rstrip("/") + "/*")


def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list):
        raise ValueError(f"expected a list of strings, e.g. [\"EQ001\"], got {value!r}")
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


def _codes(value: Any) -> tuple[str, ...]:
    return parse_codes(_string_list(value))


def _per_module_ignores(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ValueError(
            f"expected a table of qualname globs to code lists, e.g. {{ \"head.*\" = [\"EQ008\"] }}, "
            f"got {value!r}"
        )
    return {str(glob): _codes(codes) for glob, codes in value.items()}


def _input_shape(value: Any) -> tuple[int, ...]:
    from pytest_equivariance.inputs import parse_shape

    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str):
        raise ValueError(f"expected a list of positive integers, e.g. [1, 3, 224, 224], got {value!r}")
    try:
        return parse_shape(value)
    except InputShapeError:
        raise ValueError(
            f"expected positive integers, batch and channels first, e.g. [1, 3, 224, 224], "
            f"got {value!r}"
        ) from None


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, e.g. \".equiv_lint_cache\", got {value!r}")
    return value


def _severity(value: Any) -> Severity:
    if not isinstance(value, str):
        raise ValueError(f"expected one of \"info\", \"warning\", \"error\", got {value!r}")
    return Severity.parse(value)


#: key -> (LintConfig attribute, converter)
_PARSERS: dict[str, tuple[str, Any]] = {
    "select": ("select", _codes),
    "ignore": ("ignore", _codes),
    "per-module-ignores": ("per_module_ignores", _per_module_ignores),
    "input-shape": ("input_shape", _input_shape),
    "fail-level": ("fail_level", _severity),
    "targets": ("targets", _string_list),
    "factories": ("factories", _string_list),
    "exclude": ("exclude", _string_list),
    "cache-dir": ("cache_dir", _string),
}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix the file.") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read {path} ({exc.strerror}); check its permissions.") from exc
