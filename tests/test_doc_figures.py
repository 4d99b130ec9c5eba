"""The figures marked in the docs are today's: scripts/doc_figures.py --check passes on the fast ones,
and fails, naming the file, line and command, when a marked figure is edited by hand."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script(load_script):
    """The script with its fast sources measured once for every test here (each measures in seconds)."""
    module = load_script("doc_figures")
    fast = []
    for source in module.chosen(False):
        measured = source.measure()
        fast.append(dataclasses.replace(source, measure=lambda measured=measured: measured))
    module.SOURCES = fast + [s for s in module.SOURCES if not s.fast]
    return module


@pytest.fixture
def docs(tmp_path):
    """A copy of README.md and docs/ to edit."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    return tmp_path


def test_the_fast_figures_agree_with_a_fresh_run(script, capsys):
    assert script.main(["--check"]) == 0, capsys.readouterr().out


def test_every_fast_source_has_figures_in_the_docs(script):
    marked = {name for _, _, name, _ in script.marks(ROOT)}
    for source in script.chosen(False):
        assert {f"{source.name}.{key}" for key in source.measure()} <= marked, source.name


def test_a_figure_edited_by_hand_fails_the_check_and_writing_restores_it(script, docs, capsys):
    path = docs / "docs" / "fixes.md"
    text = path.read_text(encoding="utf-8")
    mark = "<!-- figure: polyphase.circular-cnn.blur.circular -->"
    value = text.split(mark)[1].split("<!--")[0]
    path.write_text(text.replace(mark + value, mark + "9.99e-03"), encoding="utf-8")
    line = text[: text.index(mark)].count("\n") + 1

    assert script.main(["--check", "--root", str(docs)]) == 1
    out = capsys.readouterr().out
    assert f"docs/fixes.md:{line}: figure polyphase.circular-cnn.blur.circular reads '9.99e-03'" in out
    assert "`python benchmarks/polyphase_cost.py" in out and f"gives '{value}'" in out
    assert "1 figure(s) out of date" in out

    assert script.main(["--root", str(docs)]) == 0  # rewrites it
    assert path.read_text(encoding="utf-8") == text
    assert script.main(["--check", "--root", str(docs)]) == 0


def test_a_figure_within_its_tolerance_is_the_same_figure(script, docs):
    path = docs / "docs" / "groups.md"
    text = path.read_text(encoding="utf-8")
    mark = "<!-- figure: groups-plain.c8 -->"
    value = float(text.split(mark)[1].split("<!--")[0])
    path.write_text(text.replace(f"{mark}{value:.2f}", f"{mark}{value * 1.01:.2f}"), encoding="utf-8")
    assert script.check(docs) == []
    path.write_text(text.replace(f"{mark}{value:.2f}", f"{mark}{value * 1.1:.2f}"), encoding="utf-8")
    assert len(script.check(docs)) == 1


def test_a_mark_in_a_code_span_is_an_example_not_a_figure(script, docs):
    path = docs / "docs" / "metrics.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nmark it: `<!-- figure: nowhere.x -->1.0<!-- /figure -->`\n",
                    encoding="utf-8")
    assert script.check(docs) == []


def test_a_marked_name_no_source_produces_fails_the_check(script, docs):
    path = docs / "docs" / "metrics.md"
    path.write_text(path.read_text(encoding="utf-8") + "\n<!-- figure: nowhere.x -->1.0<!-- /figure -->\n",
                    encoding="utf-8")
    (problem,) = script.check(docs)
    assert problem.startswith("docs/metrics.md:") and "figure nowhere.x is produced by no source" in problem
