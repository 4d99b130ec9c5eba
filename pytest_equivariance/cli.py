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
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pytest_equivariance import __version__
from pytest_equivariance.errors import EquivarianceUsageError, InputShapeError
from pytest_equivariance.lint.config import LintConfig, is_excluded, load_config, parse_codes
from pytest_equivariance.lint.findings import ModelReport, Severity

if TYPE_CHECKING:
    from rich.console import Console

    from pytest_equivariance.lint.cache import LintCache
    from pytest_equivariance.lint.loader import ModelSource, Target

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

FORMATS = ("text", "json", "sarif", "github")
PROG = "equiv-lint"


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
    if editing:
        from pytest_equivariance import cli_fix

        assert console is not None
        return cli_fix.edit(args, run, targets, console, stdout, stderr)
    if args.statistics:
        _render_statistics(args.format, run, stdout)
    elif not (args.quiet and args.format == "text"):
        _render(args.format, run, stdout, console)
    if args.format == "github" and not args.no_github_summary:
        _append_step_summary(run, stderr)
    if run.failed:
        return EXIT_ERROR
    worst = [f for r in run.reports for f in r.findings if f.severity.rank >= config.fail_level.rank]
    return EXIT_FINDINGS if worst and not args.exit_zero else EXIT_CLEAN


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


@dataclass
class Run:
    """One ``equiv-lint`` call: reports in target order, which targets failed, where models live."""

    config: LintConfig
    verbose: bool = False
    allow_no_model: bool = False
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    reports: list[ModelReport] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    locations: dict[str, tuple[str | None, int | None]] = field(default_factory=dict)
    #: With --fix: what each model's rewrite must keep (state-dict and output shapes), by target.
    signatures: dict[str, Any] | None = None
    #: With --fix: the digest of each file as it was when its target was loaded.
    snapshots: dict[Path, str] = field(default_factory=dict)
    #: Where results are answered from and stored (None: --no-cache).
    cache: "LintCache | None" = None
    #: While a target is linted for the cache: the source files its imports read.
    files: set[str] | None = None

    def lint_target(self, text: str, root: Path | None = None) -> list[ModelReport]:
        """Load one target, lint each model it names, and return the new reports (errors included).

        A directory stands for the Python files below it; those that define no model are skipped.
        Answered from the cache when nothing the last lint of the target read has changed; ``--fix``
        always lints (it needs the models).
        """
        key = self._cache_key(text, root) if self.cache is not None and self.signatures is None else None
        if key is None or self.cache is None:
            return self._lint_target(text, root)
        hit = self.cache.lookup(key)
        if hit is not None:
            return self._replay(hit, text)
        from pytest_equivariance.lint.cache import loaded_module_files

        start, failed, skipped = len(self.reports), len(self.failed), len(self.skipped)
        self.files = set()
        try:
            reports = self._lint_target(text, root)
        finally:
            files, self.files = self.files, None
        if len(self.failed) == failed:  # a failure is linted again next time, not remembered
            if self.config.path is not None:
                files.add(str(self.config.path.resolve()))
            result = {
                "reports": [r.to_json() for r in reports],
                "skipped": self.skipped[skipped:],
                "locations": {r.target: self.locations.get(r.target) for r in self.reports[start:]},
            }
            self.cache.store(key, files | set(loaded_module_files()), result)
        return reports

    def _cache_key(self, text: str, root: Path | None) -> dict[str, Any] | None:
        from pytest_equivariance.lint.cache import cache_key
        from pytest_equivariance.lint.loader import parse_target, python_files

        try:
            target = parse_target(text, root=root)
        except EquivarianceUsageError:
            return None  # reported by the lint itself
        listing = None
        if target.path is not None and target.name is None and target.path.is_dir():
            listing = [str(p) for p in python_files(target.path)]  # a new file changes the key
        config = self.config
        return cache_key({
            "target": text, "root": str(root) if root is not None else None, "listing": listing,
            "allow_no_model": self.allow_no_model, "select": config.select, "ignore": config.ignore,
            "per_module_ignores": sorted(config.per_module_ignores.items()), "input_shape": config.input_shape,
            "factories": config.factories, "exclude": config.exclude,
        })

    def _replay(self, hit: dict[str, Any], text: str) -> list[ModelReport]:
        """Add a cached result's reports, locations and skip notes, as the lint would have."""
        reports = [ModelReport.from_json(r) for r in hit["reports"]]
        for name, location in hit["locations"].items():
            if location is not None:
                self.locations[name] = (location[0], location[1])
        for note in hit["skipped"]:
            self._skip(note)
        if self.verbose:
            print(f"{PROG}: {text}: answered from the cache in {self.cache.directory if self.cache else ''}",
                  file=self.stderr)
        self.reports.extend(reports)
        return reports

    def _lint_target(self, text: str, root: Path | None = None) -> list[ModelReport]:
        from pytest_equivariance.lint.loader import Target, display_path, parse_target, python_files

        start = len(self.reports)
        try:
            target = parse_target(text, root=root)
        except EquivarianceUsageError as exc:
            self._fail(text, exc)
            return self.reports[start:]
        if target.path is not None and target.name is None and target.path.is_dir():
            for path in python_files(target.path):
                self._lint(Target(text=display_path(path), path=path), allow_no_model=True)
        else:
            self._lint(target, allow_no_model=self.allow_no_model)
        return self.reports[start:]

    def _lint(self, target: "Target", *, allow_no_model: bool) -> None:
        from pytest_equivariance.lint.loader import (
            NoModelFoundError,
            display_path,
            load_target,
            mentions_torch,
        )

        path = target.path
        if path is not None and target.name is None:
            if is_excluded(path, self.config):
                return self._skip(f"{display_path(path)} (excluded by config)")
            # Only where a file may define no model (found in a directory, or pre-commit's
            # --allow-no-model): a file named on the command line is always imported.
            if allow_no_model and path.is_file() and not mentions_torch(path):
                return self._skip(f"{display_path(path)} (does not mention torch)")
        explicit = target.name is not None
        if self.signatures is not None and path is not None and path.is_file():
            from pytest_equivariance.lint.autofix import digest

            self.snapshots.setdefault(path.resolve(), digest(path.read_bytes()))
        try:
            with load_target(target, factories=self.config.factories, files=self.files) as loaded:
                for reason in loaded.skipped:
                    self._skip(f"{target.text}: {reason}")
                before, skipped = (len(self.reports), len(self.skipped))
                for source in loaded.sources:
                    self._lint_source(source, explicit=explicit)
                if not explicit and len(self.reports) == before:
                    # Everything found was passed over: as if nothing had been found.
                    reasons = "; ".join(self.skipped[skipped:])
                    raise NoModelFoundError(
                        f"No model in {target.text} could be linted ({reasons}); give constructors "
                        f"defaults, name a zero-argument factory, or pass --input-shape."
                    )
        except NoModelFoundError as exc:
            if not allow_no_model:
                return self._fail(target.text, exc)
            self._skip(f"{target.text} ({exc})")
        except EquivarianceUsageError as exc:
            self._fail(target.text, exc)

    def _lint_source(self, source: "ModelSource", *, explicit: bool) -> None:
        from pytest_equivariance.inputs import infer_input_shape
        from pytest_equivariance.lint import lint_model
        from pytest_equivariance.lint.empty import build_empty
        from pytest_equivariance.lint.loader import NeedsArgumentsError

        self.locations[source.target] = (source.file, source.line)
        model = built = None
        try:
            built = build_empty(source.build, errors=(NeedsArgumentsError,))
            model = built.model
            shape = self.config.input_shape
            if shape is None and not explicit:
                # Found by discovery (a loss or a helper module, say): without a layer to read the
                # channels from it is not a model to lint, unless the user names it.
                try:
                    shape = infer_input_shape(model)  # what lint_model would infer: do it once
                except InputShapeError:
                    self._skip(
                        f"{source.target} (no conv or linear layer to infer an input shape from; "
                        f"name it with --input-shape to lint it)"
                    )
                    return
            report = lint_model(
                model,
                shape,
                target=source.target,
                select=self.config.select,
                ignore=self.config.ignore,
                per_module_ignores=self.config.per_module_ignores,
            )
            if self.signatures is not None:
                from pytest_equivariance.cli_fix import model_signature

                self.signatures[source.target] = model_signature(model, report.input_shape)
        except NeedsArgumentsError as exc:
            if explicit:
                return self._fail(source.target, exc)
            self._skip(f"{source.target} ({exc.__cause__ or 'needs arguments'})")
        except EquivarianceUsageError as exc:
            self._fail(source.target, exc)
        except Exception as exc:  # a bug in the linter: report it, lint the rest
            first_line = (str(exc).strip().splitlines() or [""])[0]
            error = RuntimeError(
                f"{source.target}: the linter failed with {type(exc).__name__}: {first_line}; "
                f"rerun with --verbose and report this with the traceback."
            )
            error.__cause__ = exc
            self._fail(source.target, error)
        else:
            if built is not None and built.note is not None:
                report.notes.insert(0, built.note)
            self.reports.append(report)
            if report.errors:  # the model rejected the example input, or the analysis broke off
                self.failed.append(source.target)
                for error in report.errors:
                    _error(self.stderr, f"{source.target}: {error}")
        finally:
            model = built = None  # drop the model before the next one is built

    def _fail(self, target: str, exc: BaseException) -> None:
        from pytest_equivariance.lint.loader import failed_report

        self.failed.append(target)
        self.reports.append(failed_report(target, exc))
        _error(self.stderr, exc, verbose=self.verbose)

    def _skip(self, note: str) -> None:
        self.skipped.append(note)
        if self.verbose:
            print(f"{PROG}: skipped {note}", file=self.stderr)


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


def _console(stdout: IO[str]) -> "Console":
    from rich.console import Console

    # soft_wrap: one finding per line, whatever the terminal width (grep- and editor-friendly).
    no_color = bool(os.environ.get("NO_COLOR")) or None  # https://no-color.org
    return Console(file=stdout, soft_wrap=True, highlight=False, no_color=no_color)


def _error(stderr: IO[str], exc: BaseException | str, *, verbose: bool = False) -> None:
    if verbose and isinstance(exc, BaseException):
        cause = exc.__cause__ or exc
        stderr.write("".join(traceback.format_exception(cause)))
    print(f"{PROG}: error: {exc}", file=stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
