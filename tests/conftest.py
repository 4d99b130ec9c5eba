"""The suite's own settings: the one summary line for the GPU tier, the only tests allowed to skip.

Being the top conftest, it also puts ``tests/`` on ``sys.path``, so any test can import
``optional`` (``require`` for optional dependencies) wherever it sits.
"""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say, in one line, how many GPU tests were skipped (the GPU tier needs CUDA), when any were."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "gpu" in getattr(r, "keywords", {})]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} GPU test{'s' if len(skipped) != 1 else ''} skipped: no CUDA device here "
            f"(the gpu tier, -m gpu, runs where torch.cuda.is_available())"
        )
