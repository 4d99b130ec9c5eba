"""What the command-line shells share: exit codes, the console, and how an error is printed."""

from __future__ import annotations

import os
import traceback
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

PROG = "equiv-lint"


def console(stdout: IO[str]) -> "Console":
    from rich.console import Console

    # soft_wrap: one finding per line, whatever the terminal width (grep- and editor-friendly).
    no_color = bool(os.environ.get("NO_COLOR")) or None  # https://no-color.org
    return Console(file=stdout, soft_wrap=True, highlight=False, no_color=no_color)


def error(stderr: IO[str], exc: BaseException | str, *, verbose: bool = False) -> None:
    if verbose and isinstance(exc, BaseException):
        cause = exc.__cause__ or exc
        stderr.write("".join(traceback.format_exception(cause)))
    print(f"{PROG}: error: {exc}", file=stderr)
