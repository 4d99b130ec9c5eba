"""Under ``torchrun``, ranks stream their shards and report the figures of the whole set.

Two processes on the ``gloo`` backend (CPU) run ``distributed_worker.py`` with a
``DistributedSampler``; one process runs it over the same images (and point clouds). Every figure — maxima, means,
proportions, accuracies, the image count — must agree: the statistics are all-reduced before any
figure is formed. A loader without a ``DistributedSampler`` is refused under ``torchrun``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("distributed_worker.py")
FIGURES = ("max_abs", "mean_abs", "rel_l2", "cosine", "psnr", "consistency", "prob_change", "accuracy")


def run(tmp_path: Path, *launcher: str) -> dict:
    out = tmp_path / f"{len(launcher)}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, str(WORKER), str(out)], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over torchrun is tested on POSIX")
def test_two_gloo_processes_report_the_figures_of_one(tmp_path):
    two = run(tmp_path, sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    one = run(tmp_path, sys.executable)
    assert two["world"] == 2 and one["world"] == 1
    for kind in ("invariant", "crop", "equivariant", "lie"):
        a, b = two[kind], one[kind]
        assert a["images"] == b["images"] == 48, kind
        assert a["passed"] == b["passed"]
        for name in ("accuracy", "worst_case_accuracy", "all_shift_consistency"):
            assert a[name] == pytest.approx(b[name], abs=1e-12), (kind, name)
        for ta, tb in zip(a["trials"], b["trials"], strict=True):
            assert ta["transform"] == tb["transform"]
            for name in FIGURES:
                if tb[name] is None:
                    assert ta[name] is None
                else:
                    assert ta[name] == pytest.approx(tb[name], rel=1e-9, abs=1e-12), (kind, name)
    for kind in ("cloud", "permuted"):  # graphs: each gets the elements it would get in one process
        a, b = two[kind], one[kind]
        assert a["notes"][0] == b["notes"][0] and a["notes"][0].startswith("streamed 6 graphs from the loader")
        assert not b["passed"]  # an MLP on coordinates, an embedding of node indices: the figures are not zero
        for ta, tb in zip(a["trials"], b["trials"], strict=True):
            for name in ("max_abs", "mean_abs", "rel_l2"):
                assert ta[name] == pytest.approx(tb[name], rel=1e-9, abs=1e-12), (kind, name)
    assert 0 < one["invariant"]["figures"]["consistency"] < 1  # the figures compared are not trivial
    assert one["unsharded"] is None
    assert two["unsharded"].startswith("check_shift_invariant runs in 2 processes but its DataLoader has no "
                                       "DistributedSampler, so each process would read the whole set")
