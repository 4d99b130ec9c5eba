"""Runs the rules over a model graph, then applies selection, per-module ignores and suppressions."""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import functools
import linecache
import re
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from pytest_equivariance.errors import EquivarianceUsageError, shown
from pytest_equivariance.lint.findings import Finding
from pytest_equivariance.lint.rules import RULES, Rule, matching_codes

if TYPE_CHECKING:
    from pytest_equivariance.lint.sites import ModelGraph

#: ``# equiv: ignore`` or ``# equiv: ignore[EQ001, EQ002]`` on the finding's source line.
SUPPRESSION = re.compile(r"#\s*equiv:\s*ignore(?:\[(?P<codes>[A-Za-z0-9_,\s]*)\])?", re.IGNORECASE)


def _expand(patterns: Iterable[str], what: str) -> set[str]:
    codes: set[str] = set()
    for pattern in _codes(patterns, what):
        matched = matching_codes(pattern)
        if not matched:
            known = ", ".join(RULES)
            raise EquivarianceUsageError(
                f"Unknown rule code {shown(pattern)} in {what}; use one of {known} or a prefix such as EQ00."
            )
        codes.update(matched)
    return codes


def _codes(value: Any, what: str) -> tuple[str, ...]:
    """Return ``value`` as a tuple of strings, or raise: a list of rule codes was asked for."""
    try:
        items = tuple(value) if not isinstance(value, (str, bytes)) else None
    except TypeError:
        items = None
    if items is None or not all(isinstance(item, str) for item in items):
        raise EquivarianceUsageError(
            f"{what} takes a list of rule codes, got {shown(value)}; write e.g. ['EQ001']."
        )
    return items


def select_rules(select: Sequence[str] | None = None, ignore: Sequence[str] | None = None) -> list[Rule]:
    """Return the rules to run, in code order.

    ``select`` lists codes or prefixes ("EQ00" matches EQ001..EQ009, "ALL" every rule); every rule it
    matches is run, even one that is off by default. ``None`` selects the rules enabled by default.
    ``ignore`` then removes codes or prefixes. An unknown code raises
    :class:`~pytest_equivariance.errors.EquivarianceUsageError`.
    """
    if isinstance(select, str) or isinstance(ignore, str):
        raise EquivarianceUsageError(
            "select and ignore take a list of rule codes, not a string; write e.g. select=['EQ001']."
        )
    chosen = {c for c, r in RULES.items() if r.enabled_by_default} if select is None else _expand(select, "select")
    chosen -= _expand(() if ignore is None else ignore, "ignore")
    return [rule for code, rule in RULES.items() if code in chosen]


def validate_per_module_ignores(per_module_ignores: Mapping[str, Sequence[str]]) -> None:
    """Check that every ``{qualname glob: [codes]}`` entry lists known rule codes or prefixes.

    Raises :class:`~pytest_equivariance.errors.EquivarianceUsageError` for a string in place of a
    list and for an unknown code.
    """
    if not isinstance(per_module_ignores, Mapping) or not all(isinstance(k, str) for k in per_module_ignores):
        raise EquivarianceUsageError(
            f"per_module_ignores takes a dict of qualified-name globs to rule codes, got "
            f"{shown(per_module_ignores)}; write e.g. per_module_ignores={{'layer4.*': ['EQ002']}}."
        )
    for pattern, codes in per_module_ignores.items():
        if isinstance(codes, str):
            raise EquivarianceUsageError(
                f"per-module ignores for {shown(pattern)} must be a list of rule codes, not a string; "
                f"write e.g. {{{pattern!r}: [{codes!r}]}}."
            )
        _expand(codes, f"per-module ignores for {pattern!r}")


def run_rules(graph: "ModelGraph", rules: Sequence[Rule]) -> list[Finding]:
    """Return the findings of ``rules`` over every site of ``graph``, in execution order.

    A rule that fails on an unusual site is skipped for that site and the failure recorded in
    ``graph.errors``: a real model never crashes the linter.
    """
    findings: list[Finding] = []
    # One finding per call site: a layer reused, or a functional call in a loop that fx unrolled,
    # is one place in the source to fix; ``calls`` says how often the graph runs it.
    first: dict[tuple[str, str, str | None, int | None], int] = {}
    for site in graph.sites:
        if site.family == "blur":
            continue  # a fixed low-pass filter is what every fix puts there
        for rule in rules:
            if rule.check is None:
                continue
            try:
                hit = next(iter(rule.check(site, graph)), None)  # one finding per site and rule
            except Exception as exc:  # pragma: no cover - defensive
                graph.errors.append(f"{rule.code} could not check {site.qualname or site.op}: "
                                    f"{type(exc).__name__}: {exc}")
                continue
            if hit is None:
                continue
            file, line = site.locate()
            # A module is one site wherever it runs; a functional call is one site per source line.
            key = (rule.code, site.qualname, file, line) if line is not None or site.kind == "module" else None
            if key is not None and key in first:
                earlier = findings[first[key]]
                findings[first[key]] = dataclasses.replace(earlier, calls=earlier.calls + 1)
                continue
            if key is not None:
                first[key] = len(findings)
            findings.append(
                Finding(
                    code=rule.code,
                    severity=rule.severity,
                    message=hit.message,
                    qualname=site.qualname,
                    op=site.op,
                    file=file,
                    line=line,
                    fix=hit.fix,
                    params=dict(site.params),
                    kind=site.kind,
                )
            )
    return findings


def _code_matches(code: str, patterns: Iterable[str]) -> bool:
    return any(p.strip().upper() in ("ALL", "*") or code.startswith(p.strip().upper()) for p in patterns)


def ignored_by_module(finding: Finding, per_module_ignores: Mapping[str, Sequence[str]]) -> bool:
    """Return whether a ``{qualname glob: [codes]}`` entry matches the finding (fnmatch globs)."""
    for pattern, codes in per_module_ignores.items():
        if fnmatch.fnmatchcase(finding.qualname, pattern) and _code_matches(finding.code, codes):
            return True
    return False


@functools.lru_cache(maxsize=256)
def _parse(filename: str, size: int) -> ast.Module | None:
    try:
        return ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return None


def _span(filename: str, line: int) -> range:
    # A multi-line call or statement that starts on the finding's line may carry the comment on
    # any of its lines (`nn.MaxPool2d(\n    3, stride=2)  # equiv: ignore`).
    tree = _parse(filename, len(linecache.getlines(filename)))
    end = line
    if tree is None:
        return range(line, line + 1)
    for node in ast.walk(tree):
        if isinstance(node, (ast.stmt, ast.expr)) and getattr(node, "lineno", None) == line:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For,
                                     ast.While, ast.With, ast.Try)):
                end = max(end, node.end_lineno or line)
    return range(line, end + 1)


def suppressed_codes(filename: str | None, line: int | None) -> set[str] | None:
    """Return the codes a ``# equiv: ignore[...]`` comment suppresses at a source location.

    ``{"ALL"}`` for a bare ``# equiv: ignore``; ``None`` when there is no such comment.
    """
    if not filename or not line:
        return None
    linecache.checkcache(filename)
    lines = linecache.getlines(filename)
    if not lines or line > len(lines):
        return None
    span = range(line, line + 1) if "equiv" not in "".join(lines[line - 1:line + 40]) else _span(filename, line)
    found: set[str] | None = None
    for number in span:
        if number > len(lines):
            break
        for match in SUPPRESSION.finditer(lines[number - 1]):
            found = found or set()
            codes = match.group("codes")
            if codes is None or not codes.strip():
                found.add("ALL")
            else:
                found.update(c.strip().upper() for c in codes.split(",") if c.strip())
    return found


def is_suppressed(finding: Finding) -> bool:
    """Return whether the finding's source line carries a matching ``# equiv: ignore`` comment."""
    codes = suppressed_codes(finding.file, finding.line)
    return codes is not None and _code_matches(finding.code, codes)


def apply_filters(
    findings: Iterable[Finding],
    *,
    per_module_ignores: Mapping[str, Sequence[str]] | None = None,
    respect_suppressions: bool = True,
) -> list[Finding]:
    """Return the findings that neither a per-module ignore nor a suppression comment removes."""
    kept = []
    for finding in findings:
        if per_module_ignores and ignored_by_module(finding, per_module_ignores):
            continue
        if respect_suppressions and is_suppressed(finding):
            continue
        kept.append(finding)
    return kept
