"""Machine-readable results: the --equiv-json file and JUnit XML properties."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

def test_json_output_lists_every_check_with_figures_and_transforms(suite):
    out = suite.pytester.path / "reports" / "equiv.json"
    suite.set(test_b=[{"worst": 0.2}, {"worst": float("nan"), "kind": "shift_invariant", "consistency": 0.9}])
    result = suite.run("--equiv-json", str(out))
    assert result.ret == 0
    data = json.loads(out.read_text())  # strict JSON: the NaN is spelled as a string
    assert data["format"] == "pytest-equivariance-results" and data["version"] == 1
    checks = sorted(data["checks"], key=lambda c: (c["test_id"], c["index"]))
    assert [(c["test_id"], c["index"], c["kind"]) for c in checks] == [
        ("test_model.py::test_a", 0, "shift_equivariant"),
        ("test_model.py::test_b", 0, "shift_equivariant"),
        ("test_model.py::test_b", 1, "shift_invariant"),
        ("test_model.py::test_lenient", 0, "shift_equivariant"),
    ]
    assert checks[0]["figures"] == {"worst_error": 0.1, "mean_error": 0.05}
    assert checks[2]["figures"]["worst_error"] == "nan"
    assert checks[0]["trials"][0]["transform"] == "shift (dy=+1, dx=+0)"
    assert checks[0]["trials"][0]["params"] == {"shift": [1, 0]}
    assert checks[0]["seed"] == 1234
    assert data["summary"] == {"checks": 4, "passed": 4, "failed": 0}
    assert data["baseline"] is None


def test_json_output_carries_the_baseline_comparison(suite):
    suite.update()
    suite.set(test_a=[{"worst": 0.3}])
    out = suite.pytester.path / "equiv.json"
    assert suite.compare("--equiv-json", str(out)).ret == 1
    baseline = json.loads(out.read_text())["baseline"]
    assert baseline["mode"] == "compare"
    assert [(r["test"], r["figure"], r["baseline"], r["now"]) for r in baseline["regressions"]] == [
        ("test_model.py::test_a", "mean_error", 0.05, 0.15),
        ("test_model.py::test_a", "worst_error", 0.1, 0.3),
    ]
    assert baseline["unchanged"] == 3


def test_junit_xml_has_figures_and_seed_per_test(suite):
    xml = suite.pytester.path / "junit.xml"
    assert suite.run(f"--junitxml={xml}").ret == 0
    cases = {case.get("name"): case for case in ET.parse(xml).iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_b"].iter("property")}
    assert props == {
        "equiv.0.kind": "shift_equivariant", "equiv.0.passed": "True", "equiv.0.worst_error": "0.2",
        "equiv.0.mean_error": "0.1", "equiv.0.seed": "1234",
        "equiv.1.kind": "shift_invariant", "equiv.1.passed": "True", "equiv.1.worst_error": "0.3",
        "equiv.1.mean_error": "0.15", "equiv.1.consistency": "0.9", "equiv.1.seed": "1234",
    }


def test_json_file_that_cannot_be_written_is_an_error(suite):
    (suite.pytester.path / "taken").write_text("a file, not a directory")
    result = suite.run("--equiv-json", str(suite.pytester.path / "taken" / "equiv.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*ERROR: Cannot write the --equiv-json file*taken/equiv.json*"])
