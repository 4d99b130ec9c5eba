"""Options and ini keys: the run's defaults for every check, and the header that shows them."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from pytest_equivariance.plugin import derive_seed, read_settings

QUIET = ("-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:cacheprovider")

ONE_CHECK = """
import pytest
from models import aliasing_classifier

@pytest.mark.shift_invariant(input_shape=(1, 1, 8, 8))
def test_check():
    return aliasing_classifier()
"""


def test_header_shows_the_defaults(inner):
    inner.write("def test_nothing():\n    pass\n")
    result = inner.run()
    result.stdout.fnmatch_lines(["equivariance: seed=0 device=cpu"])


def test_options_set_seed_trials_and_header(inner):
    inner.write(ONE_CHECK)
    result = inner.run("--equiv-seed=5", "--equiv-trials=3")
    result.stdout.fnmatch_lines(["equivariance: seed=5 device=cpu trials=3"])
    (check,) = inner.results("--equiv-seed=5", "--equiv-trials=3")["test_check"]
    assert check["seed"] == derive_seed(5, "test_inner.py::test_check")
    assert len(check["trials"]) == 3
    assert check["reproduce"] == "pytest test_inner.py::test_check --equiv-seed=5 --equiv-trials=3"


def test_ini_keys_are_defaults_and_options_override_them(inner):
    inner.write(ONE_CHECK)
    inner.pytester.makeini("[pytest]\nequiv_seed = 9\nequiv_trials = 2\nequiv_localize = never\n")
    (check,) = inner.results()["test_check"]
    assert check["seed"] == derive_seed(9, "test_inner.py::test_check")
    assert len(check["trials"]) == 2
    assert not check["passed"] and check["profile"] is None  # localize=never: no per-layer profile
    (check,) = inner.results("--equiv-seed=4", "--equiv-localize=on-failure")["test_check"]
    assert check["seed"] == derive_seed(4, "test_inner.py::test_check")
    assert check["profile"] is not None


def test_marker_arguments_override_the_options(inner):
    inner.write(
        """
import pytest
from models import pooled_classifier

@pytest.mark.shift_invariant(input_shape=(1, 1, 8, 8), seed=123, trials=5, localize=True)
def test_check():
    return pooled_classifier()
"""
    )
    (check,) = inner.results("--equiv-seed=5", "--equiv-trials=3", "--equiv-localize=never")["test_check"]
    assert check["seed"] == 123
    assert len(check["trials"]) == 5
    assert check["passed"] and check["profile"] is not None


@pytest.mark.parametrize(
    "option, message",
    [
        ("--equiv-seed=abc", "--equiv-seed/equiv_seed got 'abc'; pass a non-negative integer or 'random'."),
        ("--equiv-seed=-3", "--equiv-seed/equiv_seed got '-3'; pass a non-negative integer or 'random'."),
        ("--equiv-trials=0", "--equiv-trials/equiv_trials got '0'; pass a positive integer."),
        ("--equiv-device=gpu", "--equiv-device/equiv_device got 'gpu'; pass cpu, cuda, cuda:N or auto."),
    ],
)
def test_bad_option_values_are_usage_errors(inner, option, message):
    inner.write("def test_nothing():\n    pass\n")
    result = inner.run(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_device_from_option_reaches_the_check(inner):
    inner.write(ONE_CHECK)
    (check,) = inner.results("--equiv-device=auto")["test_check"]
    import torch

    assert check["device"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    assert check["reproduce"].endswith("--equiv-device=auto")


def test_importing_the_plugin_does_not_import_torch():
    code = "import pytest_equivariance.plugin, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_xdist_workers_take_the_seed_the_controller_drew(pytester):
    config = pytester.parseconfigure("--equiv-seed=random", *QUIET)
    session = config.pluginmanager.get_plugin("equivariance-session")
    node = SimpleNamespace(workerinput={})
    session.pytest_configure_node(node)  # the xdist hook, on the controller
    assert node.workerinput["equiv_seed"] == session.settings.seed
    worker = pytester.parseconfig("--equiv-seed=random", *QUIET)
    worker.workerinput = {"equiv_seed": 1234}
    settings = read_settings(worker)
    assert (settings.seed, settings.seed_is_random) == (1234, True)


def test_checks_never_import_the_fix_machinery(pytester):
    pytester.makepyfile(
        """
        import sys
        import pytest
        import torch

        @pytest.mark.shift_invariant(input_shape=(1, 1, 8, 8), trials=2, atol=10.0)
        def test_check():
            return torch.nn.Conv2d(1, 1, 3)

        def test_modules():
            assert "libcst" not in sys.modules and "pytest_equivariance.fix.source" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess(*QUIET, "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_a_run_without_checks_imports_neither_torch_nor_rich(pytester):
    pytester.makepyfile(
        """
        import sys

        def test_modules():
            assert "torch" not in sys.modules and "rich" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=1)


@pytest.mark.gpu
def test_checks_run_on_the_gpu_when_asked(inner):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    inner.write(ONE_CHECK)
    (check,) = inner.results("--equiv-device=cuda")["test_check"]
    assert check["device"].startswith("cuda")
    assert not check["passed"]  # aliasing is found on the GPU too
    assert check["reproduce"].endswith("--equiv-device=cuda")
