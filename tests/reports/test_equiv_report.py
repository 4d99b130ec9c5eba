"""``equiv-report``: several runs' ``--equiv-json`` files merged into one page, two runs compared."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from report_samples import sample_results  # noqa: E402
from test_browser import chromium  # noqa: E402

from pytest_equivariance.gates import baseline as bl  # noqa: E402
from pytest_equivariance.cli.equiv_report import main  # noqa: E402
from pytest_equivariance.gates.runs import RESULTS_VERSION, load_run, merge, results_document  # noqa: E402


def write_run(path: Path, results) -> Path:
    """Write ``results`` as pytest's --equiv-json would."""
    path.write_text(results_document(results, bl.entries_from_results(results), None))
    return path


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    first = sample_results()
    second = sample_results()
    second[0].passed, second[0].trials = (not second[0].passed), second[0].trials[:1]  # a verdict that differs
    first[1].weights_fingerprint, second[1].weights_fingerprint = "0123456789abcdef", "feedfacefeedface"
    return write_run(tmp_path / "gpu0.json", first), write_run(tmp_path / "gpu1.json", second[:-1])


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_results_file_reads_back_as_written(tmp_path: Path) -> None:
    results = sample_results()
    loaded = load_run(write_run(tmp_path / "r.json", results))
    def by_test(rs):
        return sorted((r.to_json() for r in rs), key=lambda d: d["test_id"])

    assert by_test(loaded.results) == by_test(results)


def test_merged_page_holds_both_runs_and_marks_disagreements(two_runs, tmp_path, capsys) -> None:
    out = tmp_path / "report.html"
    code, stdout, _ = run(*map(str, two_runs), "-o", str(out), capsys=capsys)
    assert code == 0 and f"wrote {out}" in stdout
    page = out.read_text()
    assert "<code>gpu0.json</code>" in page and "<code>gpu1.json</code>" in page
    merged = merge([load_run(p) for p in two_runs])
    assert len(merged) == 3 and not any(m.agree for m in merged)  # a verdict, the weights, a missing check
    assert "verdicts differ" in page and "weights differ" in page and "not in every run" in page
    # every check of both runs has its card
    assert page.count('<section class="card') == len(sample_results()) * 2 - 1


@pytest.mark.browser
def test_merged_page_in_a_browser(two_runs, tmp_path, capsys) -> None:
    from optional import missing
    from test_browser import find_chromium

    binary = find_chromium()
    if binary is None:
        missing("Chromium")
    out = tmp_path / "report.html"
    assert run(*map(str, two_runs), "-o", str(out), capsys=capsys)[0] == 0
    dom = chromium(binary, tmp_path / "profile", "--dump-dom", out.as_uri()).stdout
    assert "<h1>Equivariance report</h1>" in dom
    assert "gpu0.json · " in dom and "gpu1.json · " in dom
    assert dom.count('class="disagree"') == 3
    assert dom.count("<svg") >= 2 * 3 - 1  # each run's heatmap, angle plot and profile


def test_compare_renders_the_regressions_and_fails(tmp_path, capsys) -> None:
    old, new = sample_results(), sample_results()
    new[1].trials = [t.__class__(**{**t.__dict__, "max_abs": t.max_abs * 3}) for t in new[1].trials]
    old_path, new_path = write_run(tmp_path / "main.json", old), write_run(tmp_path / "branch.json", new)
    out = tmp_path / "diff.html"
    code, _, _ = run("--compare", str(old_path), str(new_path), "-o", str(out), capsys=capsys)
    assert code == 1
    page = out.read_text()
    assert "branch.json against main.json" in page and "Robustness regressions (1)" in page
    assert run("--compare", str(old_path), str(old_path), "-o", str(out), capsys=capsys)[0] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist; pass files written by pytest --equiv-json."),
        ("{", "is not valid JSON"),
        ('{"format": "pytest-equivariance-baseline", "version": 1, "checks": []}',
         'is not a pytest-equivariance results file (no "format": "pytest-equivariance-results")'),
        (json.dumps({"format": "pytest-equivariance-results", "version": RESULTS_VERSION + 1, "checks": []}),
         f"has results version {RESULTS_VERSION + 1}"),
        (json.dumps({"format": "pytest-equivariance-results", "version": RESULTS_VERSION, "checks": [{"kind": 1}]}),
         "has a malformed check at checks[0]"),
    ],
)
def test_bad_inputs_are_named_and_nothing_is_written(content, message, two_runs, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    out = tmp_path / "report.html"
    out.write_text("earlier report")
    code, _, err = run(str(two_runs[0]), str(bad), "-o", str(out), capsys=capsys)
    assert code == 2
    assert err.startswith(f"equiv-report: error: {bad} ") and message in err
    assert err.count("\n") == 1  # one sentence
    assert out.read_text() == "earlier report"


def test_usage_errors(two_runs, tmp_path, capsys) -> None:
    code, _, err = run(str(two_runs[0]), "-o", str(two_runs[0]), capsys=capsys)
    assert code == 2 and "is one of the inputs, which is never overwritten" in err
    assert json.loads(two_runs[0].read_text())["format"] == "pytest-equivariance-results"
    assert run(capsys=capsys)[0] == 2
    code, _, err = run("--compare", str(two_runs[0]), capsys=capsys)
    assert code == 2 and "expected 2 arguments" in err
    code, _, err = run("--compare", *map(str, two_runs), str(two_runs[0]), capsys=capsys)
    assert code == 2 and "exactly two results files" in err
