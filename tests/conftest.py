"""Fixtures every test directory shares, and the suite's own settings.

The one summary line for the GPU tier (the only tests allowed to skip), and ``load_script`` for the
tests of the scripts that write the docs. Being the top conftest, it also puts ``tests/`` on
``sys.path``, so any test can import ``optional`` (``require`` for optional dependencies).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as the module ``name`` (registered, so its dataclasses resolve)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(name="load_script", scope="session")
def load_script_fixture():
    """:func:`load_script`, for tests of the scripts that write the docs."""
    return load_script


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say, in one line, how many GPU tests were skipped (the GPU tier needs CUDA), when any were."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "gpu" in getattr(r, "keywords", {})]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} GPU test{'s' if len(skipped) != 1 else ''} skipped: no CUDA device here "
            f"(the gpu tier, -m gpu, runs where torch.cuda.is_available())"
        )
