"""The package's layout holds: one layer per package, imports only downward, no cycle, small modules.

The layers and their exceptions are stated once, in ``pyproject.toml`` (``[tool.importlinter]``),
and explained in ``docs/architecture.md``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from optional import require

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pytest_equivariance"
#: The longest a module of the package may be, in lines.
MAX_MODULE_LINES = 600

require("importlinter")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` on the package found in ``root`` with ``root``'s pyproject.toml."""
    script = ("import sys; from importlinter.cli import lint_imports; "
              "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    return subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)


def test_every_layer_imports_only_the_layers_below_it_and_no_module_imports_in_a_cycle():
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_the_layers_contract_names_every_package_and_top_level_module():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")
    named = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    present = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    present |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert present == named


def test_the_contracts_catch_an_upward_import_and_a_cycle(tmp_path):
    # The same contracts over a copy of the package with one import going up (lint -> report) and
    # one cycle (two sibling modules importing each other) must break, or they prove nothing.
    import shutil

    copy = tmp_path / "pytest_equivariance"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    engine = copy / "lint" / "engine.py"
    engine.write_text(engine.read_text(encoding="utf-8") + "\nfrom pytest_equivariance.report import sarif\n",
                      encoding="utf-8")
    (copy / "check" / "ping.py").write_text("from pytest_equivariance.check import pong\n", encoding="utf-8")
    (copy / "check" / "pong.py").write_text("from pytest_equivariance.check import ping\n", encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8")
    run = _lint_imports(tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "pytest_equivariance.lint.engine -> pytest_equivariance.report.sarif" in run.stdout
    assert "No cycles are allowed in pytest_equivariance.check." in run.stdout
    assert "2 broken" in run.stdout


def test_no_module_is_longer_than_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"


def test_the_shells_are_packages_of_their_own():
    flat = sorted(p.name for p in PACKAGE.glob("*.py") if p.name.startswith(("plugin", "cli")))
    assert not flat, f"shell modules at the top level: {flat}"
