"""docs/rules/ is generated from the rule table: the committed pages must match it."""

from __future__ import annotations

from pathlib import Path

from pytest_equivariance.lint.rules import RULES

ROOT = Path(__file__).resolve().parents[2]


def test_committed_rule_pages_match_the_rule_table(load_script):
    generator = load_script("gen_rule_docs")
    stale = generator.stale_pages(ROOT / "docs" / "rules")
    assert stale == [], f"run python scripts/gen_rule_docs.py to update {stale}"


def test_every_rule_has_a_page_and_an_index_row():
    index = (ROOT / "docs" / "rules" / "README.md").read_text()
    for code in RULES:
        assert (ROOT / "docs" / "rules" / f"{code}.md").is_file()
        assert f"[{code}]({code}.md)" in index


def test_generator_writes_and_detects_stale_pages(tmp_path, load_script):
    generator = load_script("gen_rule_docs")
    assert set(generator.write_pages(tmp_path)) == {f"{c}.md" for c in RULES} | {"README.md"}
    assert generator.stale_pages(tmp_path) == []
    (tmp_path / "EQ001.md").write_text("edited by hand\n")
    (tmp_path / "EQ099.md").write_text("a rule that no longer exists\n")
    assert generator.stale_pages(tmp_path) == ["EQ001.md", "EQ099.md"]
    generator.write_pages(tmp_path)
    assert generator.stale_pages(tmp_path) == [] and not (tmp_path / "EQ099.md").exists()
