"""A missing optional test dependency skips the test, naming it; under EQUIV_REQUIRE_OPTIONAL=1 it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

INNER = '''
import sys

sys.modules["escnn"] = None  # as if escnn were not installed: importing it raises ImportError

from optional import require


def test_needs_escnn():
    require("escnn")
'''

HOW = "install it with pip install -e '.[groups]' (escnn's py3nj compiles Fortran: apt-get install gfortran first)."


def _run(tmp_path: Path, switch: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(INNER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "EQUIV_REQUIRE_OPTIONAL"}
    if switch is not None:
        env["EQUIV_REQUIRE_OPTIONAL"] = switch
    env["COLUMNS"] = "300"  # summary lines whole
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", "-p", "no:equivariance",
               "test_inner.py"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("switch", [None, "0"])
def test_a_missing_optional_dependency_skips_with_its_remedy(tmp_path, switch):
    done = _run(tmp_path, switch)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout and f"escnn is missing; {HOW}" in done.stdout, done.stdout


def test_under_the_switch_a_missing_optional_dependency_fails_with_one_sentence(tmp_path):
    done = _run(tmp_path, "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout and "skipped" not in done.stdout, done.stdout
    sentence = f"escnn is missing (EQUIV_REQUIRE_OPTIONAL=1 makes that a failure, not a skip); {HOW}"
    assert sentence in done.stdout.splitlines(), done.stdout  # a line of its own: the failure's whole message
    assert "Traceback" not in done.stdout
