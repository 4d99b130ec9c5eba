"""``equiv-lint --fix`` / ``--diff`` / ``--add-noqa``: edit the user's files, verify, and never lose code.

The rewrites themselves live in :mod:`pytest_equivariance.fix.source`; this module is the shell
around them. ``--fix`` writes each planned file, lints every target again, and keeps the edits only
when the fixed findings are gone, no finding is new, and every model still has the same state-dict
keys and shapes and the same output shapes; otherwise every file it wrote is put back as it was,
and the reason printed. A file that changed on disk since it was linted, or that cannot be written,
is not touched.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pytest_equivariance.cli.output import EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS
from pytest_equivariance.cli.output import error as _error

if TYPE_CHECKING:
    from rich.console import Console

    from pytest_equivariance.cli.run import Run
    from pytest_equivariance.lint.findings import Finding


def edit(args: argparse.Namespace, run: "Run", targets: list[tuple[str, Path | None]], console: "Console",
         stdout: IO[str], stderr: IO[str]) -> int:
    """Run ``--fix``, ``--diff`` or ``--add-noqa`` on the findings of ``run``; return the exit code."""
    if run.failed:
        for report in run.reports:
            for error in report.errors:
                _error(stderr, f"{report.target}: {error}")
        _error(stderr, "Nothing was edited: fix the errors above first (a fix must be checked by linting again).")
        return EXIT_ERROR
    findings = _unique([f for r in run.reports for f in r.findings])
    if args.add_noqa:
        return _add_noqa(findings, console, stderr)
    from pytest_equivariance.fix import source as autofix

    plans, edits = autofix.plan(findings, unsafe=args.unsafe_fixes)
    if args.diff:
        changed = [p for p in plans if p.changed]
        for p in changed:
            stdout.write(p.diff())
        _print_unfixed(console, edits)
        n = sum(e.status == autofix.FIXED for e in edits)
        console.print(f"Would fix {n} finding{'s' if n != 1 else ''} in {len(changed)} "
                      f"file{'s' if len(changed) != 1 else ''} (--fix applies it).", highlight=False)
        return EXIT_FINDINGS if changed else EXIT_CLEAN
    return _fix(args, run, targets, plans, edits, console, stderr)


def _unique(findings: list["Finding"]) -> list["Finding"]:
    # One model file linted as several targets reports a site more than once.
    seen, out = set(), []
    for f in findings:
        key = (f.code, f.qualname, f.file, f.line, f.op)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _fix(args: argparse.Namespace, run: "Run", targets: list[tuple[str, Path | None]], plans: list[Any],
         edits: list[Any], console: "Console", stderr: IO[str]) -> int:
    from pytest_equivariance.cli.run import Run
    from pytest_equivariance.files import write_atomic  # keeps the file's permissions
    from pytest_equivariance.fix import source as autofix
    from pytest_equivariance.lint.loader import display_path
    from pytest_equivariance.report.findings_text import render_model, render_summary

    written: dict[Path, str] = {}  # path -> its text before the fix (what a restore writes back)
    skipped_files: dict[Path, str] = {}
    for p in plans:
        if not p.changed:
            continue
        path = p.path.resolve()
        problem = _cannot_write(p, run.snapshots.get(path))
        if problem is None:
            try:
                compile(p.after, str(path), "exec")
            except SyntaxError as exc:  # pragma: no cover - LibCST writes valid code
                problem = f"the rewritten source does not parse ({exc.msg} at line {exc.lineno})"
        if problem is not None:
            skipped_files[path] = problem
            continue
        try:  # the plan's text is the file's: _cannot_write just compared their digests
            write_atomic(path, p.after)
        except OSError as exc:
            skipped_files[path] = f"it cannot be written ({exc.strerror or exc})"
            continue
        written[path] = p.before
    for path, why in skipped_files.items():
        _error(stderr, f"{display_path(path)} was not fixed: {why}.")

    after = Run(config=run.config, verbose=False, allow_no_model=run.allow_no_model, stderr=stderr, signatures={})
    if written:
        for text, root in targets:
            after.lint_target(text, root)
        problem = _regression(run, after, edits, set(written))
        if problem is not None:
            for path, original in written.items():
                write_atomic(path, original)
            _error(stderr, f"The fixes were undone, every file restored as it was: {problem}.")
            after, written = run, {}
    else:
        after = run
    fixed = [e for e in edits if e.status == autofix.FIXED and e.finding.file is not None
             and Path(e.finding.file).resolve() in written]
    remaining = sum(len(r.findings) for r in after.reports)
    if not (fixed or remaining or after.failed or skipped_files or args.verbose):
        return EXIT_CLEAN  # nothing to fix and nothing found: a clean pre-commit run says nothing
    for report in after.reports:
        render_model(console, report, location=after.locations.get(report.target), verbose=args.verbose)
    _print_unfixed(console, [e for e in edits if e.status != autofix.FIXED])
    _print_rewritten_lines(console, run, after, [e.finding for e in fixed])
    render_summary(console, after.reports, fail_level=run.config.fail_level)
    n = len(_unique([e.finding for e in fixed]))
    console.print(f"Fixed {n} finding{'s' if n != 1 else ''} ({remaining} remaining).", highlight=False)
    if after.failed:
        return EXIT_ERROR
    worst = [f for r in after.reports for f in r.findings if f.severity.rank >= run.config.fail_level.rank]
    return EXIT_FINDINGS if worst and not args.exit_zero else EXIT_CLEAN


def _cannot_write(plan: Any, snapshot: str | None) -> str | None:
    from pytest_equivariance.files import read_only_reason
    from pytest_equivariance.fix import source as autofix

    path = plan.path
    current = autofix.digest(path.read_bytes())
    if current != plan.digest or (snapshot is not None and snapshot != current):
        return "it changed on disk since it was linted; run equiv-lint --fix again"
    reason = read_only_reason(path)
    if reason is not None:
        return f"{reason}; make it writable, or apply the diff from --diff by hand"
    return _shadowed(path)


def _shadowed(path: Path) -> str | None:
    """Return why the fixed file could not import our names where it lives, or None when it can.

    The rewrite adds ``from pytest_equivariance import ...``; Python looks in the script's directory
    and the working directory before site-packages, so a local module of that name would win there.
    """
    from importlib.machinery import PathFinder

    import pytest_equivariance

    ours = Path(pytest_equivariance.__file__).resolve().parent
    cwd = Path.cwd().resolve()
    directories = [path.resolve().parent]
    directories += [d for d in directories[0].parents if d == cwd or cwd in d.parents]
    for directory in dict.fromkeys([*directories, cwd]):
        spec = PathFinder.find_spec("pytest_equivariance", [str(directory)])
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
        found = origin.parent if origin is not None and origin.name == "__init__.py" else origin
        if spec is not None and found != ours:
            local = found or directory / "pytest_equivariance"
            return (f"the fixed file imports from pytest_equivariance, but {local} would be imported "
                    f"instead there; rename that local module")
    return None


def _regression(before: "Run", after: "Run", edits: list[Any], written: set[Path]) -> str | None:
    """Return why the rewritten models are not the originals made safe, or None when they are."""
    from pytest_equivariance.fix import source as autofix

    if after.failed:
        return f"linting again failed for {', '.join(after.failed)}"
    old = {(r.target, f.code, f.qualname) for r in before.reports for f in r.findings}
    new = {(r.target, f.code, f.qualname) for r in after.reports for f in r.findings}
    fixed = {(e.finding.code, e.finding.qualname) for e in edits if e.status == autofix.FIXED
             and e.finding.file is not None and Path(e.finding.file).resolve() in written}
    appeared = sorted(new - old)
    if appeared:
        target, code, qualname = appeared[0]
        return f"linting again found a new {code} at {qualname or '<model>'} in {target}"
    still = sorted((t, c, q) for t, c, q in new if (c, q) in fixed)
    if still:
        target, code, qualname = still[0]
        return f"{code} at {qualname} in {target} is still reported after its fix"
    assert before.signatures is not None and after.signatures is not None
    for target, signature in before.signatures.items():
        now = after.signatures.get(target)
        if now is None:
            continue
        if now.state != signature.state:
            changed = sorted(set(now.state) ^ set(signature.state))
            return f"the state dict of {target} changed ({changed[0][0]}): checkpoints would not load"
        if signature.outputs is not None and now.outputs is not None and now.outputs != signature.outputs:
            return f"the output shape of {target} changed from {signature.outputs} to {now.outputs}"
    return None


def _print_rewritten_lines(console: "Console", before: "Run", after: "Run", fixed: list["Finding"]) -> None:
    """Say what became of each other finding on a line the fix rewrote: still reported, or not.

    A rewrite replaces the whole call, so a finding beside the fixed one (EQ011's even kernel next
    to EQ001's strided pool) may be gone with it, or stay; either way the user is told.
    """
    from rich.text import Text

    from pytest_equivariance.lint.loader import display_path

    def site(f: "Finding") -> tuple[str, int | None]:
        return (str(Path(f.file).resolve()) if f.file else "", f.line)

    rewritten = {site(f) for f in fixed}
    done = {(f.code, f.qualname, f.file, f.line) for f in fixed}
    now = {(r.target, f.code, f.qualname) for r in after.reports for f in r.findings}
    for report in before.reports:
        for f in _unique(report.findings):
            if site(f) not in rewritten or (f.code, f.qualname, f.file, f.line) in done:
                continue
            fate = "still reported" if (report.target, f.code, f.qualname) in now else "no longer reported"
            console.print(Text(f"  {fate}: {display_path(f.file)}:{f.line}: {f.code} {f.qualname or f.op} "
                               f"(its line was rewritten by the fix)", style="yellow"), highlight=False)


def _print_unfixed(console: "Console", edits: list[Any]) -> None:
    from rich.text import Text

    from pytest_equivariance.fix import source as autofix
    from pytest_equivariance.lint.loader import display_path

    for e in edits:
        if e.status == autofix.FIXED or (e.status == autofix.UNAVAILABLE and e.finding.severity.value == "info"):
            continue  # info findings with no rewrite (EQ011) would only repeat the report
        f = e.finding
        where = f"{display_path(f.file)}:{f.line}" if f.file and f.line else "<unknown>"
        console.print(Text(f"  not fixed: {where}: {f.code} {f.qualname or f.op}: {e.reason}", style="yellow"))


def _add_noqa(findings: list["Finding"], console: "Console", stderr: IO[str]) -> int:
    from pytest_equivariance.files import write_atomic
    from pytest_equivariance.fix.source import add_noqa
    from pytest_equivariance.lint.loader import display_path
    from pytest_equivariance.lint.locations import is_user_file

    by_file: dict[str, dict[int, set[str]]] = {}
    for f in findings:
        if f.file is not None and f.line is not None and is_user_file(f.file):
            by_file.setdefault(f.file, {}).setdefault(f.line, set()).add(f.code)
    total, failed = 0, False
    for file, lines in sorted(by_file.items()):
        path = Path(file)
        text = path.read_text(encoding="utf-8")
        new, changed = add_noqa(text, lines)
        if not changed:
            continue
        try:
            write_atomic(path, new)
        except OSError as exc:  # a read-only file or directory: left exactly as it was
            _error(stderr, f"{display_path(path)} was not edited: {exc.strerror or exc}; make it writable, "
                           f"or add the comments by hand.")
            failed = True
            continue
        total += changed
    console.print(f"Added {total} suppression comment{'s' if total != 1 else ''}.", highlight=False)
    return EXIT_ERROR if failed else EXIT_CLEAN
