"""Every Python block in README.md and docs/*.md runs here, or says why it cannot.

A block is a fenced ```` ```python ```` block (```` ```text ````, ```` ```console ```` and the
rest are not Python). The line right before its fence may say ``<!-- not run: REASON -->``, one
sentence: the block is then skipped with that reason. Every other block runs, so a block that
cannot run and carries no reason fails.

How a block runs. A block that defines top-level ``test_*`` functions is a test module: it is
written to a scratch directory and run by pytest in-process (pytester), and every test in it must
pass (a hypothesis test tries 10 examples, not 100: each is a check). Any other block is executed
as a script; a figure it prints is not compared (that is
tests/test_doc_figures.py's work).

Which names a block starts from, file by file:

- README.md: nothing. Its blocks are what a newcomer copies, so each runs alone, from its own
  lines, in a scratch directory, with the repository off ``sys.path``: it must define what it uses
  and work from any directory.
- docs/*.md: the names the prose takes as the reader's own (``model``, ``images``,
  ``validation_set``, ``Backbone``, ``load_checkpoint``...), built afresh for each block by
  ``doc_names.names()``, and the module ``mymodels`` (``Backbone``, ``Classifier``); a test module
  also finds ``tests/data/batch.pt`` beside it. Scripts run from the repository root, as the docs
  say to run them.

Blocks of one file do not share names: none builds on an earlier block's names (a test module
that continues an earlier one takes its imports from the set-up), so each block is one test that
runs alone, in any order and under pytest-xdist.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import torch

import doc_names

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]
#: A fence opening or closing a block: its indent, its backticks or tildes, its info string.
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")
#: Plugins the inner runs do not need (hypothesis' summary hook imports all of hypothesis).
QUIET_PLUGINS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:randomly", "-p", "no:benchmark")
#: Examples a hypothesis test in a block tries: each one runs a check.
HYPOTHESIS_EXAMPLES = 10
#: What a docs test module starts with: the set-up's names, as a script's namespace holds them.
SETUP_IMPORT = "from doc_names import names as _names\nglobals().update(_names())\n"


@dataclass(frozen=True)
class Block:
    """A fenced Python block: where it is, its source (dedented) and why it is not run, if it is not."""

    path: Path
    line: int  # the line of the opening fence, from 1
    source: str
    reason: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def is_test_module(self) -> bool:
        tree = ast.parse(self.source)
        return any(isinstance(node, ast.FunctionDef) and node.name.startswith("test_") for node in tree.body)


def python_blocks(path: Path, text: str | None = None) -> list[Block]:
    """Return the ```` ```python ```` blocks of the Markdown file ``path`` (or of ``text``), in order."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        start, fence = index, opening["fence"]
        index += 1
        while index < len(lines) and lines[index].strip() != fence:
            index += 1
        body = lines[start + 1:index]
        index += 1
        if opening["info"].strip().split(" ")[0] == "python":
            marker = NOT_RUN.match(lines[start - 1]) if start else None
            blocks.append(Block(path, start + 1, textwrap.dedent("\n".join(body)) + "\n",
                                marker["reason"] if marker else None))
    return blocks


BLOCKS = [block for path in DOC_FILES for block in python_blocks(path)]


def test_the_collector_reads_fences_and_reasons():
    text = ("# t\n<!-- not run: needs a GPU -->\n```python\nx = 1\n```\n\n```text\n```python\n```\n"
            "- a list:\n\n  ```python\n  y = 2\n  ```\n````python\n```\nz = 3\n````\n")
    blocks = python_blocks(README, text)
    assert [(b.line, b.source, b.reason) for b in blocks] == [
        (3, "x = 1\n", "needs a GPU"), (12, "y = 2\n", None), (15, "```\nz = 3\n", None)]
    assert [b.id for b in blocks][0] == "README.md:3"


def test_every_not_run_comment_stands_before_a_python_block():
    stray = []
    for path in DOC_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines[:-1], start=1):
            if NOT_RUN.match(line) and lines[number].strip() != "```python":
                stray.append(f"{path.relative_to(ROOT).as_posix()}:{number}")
    assert not stray, "not-run comments that mark no python block: " + ", ".join(stray)


def test_every_reason_is_a_sentence():
    unclear = [block.id for block in BLOCKS if block.reason is not None and len(block.reason) < 10]
    assert not unclear, "blocks marked not run without a reason: " + ", ".join(unclear)


@contextmanager
def _torch_state_kept() -> Iterator[None]:
    """Restore the default dtype and the random state a block may set."""
    dtype = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            torch.set_default_dtype(dtype)


@contextmanager
def _few_hypothesis_examples() -> Iterator[None]:
    """Let hypothesis tests try :data:`HYPOTHESIS_EXAMPLES` examples, then restore the settings in force."""
    from hypothesis import settings

    outer = settings.default
    settings.register_profile("doc-blocks", max_examples=HYPOTHESIS_EXAMPLES)
    settings.load_profile("doc-blocks")
    try:
        yield
    finally:
        settings.register_profile("doc-blocks-outer", outer)
        settings.load_profile("doc-blocks-outer")


def _off_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take the repository's directories off ``sys.path``, so its ``examples`` and tests are not found."""
    inside = (ROOT, ROOT / "tests", ROOT / "tests" / "docs")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p and Path(p).resolve() not in inside])
    for name in [name for name in sys.modules if name == "examples" or name.startswith("examples.")]:
        monkeypatch.delitem(sys.modules, name)


def _run_script(block: Block, namespace: dict[str, object]) -> None:
    # Blank lines in front, so a traceback names the block's own line in the Markdown file.
    code = compile("\n" * block.line + block.source, str(block.path), "exec")
    exec(code, namespace)


def _run_test_module(block: Block, pytester: pytest.Pytester, *, readme: bool) -> None:
    if readme:
        pytester.makepyfile(test_block=block.source)
    else:
        pytester.makepyfile(test_block=SETUP_IMPORT + block.source,
                            mymodels="from doc_names import Backbone, Classifier\n")
        (pytester.path / "tests" / "data").mkdir(parents=True)
        torch.save(doc_names.names()["images"], pytester.path / "tests" / "data" / "batch.pt")
    with _few_hypothesis_examples():
        result = pytester.runpytest_inprocess(*QUIET_PLUGINS, "-q")
    outcomes = result.parseoutcomes()
    failed = {key: outcomes[key] for key in ("failed", "errors", "error") if outcomes.get(key)}
    assert outcomes.get("passed") and not failed, f"{block.id}: {outcomes}\n" + result.stdout.str()


# The docs ask for 4 loader workers; torch warns where the machine has fewer cores.
@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_block(block: Block, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                   tmp_path: Path) -> None:
    if block.reason is not None:
        pytest.skip(f"not run: {block.reason}")
    readme = block.path == README
    if readme:
        monkeypatch.chdir(tmp_path)
        _off_the_repository(monkeypatch)
    else:
        monkeypatch.chdir(ROOT)
        stub = ModuleType("mymodels")
        stub.Backbone, stub.Classifier = doc_names.Backbone, doc_names.Classifier
        monkeypatch.setitem(sys.modules, "mymodels", stub)
    with _torch_state_kept():
        if block.is_test_module:
            request.getfixturevalue("loaded_before_inner_runs")
            _run_test_module(block, request.getfixturevalue("pytester"), readme=readme)
        else:
            _run_script(block, {"__name__": "__main__"} if readme else {"__name__": "__main__", **doc_names.names()})
