"""The baseline gate end to end (pytester): compare, update, merge, and refusing bad files."""

from __future__ import annotations

import json

import pytest

from pytest_equivariance.gates import baseline as bl

def test_update_writes_the_baseline_and_an_unchanged_run_passes(suite):
    result = suite.update()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*updated: 0 regressed, 0 improved, 0 weights changed, 4 new*"])
    data = json.loads(suite.baseline.read_text())
    assert data["version"] == 1
    assert [(c["test"].split("::")[1], c["index"], c["kind"]) for c in data["checks"]] == [
        ("test_a", 0, "shift_equivariant"),
        ("test_b", 0, "shift_equivariant"),
        ("test_b", 1, "shift_invariant"),
        ("test_lenient", 0, "shift_equivariant"),
    ]
    assert data["checks"][2]["figures"] == {"consistency": 0.9, "mean_error": 0.15, "worst_error": 0.3}
    result = suite.compare()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*baseline equiv-baseline.json: 4 checks unchanged, 0 not run*"])


def test_a_worse_model_fails_the_run_although_every_test_passes(suite):
    suite.update()
    before = suite.baseline.read_bytes()
    suite.set(test_a=[{"worst": 0.15, "mean": 0.05}])  # worst +50%, mean unchanged
    result = suite.compare()
    result.assert_outcomes(passed=3)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*Robustness regressions against equiv-baseline.json (1)*",
        "*test / check*figure*baseline*now*change*allowed*",
        "*test_model.py::test_a*worst_error*0.1*0.15*+50.0%*10%*",
        "*#0 shift_equivariant cpu/float32*",
        "*1 regressed, 0 improved, 0 weights changed, 0 new, 0 stale, 3 unchanged, 0 not run*",
    ])
    assert suite.baseline.read_bytes() == before  # a compare run never writes


def test_within_tolerance_and_float_noise_pass(suite):
    suite.set(test_a=[{"worst": 1e-7, "mean": 1e-7}])
    suite.update()
    suite.set(test_a=[{"worst": 2e-7, "mean": 2e-7}], test_b=[{"worst": 0.21}, {"worst": 0.3, "kind": "shift_invariant",
                                                                               "consistency": 0.85}])
    assert suite.compare().ret == 0


def test_the_test_own_tolerance_marker_lets_it_pass(suite):
    suite.update()
    suite.set(test_lenient=[{"worst": 0.5}])  # +400%, marker allows 500%
    assert suite.compare("--strict-markers").ret == 0  # the marker is registered
    suite.set(test_lenient=[{"worst": 0.7}])  # +600%
    result = suite.compare()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*test_lenient*worst_error*+600.0%*500%*"])


def test_command_line_and_ini_tolerances(suite):
    suite.update()
    suite.set(test_a=[{"worst": 0.15}])
    assert suite.compare("--equiv-regression-tol", "0.6").ret == 0
    suite.pytester.makeini("[pytest]\nequiv_regression_tol = 0.6\n")
    assert suite.compare().ret == 0
    assert suite.compare("--equiv-regression-tol", "0.2").ret == 1  # the option wins over the ini key
    suite.set(test_a=[{"worst": 0.10000001, "mean": 0.05}])
    assert suite.compare("--equiv-regression-tol", "0", "--equiv-regression-floor", "0").ret == 1


def test_consistency_drop_is_a_regression(suite):
    suite.update()
    suite.set(test_b=[{"worst": 0.20}, {"worst": 0.3, "kind": "shift_invariant", "consistency": 0.5}])
    result = suite.compare()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*test_b*consistency*0.9*0.5*-44.4%*", "*#1 shift_invariant cpu/float32*"])


def test_improvements_new_and_stale_are_listed_without_failing(suite):
    suite.update()
    suite.set(test_a=[{"worst": 0.05}, {"worst": 0.01, "kind": "rotation_equivariant"}], test_b=[{"worst": 0.20}])
    result = suite.compare()
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*Improvements (2)*",
        "*test_a*worst_error*0.1*0.05*-50.0%*",
        "*New checks, not in the baseline (1)*",
        "*test_a*worst_error=0.01*",
        "*#1 rotation_equivariant cpu/float32*",
        "*Stale baseline entries: no longer run by their tests (1)*",
        "*test_b*",
        "*#1 shift_invariant cpu/float32*",
        "*Record the changes with --equiv-baseline equiv-baseline.json --equiv-baseline-update*",
    ])


def test_device_kind_is_part_of_the_key(suite):
    suite.update()
    suite.set(test_a=[{"worst": 0.10, "device": "cuda:1"}])
    result = suite.compare()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*New checks*", "*test_a*", "*#0 shift_equivariant cuda/float32*"])
    # A CUDA update adds the CUDA entry and keeps the CPU one; a CPU run then ignores the CUDA entry.
    assert suite.update("-k", "test_a").ret == 0
    assert sorted((e.test_id.split("::")[1], e.device) for e in bl.load(suite.baseline).entries
                  if e.test_id.endswith("test_a")) == [("test_a", "cpu"), ("test_a", "cuda")]
    suite.set(test_a=[{"worst": 0.10}])
    result = suite.compare()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*4 checks unchanged, 1 not run*"])


def test_update_of_a_subset_keeps_the_other_entries(suite):
    suite.update()
    suite.set(test_a=[{"worst": 0.7}], test_b=[{"worst": 0.9}])
    assert suite.update("-k", "test_a").ret == 0
    figures = {(e.key.test_id.split("::")[1], e.key.index): e.figures["worst_error"]
               for e in bl.load(suite.baseline).entries.values()}
    assert figures == {("test_a", 0): 0.7, ("test_b", 0): 0.2, ("test_b", 1): 0.3, ("test_lenient", 0): 0.1}
    assert suite.update("-k", "test_a", "--equiv-baseline-prune").ret == 0
    assert bl.load(suite.baseline).tests() == {"test_model.py::test_a"}


def test_a_failing_run_does_not_update_the_baseline(suite):
    suite.update()
    before = suite.baseline.read_bytes()
    suite.pytester.makepyfile(test_broken="def test_broken():\n    assert False\n")
    suite.set(test_a=[{"worst": 0.9}])
    result = suite.update()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*baseline equiv-baseline.json not updated: the run did not pass*"])
    assert suite.baseline.read_bytes() == before


BAD_FILES = {
    "corrupt": "{ this is not json",
    "wrong-version": json.dumps({"format": bl.BASELINE_FORMAT, "version": 99, "checks": []}),
    "not-a-baseline": json.dumps({"results": []}),
}


@pytest.mark.parametrize("update", [False, True], ids=["compare", "update"])
@pytest.mark.parametrize("content", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_bad_baseline_files_are_usage_errors_and_stay_untouched(suite, content, update):
    suite.baseline.write_text(content)
    result = suite.update() if update else suite.compare()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR:*equiv-baseline.json*"])
    assert "passed" not in result.stdout.str()  # stopped before any test ran
    assert suite.baseline.read_text() == content


def test_missing_baseline_in_compare_mode_is_a_usage_error(suite):
    result = suite.compare()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: Baseline file *equiv-baseline.json does not exist; create it with*"])
    assert not suite.baseline.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--equiv-baseline-update"], "*--equiv-baseline-update needs the file to write*"),
        (["--equiv-baseline", "b.json", "--equiv-baseline-prune"], "*--equiv-baseline-prune only applies*"),
        (["--equiv-regression-tol", "-1"], "*--equiv-regression-tol / equiv_regression_tol must be a non-negative*"),
        (["--equiv-regression-floor", "abc"], "*--equiv-regression-floor*must be a non-negative number*"),
    ],
)
def test_option_misuse_is_a_usage_error(suite, args, message):
    result = suite.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_tolerance_marker_errors_that_test(suite):
    suite.pytester.makepyfile(test_marker="import pytest\n\n@pytest.mark.equiv_regression_tol('big')\n"
                                          "def test_m():\n    pass\n")
    result = suite.run("test_marker.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.equiv_regression_tol needs one non-negative number*"])


def test_baseline_path_from_ini_is_relative_to_the_rootdir(suite):
    suite.pytester.makeini("[pytest]\nequiv_baseline = sub/base.json\n")
    result = suite.run("--equiv-baseline-update")
    assert result.ret == 0
    assert bl.load(suite.pytester.path / "sub" / "base.json").tests() == {
        "test_model.py::test_a", "test_model.py::test_b", "test_model.py::test_lenient"}
    assert suite.run().ret == 0  # compare mode, from the ini key alone


@pytest.mark.parametrize("info", ["--help", "--markers"])
def test_information_options_need_no_baseline_file(suite, info):
    result = suite.compare(info)  # the file does not exist
    assert result.ret == 0
    assert not suite.baseline.exists()
