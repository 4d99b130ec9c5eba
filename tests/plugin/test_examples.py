"""The bundled example suite runs green, with passes, an expected failure and the summary table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_suite_is_green_and_shows_what_the_plugin_catches(pytester: pytest.Pytester):
    for path in EXAMPLES.glob("*.py"):
        shutil.copy(path, pytester.path / path.name)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark", "--color=no", "-rx"
    )
    result.assert_outcomes(passed=16, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "equivariance: seed=0 device=cpu",
            "*= equivariance summary =*",
            "26 equivariance checks, 11 failed (11 expected)",
            "test_models.py::test_aliasing_cnn_is_not_shift_invariant",
            "  shift_invariant*xfail",
            "test_trained.py::test_trained_cnn_keeps_most_predictions",
            "  shift_invariant (crop)*top-1≥70%*yes",
            "test_trained.py::test_antialiased_cnn_keeps_more_predictions",
            "  shift_invariant (crop)*top-1≥80%*yes",
            "XFAIL test_models.py::test_aliasing_cnn_is_not_shift_invariant - stride-2 max pooling aliases*",
        ]
    )
