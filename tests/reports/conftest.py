"""Fixtures of the report tests."""

from __future__ import annotations

import pytest
from report_samples import sample_results

from pytest_equivariance.check.result import CheckResult


@pytest.fixture
def results() -> list[CheckResult]:
    return sample_results()
