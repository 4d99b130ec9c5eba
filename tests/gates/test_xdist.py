"""pytest-xdist: the same results and baseline as a serial run, one summary, concurrent updates, GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import ModuleType, SimpleNamespace

import pytest

from pytest_equivariance.gates import baseline as bl
from pytest_equivariance.plugin import baseline as plugin_baseline
from pytest_equivariance.plugin.baseline import worker_device

def test_two_workers_write_the_same_baseline_and_results_as_a_serial_run(suite):
    root = suite.pytester.path
    assert suite.run("--equiv-baseline", "serial.json", "--equiv-baseline-update", "--equiv-json", "serial-out.json").ret == 0
    result = suite.run("-n", "2", "--equiv-baseline", "xdist.json", "--equiv-baseline-update", "--equiv-json", "xdist-out.json",
                       "--junitxml", "junit.xml")
    assert result.ret == 0
    assert (root / "xdist.json").read_bytes() == (root / "serial.json").read_bytes()
    serial, xdist = (json.loads((root / name).read_text()) for name in ("serial-out.json", "xdist-out.json"))
    assert serial["baseline"].pop("path").endswith("serial.json")
    assert xdist["baseline"].pop("path").endswith("xdist.json")
    assert xdist == serial  # the same checks, in the same (sorted) order
    junit = (root / "junit.xml").read_text()  # properties travel from the workers too
    assert '<property name="equiv.1.consistency" value="0.9" />' in junit
    assert result.stdout.str().count("equivariance baseline") == 1  # one summary, on the controller


def test_two_workers_gate_regressions_with_marker_tolerances_from_the_workers(suite):
    suite.update()
    suite.set(test_a=[{"worst": 0.3}], test_lenient=[{"worst": 0.5}])  # lenient: +400% < its 500%
    result = suite.compare("-n", "2")
    result.assert_outcomes(passed=3)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*Robustness regressions against equiv-baseline.json (2)*"])
    assert "test_lenient" not in result.stdout.str().split("Robustness regressions")[1].split("baseline equiv")[0]


def test_concurrent_update_runs_leave_a_valid_file_with_both_entries(suite, quiet_plugins):
    root = suite.pytester.path
    base = root / "equiv-baseline.json"
    env = {**os.environ, "PYTEST_ADDOPTS": "", "PY_COLORS": "0"}
    command = [sys.executable, "-m", "pytest", *quiet_plugins, "-q", "--equiv-baseline", str(base),
               "--equiv-baseline-update"]
    runs = [subprocess.Popen([*command, "-k", name], cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for name in ("test_a", "test_b")]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert bl.load(base).tests() == {"test_model.py::test_a", "test_model.py::test_b"}
    assert [p.name for p in root.iterdir() if p.name.startswith(".equiv-baseline")] == []  # no temp files


# ------------------------------------------------------------------------------- GPUs


@pytest.mark.parametrize(
    ("requested", "worker", "count", "expected"),
    [
        ("cuda", "gw0", 4, "cuda:0"),
        ("cuda", "gw5", 4, "cuda:1"),
        ("cuda", "gw3", 1, "cuda:0"),
        ("CUDA", "gw1", 2, "cuda:1"),
        ("auto", "gw1", 2, "cuda:1"),
        ("auto", "gw1", 0, "auto"),  # no GPU: auto falls back to the CPU as usual
        ("cuda", "gw1", 0, "cuda"),  # no GPU: left for the check to report
        ("cuda:1", "gw0", 4, "cuda:1"),  # an explicit GPU is respected
        ("cpu", "gw3", 4, "cpu"),
        ("cuda", None, 4, "cuda"),  # serial run
        ("cuda", "master", 4, "cuda"),
        (None, "gw0", 4, None),
    ],
)
def test_worker_device(requested, worker, count, expected):
    assert worker_device(requested, worker, count) == expected


def _fake_torch(count):
    # Enough of torch for the plugin to count GPUs; importing the real one takes seconds per process.
    module = ModuleType("torch")
    module.cuda = SimpleNamespace(device_count=lambda: count)
    return module


def test_workers_rewrite_the_device_option_from_the_option_or_ini(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(2))

    def worker(option, ini=""):
        return SimpleNamespace(option=SimpleNamespace(equiv_device=option), workerinput={"workerid": "gw3"},
                               getini=lambda name: ini)

    config = worker("cuda")
    plugin_baseline._spread_workers_over_gpus(config)
    assert config.option.equiv_device == "cuda:1"
    config = worker(None, ini="cuda")
    plugin_baseline._spread_workers_over_gpus(config)
    assert config.option.equiv_device == "cuda:1"
    config = worker("cpu", ini="cuda")
    plugin_baseline._spread_workers_over_gpus(config)
    assert config.option.equiv_device == "cpu"


def test_each_xdist_worker_gets_its_own_gpu(pytester, quiet_plugins):
    # No GPU needed: the workers' conftest installs a torch that reports three.
    pytester.makeconftest("""
        import sys, types
        torch = types.ModuleType("torch")
        torch.cuda = types.SimpleNamespace(device_count=lambda: 3)
        sys.modules["torch"] = torch
    """)
    pytester.makepyfile(test_gpu="""
        import os
        def test_device(request, equivariance):
            expected = f"cuda:{int(os.environ['PYTEST_XDIST_WORKER'][2:]) % 3}"
            assert request.config.option.equiv_device == expected
            assert equivariance.settings.device == expected  # what the checks will run on
        def test_other(request, equivariance):
            test_device(request, equivariance)
    """)
    # The fake torch cannot seed: this test is about devices only.
    result = pytester.runpytest_subprocess(*quiet_plugins, "-n", "2", "--equiv-device", "cuda", "--equiv-no-seed-models")
    result.assert_outcomes(passed=2)
