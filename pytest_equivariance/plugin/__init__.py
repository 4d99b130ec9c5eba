"""pytest entry point of pytest-equivariance (registered under the ``pytest11`` entry point).

This module is imported by pytest at start-up in every project that has the package installed, so
it must stay cheap: it never imports torch at module level. The checks import torch only inside the
hooks and fixtures that run them.

What it adds to pytest:

- markers ``shift_equivariant``, ``shift_invariant``, ``rotation_equivariant``,
  ``rotation_invariant``, ``scale_equivariant`` and ``scale_invariant``: the marked test returns a
  model (or ``(model, inputs)``), or requests a fixture named ``model`` (and optionally
  ``equiv_inputs``), and the plugin checks it;
- the ``equivariance`` fixture, whose ``assert_*`` / ``check_*`` methods run checks inside a test;
- options and ini keys ``equiv_device``, ``equiv_seed``, ``equiv_trials``, ``equiv_localize``;
- a failure report for each failing check and a summary table of every check at the end of the run.

Result flow: every check a test runs is turned into ``CheckResult.to_json()`` and attached to the
test's call-phase report as ``report.equivariance`` (a list of dicts). pytest-xdist serialises report
attributes, so the same hook (``pytest_runtest_logreport``) sees them on the controller in a serial
run and under ``-n N``. There they are collected, in order, for the summary, baselines and reports
(see :func:`collected_results`).

Reproducibility: each check's seed is derived from the run's seed (``--equiv-seed``) and the test's
node id with a stable hash, so ``pytest "<nodeid>" --equiv-seed=N`` repeats a failing check exactly,
whichever other tests run beside it and on whichever xdist worker. A marked test (or one that uses
the ``equivariance`` fixture) also runs — set-up, call and teardown — with torch, ``random`` and
numpy seeded from a seed derived the same way (:func:`build_seed`), so a randomly initialised model
is the same model in every run; the generators' states are restored afterwards
(:mod:`pytest_equivariance.seeding`).
"""

from pytest_equivariance.plugin.fixture import EquivarianceFixture, equivariance
from pytest_equivariance.plugin.markers import MARKER_KEYWORDS, MARKERS, allowed_keywords, marker_usage_error
from pytest_equivariance.plugin.running import (
    EquivarianceCheckFailed,
    pytest_collection_modifyitems,
    pytest_pyfunc_call,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    run_check,
)
from pytest_equivariance.plugin.session import (
    ITEM_RESULTS_KEY,
    collected_results,
    pytest_configure,
    pytest_unconfigure,
    record_result,
)
from pytest_equivariance.plugin.settings import Settings, build_seed, derive_seed, pytest_addoption, read_settings

__all__ = [
    "ITEM_RESULTS_KEY", "MARKERS", "MARKER_KEYWORDS", "EquivarianceCheckFailed", "EquivarianceFixture", "Settings",
    "allowed_keywords", "build_seed", "collected_results", "derive_seed", "equivariance", "marker_usage_error",
    "pytest_addoption", "pytest_collection_modifyitems", "pytest_configure", "pytest_pyfunc_call",
    "pytest_runtest_makereport", "pytest_runtest_setup", "pytest_unconfigure", "read_settings", "record_result",
    "run_check",
]  # fmt: skip
