"""``equiv-lint``: lint PyTorch models for layers that break shift equivariance.

::

    equiv-lint models/net.py                      # every model the file defines
    equiv-lint models/net.py::Net mypkg.zoo:build --format sarif > equiv.sarif
    equiv-lint --explain EQ001

Exit codes follow ruff's: 0 when no finding is at or above the fail level, 1 when one is, 2 for a
usage, config or load error (the other targets of the call are still linted). The command is a thin
shell: targets are loaded by :mod:`pytest_equivariance.lint.loader`, linted by
:func:`pytest_equivariance.lint.lint_model` and drawn by the renderers in
:mod:`pytest_equivariance.report`. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pytest_equivariance._version import __version__
from pytest_equivariance.cli.output import EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS, PROG
from pytest_equivariance.cli.output import console as _console
from pytest_equivariance.cli.output import error as _error
from pytest_equivariance.cli.run import Run
from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.lint.config import LintConfig, load_config, parse_codes
from pytest_equivariance.lint.findings import Severity

if TYPE_CHECKING:
    from rich.console import Console

FORMATS = ("text", "json", "sarif", "github")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``equiv-lint`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    try:
        return _main(argv, sys.stdout, sys.stderr)
    except BrokenPipeError:  # `equiv-lint ... | head`: the reader left; say nothing more
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FINDINGS


def _main(argv: Sequence[str] | None, stdout: IO[str], stderr: IO[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except EquivarianceUsageError as exc:
        _error(stderr, exc)
        return EXIT_ERROR
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if args.version:
        print(f"{PROG} {__version__}", file=stdout)
        return EXIT_CLEAN
    try:
        # Rule documentation needs no settings: it works even where pyproject.toml is broken.
        if args.list_rules:
            return _list_rules(stdout, args.format)
        if args.explain:
            return _explain(stdout, args.explain)
        config = _configure(args)
        targets = _targets(args, config)
    except EquivarianceUsageError as exc:
        _error(stderr, exc, verbose=args.verbose)
        return EXIT_ERROR

    console = _console(stdout) if args.format == "text" else None
    run = Run(config=config, verbose=args.verbose, allow_no_model=args.allow_no_model, stderr=stderr)
    if not args.no_cache:
        from pytest_equivariance.lint.cache import LintCache

        run.cache = LintCache(config.cache_path)
    editing = args.fix or args.diff or args.add_noqa
    if editing:
        if args.format != "text" or args.statistics:
            _error(stderr, f"--fix, --diff and --add-noqa print text; drop --format {args.format} / --statistics.")
            return EXIT_ERROR
        if sum((args.fix, args.diff, args.add_noqa)) > 1:
            _error(stderr, "Pass one of --fix, --diff and --add-noqa, not several.")
            return EXIT_ERROR
        if args.fix:  # only --fix lints again and compares: --diff and --add-noqa need no signatures
            run.signatures = {}
    streaming = console is not None and not args.statistics and not editing
    for text, root in targets:
        reports = run.lint_target(text, root)
        if streaming:  # text streams, model by model; the other formats are documents
            from pytest_equivariance.report.findings_text import render_model

            for report in reports:
                location = run.locations.get(report.target)
                render_model(console, report, location=location, verbose=args.verbose, quiet=args.quiet)
    # Nothing linted, and not on purpose (--allow-no-model, or targets the settings exclude).
    nothing = not run.reports and not run.failed and not args.allow_no_model and not run.excluded
    if editing:
        if nothing:
            _error(stderr, _no_model(targets))
            return EXIT_ERROR
        from pytest_equivariance.cli import edit

        assert console is not None
        return edit.edit(args, run, targets, console, stdout, stderr)
    if args.statistics:
        _render_statistics(args.format, run, stdout)
    elif not (args.quiet and args.format == "text"):
        _render(args.format, run, stdout, console)
    if args.format == "github" and not args.no_github_summary:
        _append_step_summary(run, stderr)
    if run.failed:
        return EXIT_ERROR
    if nothing:  # a gate that checked nothing must not pass
        _error(stderr, _no_model(targets))
        return EXIT_ERROR
    worst = [f for r in run.reports for f in r.findings if f.severity.rank >= config.fail_level.rank]
    return EXIT_FINDINGS if worst and not args.exit_zero else EXIT_CLEAN


def _no_model(targets: list[tuple[str, Path | None]]) -> str:
    named = ", ".join(text for text, _ in targets) or "the targets"
    return (f"No model found in {named}; point equiv-lint at the files that define models, or pass "
            f"--allow-no-model to accept that (as the pre-commit hook does).")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``equiv-lint`` (usage errors raise EquivarianceUsageError)."""
    parser = _Parser(
        prog=PROG,
        description="Lint PyTorch models for layers that break shift equivariance (aliasing "
        "downsamplers and friends) and say what to use instead.",
        epilog="Targets: models/net.py (every model it defines), models/net.py::Name, "
        "pkg.module:name. Settings: [tool.equiv-lint] in pyproject.toml. "
        "Exit codes: 0 clean, 1 findings at or above the fail level, 2 usage or load error.",
    )
    add = parser.add_argument
    add("targets", nargs="*", metavar="TARGET", help="model files or directories, file.py::Name, pkg.module:name")
    add("--format", "--output-format", dest="format", choices=FORMATS, default="text",
        help="output format (default: text); --output-format is the same flag, as in ruff")
    add(
        "--select",
        action="append",
        metavar="CODES",
        help="rules to run: codes or prefixes, comma-separated (ALL for every rule)",
    )
    add("--ignore", action="append", metavar="CODES", help="rules to skip, comma-separated")
    add(
        "--fail-level",
        choices=[s.value for s in Severity],
        help="lowest severity that makes the exit code 1 (default: warning)",
    )
    add("--input-shape", metavar="SHAPE", help="example input, e.g. 1,3,224,224 (default: inferred)")
    add(
        "--config",
        metavar="PATH",
        help="settings file (default: nearest pyproject.toml with [tool.equiv-lint])",
    )
    add(
        "--allow-no-model",
        action="store_true",
        help="skip file targets that define no model instead of failing (for pre-commit)",
    )
    add("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    add("--no-cache", action="store_true", help="lint every target afresh, neither reading nor writing the cache")
    add("--cache-dir", metavar="DIR",
        help="the cache's directory (default: .equiv_lint_cache next to the settings file, or cache-dir there)")
    add("--quiet", "-q", action="store_true", help="print the findings only: no model headers, notes or summary")
    add("--statistics", action="store_true",
        help="print one line per rule code with its number of findings instead of the findings")
    add("--list-rules", action="store_true", help="list the rules and exit")
    add("--explain", metavar="CODE", help="explain a rule (e.g. EQ001) and exit")
    add("--fix", action="store_true",
        help="rewrite the flagged layers in your source to their anti-aliased drop-ins (safe fixes only)")
    add("--unsafe-fixes", action="store_true", help="with --fix / --diff: also apply fixes that can change shapes")
    add("--diff", action="store_true", help="print the diff --fix would apply and change nothing (exit 1 if any)")
    add("--add-noqa", action="store_true",
        help="append '# equiv: ignore[CODE]' to every flagged line, to adopt the linter and gate only new findings")
    add("--no-github-summary", action="store_true",
        help="with --format github: do not append the findings table to $GITHUB_STEP_SUMMARY")
    add("--verbose", "-v", action="store_true", help="show tracebacks and skipped models")
    add("--version", action="store_true", help="print the version and exit")
    return parser


# -- steps of main --------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit
        raise EquivarianceUsageError(f"{message[:1].upper()}{message[1:]}; see {PROG} --help.")


def _configure(args: argparse.Namespace) -> LintConfig:
    """Return the settings file's config with the command-line flags applied on top."""
    from pytest_equivariance.inputs import parse_shape

    config = load_config(args.config)
    changes: dict[str, Any] = {}
    for flag in ("select", "ignore"):
        values = getattr(args, flag)
        if values is not None:
            try:
                changes[flag] = parse_codes(",".join(values))
            except ValueError as exc:
                raise EquivarianceUsageError(f"Bad --{flag}: {exc}.") from None
    if args.fail_level is not None:
        changes["fail_level"] = Severity.parse(args.fail_level)
    if args.input_shape is not None:
        changes["input_shape"] = parse_shape(args.input_shape)
    if args.cache_dir is not None:
        changes["cache_dir"] = str(Path(args.cache_dir).resolve())
    return config.override(**changes)


def _targets(args: argparse.Namespace, config: LintConfig) -> list[tuple[str, Path | None]]:
    """Return (target, directory it is relative to): the command line's, else the config's."""
    if args.targets:
        return [(t, None) for t in args.targets]
    if config.targets:
        return [(t, config.root) for t in config.targets]
    raise EquivarianceUsageError(
        f"No targets given; pass a model file (e.g. {PROG} models/net.py) or set targets in "
        f"[tool.equiv-lint] in pyproject.toml."
    )


def _list_rules(stdout: IO[str], fmt: str) -> int:
    from pytest_equivariance.lint.rules import RULES

    if fmt == "json":
        import json

        rows = [
            {
                "code": r.code,
                "name": r.name,
                "severity": r.severity.value,
                "enabled_by_default": r.enabled_by_default,
                "summary": r.summary,
            }
            for r in RULES.values()
        ]
        print(json.dumps(rows, indent=2), file=stdout)
    else:
        from pytest_equivariance.report.findings_text import render_rule_table

        render_rule_table(_console(stdout), RULES)
    return EXIT_CLEAN


def _explain(stdout: IO[str], code: str) -> int:
    from pytest_equivariance.lint.rules import RULES
    from pytest_equivariance.report.findings_text import render_explanation

    rule = RULES.get(code.strip().upper())
    if rule is None:
        raise EquivarianceUsageError(
            f"Unknown rule code {code!r}; the rules are {', '.join(RULES)} ({PROG} --list-rules)."
        )
    console = _console(stdout)
    render_explanation(console, rule, markdown=console.is_terminal)
    return EXIT_CLEAN


def _render(fmt: str, run: Run, stdout: IO[str], console: "Console | None") -> None:
    if fmt == "text":
        from pytest_equivariance.report.findings_text import render_summary

        assert console is not None
        if run.skipped and not run.reports and not run.verbose:  # say why nothing was linted
            for note in run.skipped:
                console.print(f"skipped {note}", markup=False, highlight=False, style="dim")
        render_summary(console, run.reports, fail_level=run.config.fail_level)
    elif fmt == "json":
        from pytest_equivariance.report.findings_json import render_json

        print(render_json(run.reports), file=stdout)
    elif fmt == "sarif":
        from pytest_equivariance.lint.rules import RULES
        from pytest_equivariance.report.sarif import render_sarif

        text = render_sarif(run.reports, RULES, tool_version=__version__, locations=run.locations)
        print(text, file=stdout)
    else:
        from pytest_equivariance.report.github import render_github

        stdout.write(render_github(run.reports, locations=run.locations))


def _append_step_summary(run: Run, stderr: IO[str]) -> None:
    from pytest_equivariance.report.step_summary import append_summary, findings_markdown, summary_path

    path = summary_path()
    if path is None:
        return
    try:
        append_summary(findings_markdown(run.reports), path)
    except OSError as exc:  # the annotations are out already: say so, do not fail the lint for it
        _error(stderr, f"could not append the findings summary to {path} ({exc.strerror or exc}); "
                       f"check $GITHUB_STEP_SUMMARY or pass --no-github-summary.")


def _render_statistics(fmt: str, run: Run, stdout: IO[str]) -> None:
    from pytest_equivariance.lint.rules import RULES
    from pytest_equivariance.report.findings_text import render_statistics, statistics

    if fmt == "json":
        import json

        rows = [{"code": code, "name": RULES[code].name if code in RULES else "", "count": count}
                for code, count in statistics(run.reports)]
        print(json.dumps(rows, indent=2), file=stdout)
    else:
        render_statistics(_console(stdout), run.reports, RULES)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
