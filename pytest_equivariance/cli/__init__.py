"""The command-line shells: ``equiv-lint`` (:mod:`.equiv_lint`) and ``equiv-report`` (:mod:`.equiv_report`).

``equiv-lint`` is also ``python -m pytest_equivariance.cli``.
"""

from pytest_equivariance.cli.equiv_lint import build_parser, main

__all__ = ["build_parser", "main"]
