"""``equiv-report``: one HTML page from the ``--equiv-json`` results of several runs, or a comparison of two.

::

    equiv-report gpu0.json gpu1.json py310.json -o report.html    # merge runs, mark disagreements
    equiv-report --compare main.json branch.json -o diff.html     # regressions of branch against main

Exit codes: 0 when the page is written, 1 with ``--compare`` when the newer run regressed, 2 for a
usage error or an input that is not a results file (nothing is written then). An input is never
overwritten. See ``docs/reports.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from pytest_equivariance.errors import EquivarianceUsageError

PROG = "equiv-report"
DEFAULT_OUTPUT = "equiv-report.html"
EXIT_OK, EXIT_REGRESSED, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit
        raise EquivarianceUsageError(f"{message[:1].upper()}{message[1:]}; see {PROG} --help.")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``equiv-report`` (usage errors raise EquivarianceUsageError)."""
    parser = _Parser(prog=PROG, description="Merge the --equiv-json results of several pytest runs into one "
                     "self-contained HTML page, or compare two runs.")
    parser.add_argument("runs", nargs="*", metavar="RESULTS.json", help="results files written by pytest --equiv-json")
    parser.add_argument("--compare", nargs=2, metavar=("OLD.json", "NEW.json"),
                        help="compare NEW with OLD as its baseline: regressions, improvements, changed weights")
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT, metavar="PATH",
                        help=f"the HTML file to write (default: {DEFAULT_OUTPUT})")
    parser.add_argument("--title", default=None, help="the page's title")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``equiv-report`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    return _main(argv, sys.stdout, sys.stderr)


def _main(argv: Sequence[str] | None, stdout: IO[str], stderr: IO[str]) -> int:
    from pytest_equivariance.files import write_atomic
    from pytest_equivariance.gates import runs as _runs
    from pytest_equivariance.report import html

    try:
        args = build_parser().parse_args(argv)
    except EquivarianceUsageError as exc:
        print(f"{PROG}: error: {exc}", file=stderr)
        return EXIT_ERROR
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        inputs = [Path(p) for p in (args.compare or args.runs)]
        if args.compare and args.runs:
            raise EquivarianceUsageError(
                "--compare takes exactly two results files and no others; drop the extra files, or merge "
                "them without --compare."
            )
        if not inputs:
            raise EquivarianceUsageError(
                f"No results files given; pass the files written by pytest --equiv-json, e.g. {PROG} "
                f"run1.json run2.json -o report.html."
            )
        output = Path(args.output)
        if any(_same_file(output, p) for p in inputs):
            raise EquivarianceUsageError(
                f"The output {output} is one of the inputs, which is never overwritten; pass another "
                f"path with -o."
            )
        loaded = _runs.load_runs(inputs)
        if args.compare:
            old, new = loaded
            comparison = _runs.compare(old, new)
            page = html.render_comparison_html(comparison, old=old.name, new=new.name,
                                               title=args.title or "Equivariance comparison")
            code = EXIT_REGRESSED if comparison.failed else EXIT_OK
        else:
            page = html.render_runs_html(loaded, _runs.merge(loaded), title=args.title or "Equivariance report")
            code = EXIT_OK
    except EquivarianceUsageError as exc:
        print(f"{PROG}: error: {exc}", file=stderr)
        return EXIT_ERROR
    try:
        write_atomic(output, page)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc  # a ValueError (a path with no name) has no strerror
        print(f"{PROG}: error: cannot write {output} ({reason}); pass a writable path with -o.", file=stderr)
        return EXIT_ERROR
    print(f"{PROG}: wrote {output}", file=stdout)
    return code


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, ValueError):  # unusual file systems; a NUL in a path, which no file has
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
