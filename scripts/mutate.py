"""Mutation testing of one module: apply one-line mutants, run the area's tests, count the killed.

Each mutant changes one operator or constant of ``MODULE`` (comparisons ``<``/``<=``, ``>``/``>=``,
``==``/``!=``, ``is``/``is not``, ``in``/``not in``; ``and``/``or``; ``any``/``all``, ``min``/``max``;
``True``/``False``; an integer constant ±1) in a copy of the package, then runs ``pytest -x -q`` on
the chosen tests against that copy. A mutant the tests fail on (or time out on) is *killed*; one they
pass is a *survivor*: a gap in the tests, or a change no user could see (an equivalent mutant).

    python scripts/mutate.py pytest_equivariance/gates/comparison.py tests/gates/test_baseline_core.py
    python scripts/mutate.py MODULE TESTS... [--timeout 120] [--lines 120-190] [--list]

Keep the tests to the area's own files: every mutant runs them once. docs/architecture.md
("How we know the tests can fail") keeps the last scores and why each survivor is equivalent.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pytest_equivariance"

#: Comparison operators and the one each becomes.
COMPARISONS = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}
SYMBOLS = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
    ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.And: "and", ast.Or: "or",
}
#: Built-in functions swapped for their dual.
CALLS = {"any": "all", "all": "any", "min": "max", "max": "min"}


@dataclass(frozen=True)
class Mutant:
    """One change: which node (by its index in ``ast.walk`` order), on which line, from what to what."""

    index: int
    line: int
    what: str


def mutants(tree: ast.Module) -> Iterator[Mutant]:
    """Yield every mutant of ``tree``, in source order of the nodes ``ast.walk`` visits."""
    for index, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in COMPARISONS:
                    new = COMPARISONS[type(op)]
                    yield Mutant(index * 100 + k, node.lineno, f"{SYMBOLS[type(op)]} -> {SYMBOLS[new]}")
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            yield Mutant(index * 100, node.lineno, f"{SYMBOLS[type(node.op)]} -> {SYMBOLS[new]}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CALLS:
            yield Mutant(index * 100, node.lineno, f"{node.func.id}() -> {CALLS[node.func.id]}()")
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            yield Mutant(index * 100, node.lineno, f"{node.value} -> {not node.value}")
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield Mutant(index * 100, node.lineno, f"{node.value} -> {node.value + 1}")
            yield Mutant(index * 100 + 1, node.lineno, f"{node.value} -> {node.value - 1}")


def apply(tree: ast.Module, mutant: Mutant) -> str:
    """Return the module's source with ``mutant`` applied (the rest unchanged in meaning)."""
    tree = copy.deepcopy(tree)
    node = list(ast.walk(tree))[mutant.index // 100]
    sub = mutant.index % 100
    if isinstance(node, ast.Compare):
        node.ops[sub] = COMPARISONS[type(node.ops[sub])]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.Call):
        node.func = ast.Name(id=CALLS[node.func.id], ctx=ast.Load())
    elif isinstance(node.value, bool):
        node.value = not node.value
    else:
        node.value = node.value + (1 if sub == 0 else -1)
    return ast.unparse(ast.fix_missing_locations(tree))


def _docstrings(tree: ast.Module) -> set[int]:
    """Ids of the docstring constants (never mutated: they change no behaviour)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def run_tests(copy_root: Path, tests: list[str], timeout: float) -> str:
    """Run the tests against the package copy; return "passed", "failed" or "timeout"."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy_root), os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    tests = [str(ROOT / t) if (ROOT / t.split("::")[0]).exists() else t for t in tests]
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *tests]
    try:
        # From the copy's directory: ``python -m`` puts the working directory first on sys.path, so
        # the tests import the mutated package, not the one beside them.
        done = subprocess.run(command, cwd=copy_root, env=env, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "passed" if done.returncode == 0 else "failed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="the module to mutate, e.g. pytest_equivariance/gates/comparison.py")
    parser.add_argument("tests", nargs="*", help="pytest arguments: the area's test files")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per test run (a timeout kills)")
    parser.add_argument("--lines", default=None, help="mutate only these lines, e.g. 120-190")
    parser.add_argument("--list", action="store_true", help="list the mutants and run nothing")
    args = parser.parse_args(argv)

    module = (ROOT / args.module).resolve()
    relative = module.relative_to(ROOT)
    source = module.read_text(encoding="utf-8")
    tree = ast.parse(source)
    skip = _docstrings(tree)
    nodes = list(ast.walk(tree))
    low, high = (int(v) for v in args.lines.split("-")) if args.lines else (0, 10**9)
    todo = sorted((m for m in mutants(tree) if low <= m.line <= high and id(nodes[m.index // 100]) not in skip),
                  key=lambda m: (m.line, m.index))
    if args.list or not args.tests:
        for m in todo:
            print(f"{relative}:{m.line}: {m.what}")
        return 0

    with tempfile.TemporaryDirectory() as directory:
        copy_root = Path(directory)
        shutil.copytree(ROOT / PACKAGE, copy_root / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
        target = copy_root / relative
        target.write_text(ast.unparse(tree), encoding="utf-8")  # the baseline goes through unparse too
        if run_tests(copy_root, args.tests, args.timeout) != "passed":
            print("the tests fail on the unmutated module: fix them before mutating", file=sys.stderr)
            return 2
        survivors, killed = [], 0
        for n, m in enumerate(todo, 1):
            start = time.perf_counter()
            target.write_text(apply(tree, m), encoding="utf-8")
            outcome = run_tests(copy_root, args.tests, args.timeout)
            verdict = "survived" if outcome == "passed" else f"killed ({outcome})"
            print(f"[{n}/{len(todo)}] {relative}:{m.line}: {m.what}: {verdict} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            if outcome == "passed":
                survivors.append(m)
            else:
                killed += 1
    total = len(todo)
    print(f"\n{relative}: {killed} of {total} mutants killed ({killed / total:.0%})" if total else "no mutants")
    for m in survivors:
        print(f"  survived: {relative}:{m.line}: {m.what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
