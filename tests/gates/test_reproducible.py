"""Random-init models give the same figures in every run, worker and order (issue: reproducible models).

The inner suite builds every model with torch's default initialisation and never seeds anything: the
plugin seeds what a marked test (or one using the ``equivariance`` fixture) builds.
"""

from __future__ import annotations

import json

import pytest

import torch

# Load torch and the check modules once, here: pytester forgets what an in-process run imported,
# and torch refuses to register its operator libraries twice.
from pytest_equivariance import seeding  # noqa: E402
from pytest_equivariance.check.api import check_shift_invariant  # noqa: E402

check_shift_invariant(torch.nn.Conv2d(1, 1, 3), torch.zeros(1, 1, 8, 8), shift=(1, 1), localize=False)

INNER_CONFTEST = '''
import pathlib
import pytest

def pytest_collection_modifyitems(items):
    if (pathlib.Path(__file__).parent / "reverse").exists():
        items.reverse()

@pytest.fixture
def model():
    from nets import aliasing
    return aliasing()
'''

INNER_NETS = '''
import pathlib
import torch
from torch import nn

def aliasing(width=4):
    # Strided, so the figures depend on the weights; no seed anywhere.
    variant = pathlib.Path(__file__).parent / "variant.txt"
    if variant.exists() and variant.read_text() == "reinit":
        width = 4
        net = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(width, 5, 3, stride=2),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        for p in net.parameters():
            nn.init.uniform_(p, -0.3, 0.3)  # the same architecture, initialised another way
        return net
    return nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(width, 5, 3, stride=2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())
'''

INNER_TESTS = '''
import random
import pytest
import torch
from hypothesis import given, settings, strategies as st
from nets import aliasing

KW = dict(input_shape=(2, 3, 16, 16), trials=3, atol=10.0, localize=False)

@pytest.mark.shift_invariant(**KW)
def test_returned():
    return aliasing()

@pytest.mark.shift_invariant(**KW)
def test_from_fixture(model):
    pass

@pytest.mark.shift_invariant(trials=3, atol=10.0, localize=False)
def test_returned_with_random_inputs():
    return aliasing(6), torch.randn(2, 3, 16, 16)

def test_fixture_checks(equivariance):
    equivariance.check_shift_invariant(aliasing(), input_shape=(1, 3, 12, 12), trials=2, atol=10.0, localize=False)

def test_unrelated_draws():
    torch.rand(100), random.random()  # moves the global generators between the marked tests

@settings(max_examples=3, database=None, deadline=None)
@given(st.integers(0, 3))
def test_hypothesis(equivariance, k):
    equivariance.check_shift_invariant(aliasing(), input_shape=(1, 3, 12, 12), trials=1, atol=10.0, localize=False)
'''

INNER_OTHER = '''
import pytest
from nets import aliasing

@pytest.mark.shift_invariant(input_shape=(1, 3, 16, 16), trials=2, atol=10.0, localize=False)
def test_other_file():
    return aliasing(3)
'''

QUIET = ("-p", "no:cacheprovider", "-p", "no:benchmark", "-p", "no:randomly")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(nets=INNER_NETS, test_models=INNER_TESTS, test_other=INNER_OTHER)
    pytester.syspathinsert()
    return pytester


def _run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess(*QUIET, *args)


def _figures(path) -> list:
    """The checks of an --equiv-json file, as they compare across runs."""
    checks = json.loads(path.read_text())["checks"]
    return [(c["test_id"], c["index"], c["figures"], c["weights_fingerprint"], c["inputs_fingerprint"],
             c["seed"]) for c in checks]


def test_runs_workers_and_orders_give_identical_figures(project):
    root = project.path
    assert _run(project, "-n", "2", "--equiv-baseline", "b.json", "--equiv-baseline-update",
                "--equiv-json", "xdist.json").ret == 0
    serial = _run(project, "--equiv-baseline", "b.json", "--equiv-json", "serial.json")
    (root / "reverse").write_text("")
    reversed_run = _run(project, "-n", "2", "--dist", "loadfile", "--equiv-baseline", "b.json",
                        "--equiv-json", "reversed.json")
    figures = _figures(root / "xdist.json")
    assert len(figures) == 3 + 1 + 3 + 1  # three marked tests, the fixture's, hypothesis' (3 examples), another file
    assert _figures(root / "serial.json") == figures
    assert _figures(root / "reversed.json") == figures
    # The figures themselves, byte for byte, not only after parsing.
    texts = {json.dumps([f[2] for f in _figures(root / n)]) for n in ("serial.json", "xdist.json", "reversed.json")}
    assert len(texts) == 1
    for run in (serial, reversed_run):  # each compared against the baseline the worker run wrote
        assert run.ret == 0
        run.stdout.fnmatch_lines(["*baseline b.json: 8 checks unchanged, 0 not run*"])
    assert any(f[2]["worst_error"] > 1e-3 for f in figures)  # figures that would move with the weights


def test_a_reinitialised_model_is_weights_changed_and_strict_fails(project):
    root = project.path
    assert _run(project, "--equiv-baseline", "b.json", "--equiv-baseline-update", "test_models.py::test_returned").ret == 0
    (root / "variant.txt").write_text("reinit")
    result = _run(project, "--equiv-baseline", "b.json", "test_models.py::test_returned")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*Weights or inputs changed: figures not compared (1)*",
        "*test_models.py::test_returned*weights differ from the baseline's*",
        "*0 regressed, 0 improved, 1 weights changed, 0 new, 0 stale, 0 unchanged, 0 not run*",
    ])
    old = json.loads((root / "b.json").read_text())["checks"][0]["weights"]
    strict = _run(project, "--equiv-baseline", "b.json", "--equiv-baseline-strict-weights",
                  "test_models.py::test_returned")
    assert strict.ret == 1
    strict.stdout.fnmatch_lines(["*gated by --equiv-baseline-strict-weights (1)*", f"*({old}*"])


def test_opting_out_leaves_the_build_unseeded(project):
    assert _run(project, "--equiv-json", "a.json", "test_models.py::test_returned").ret == 0
    assert _run(project, "--equiv-json", "b.json", "--equiv-no-seed-models", "test_models.py::test_returned").ret == 0
    project.makeini("[pytest]\nequiv_seed_models = false\n")
    assert _run(project, "--equiv-json", "c.json", "test_models.py::test_returned").ret == 0
    a, b, c = (_figures(project.path / n)[0][3] for n in ("a.json", "b.json", "c.json"))
    assert a != b and a != c and b != c  # unseeded: other weights in each process


def test_global_generators_are_restored_after_a_marked_test(pytester):
    pytester.makepyfile(test_leak='''
        import random
        import numpy
        import pytest
        import torch
        from pytest_equivariance.seeding import rng_states

        STATE = {}

        def test_before():
            torch.manual_seed(123); random.seed(123); numpy.random.seed(123)
            STATE["before"] = rng_states()

        @pytest.mark.shift_invariant(input_shape=(1, 1, 8, 8), trials=2, atol=10.0, localize=False)
        def test_marked():
            torch.rand(10), random.random(), numpy.random.rand()
            return torch.nn.Conv2d(1, 2, 3)

        def test_fixture(equivariance):
            torch.rand(10), random.random(), numpy.random.rand()

        def test_after():
            assert rng_states() == STATE["before"]
            assert torch.initial_seed() == 123
    ''')
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=4)


def test_seeded_restores_and_repeats():
    import numpy  # noqa: F401 - a dependency; seeding saves and restores its generator too

    torch.manual_seed(5)
    before = seeding.rng_states()
    with seeding.seeded(42):
        first = torch.nn.Linear(3, 3).weight.clone()
    assert seeding.rng_states() == before
    with seeding.seeded(42):
        assert torch.equal(torch.nn.Linear(3, 3).weight, first)
    with seeding.seeded(43):
        assert not torch.equal(torch.nn.Linear(3, 3).weight, first)
    assert seeding.rng_states() == before
