"""Markers stream a loader from the ``equiv_inputs`` fixture; labels add accuracy gates.

The inner suite's classifier aliases (stride-2 max pooling), so odd shifts change some predictions;
labels are its own predictions on the unshifted images, so clean accuracy is exactly 1 and the
accuracy under shifts is the consistency. Only rank 0 of a ``torchrun`` job writes the run's files.
"""

from __future__ import annotations

import pytest

from pytest_equivariance import check_shift_invariant
from pytest_equivariance.check import distributed
from pytest_equivariance.plugin.baseline import writes_files

DATA = """
import torch
from torch import nn

from pytest_equivariance.inputs import natural_images


def aliasing_classifier():
    # A dense head over a max-pooled map: predictions follow where things are, so shifts change some.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(4 * 4 * 4, 5))


def labelled():
    images = natural_images((12, 1, 8, 8), seed=4)
    with torch.no_grad():
        labels = aliasing_classifier()(images).argmax(1)
    return images, labels
"""

LOADER = DATA.replace("{", "{{").replace("}", "}}") + """
import pytest
from torch.utils.data import DataLoader, TensorDataset


@pytest.fixture(scope="module")
def equiv_inputs():
    return DataLoader(TensorDataset(*labelled()), batch_size=5)   # batches of 5, 5 and 2


@pytest.mark.shift_invariant(shifts=[(0, 1), (1, 1), (2, 0)], seed=3, min_accuracy={min_accuracy})
def test_gated():
    return aliasing_classifier()
"""


def _labelled_set():
    namespace: dict = {}
    exec(DATA, namespace)
    images, labels = namespace["labelled"]()
    return namespace["aliasing_classifier"](), images, labels


def test_a_marker_streams_the_loader_fixture_with_the_figures_of_the_whole_set(inner):
    inner.write(LOADER.format(min_accuracy=0.1))
    result = inner.results()["test_gated"][0]
    model, images, labels = _labelled_set()
    whole = check_shift_invariant(model, images, shifts=[(0, 1), (1, 1), (2, 0)], seed=3)
    assert result["images"] == 12 and result["accuracy"] == 1.0
    assert [t["accuracy"] for t in result["trials"]] == pytest.approx([t.consistency for t in whole.trials])
    assert [t["max_abs"] for t in result["trials"]] == pytest.approx([t.max_abs for t in whole.trials], rel=1e-6)
    assert 0 < result["worst_case_accuracy"] < 1  # some images change class under some shift
    assert result["passed"] is True


def test_min_accuracy_fails_a_marked_test_saying_by_how_much(inner):
    model, images, labels = _labelled_set()
    whole = check_shift_invariant(model, images, shifts=[(0, 1), (1, 1), (2, 0)], seed=3)
    moved = sum(t.consistency for t in whole.trials) / 3
    assert moved < 0.99
    inner.write(LOADER.format(min_accuracy=0.99))
    run = inner.run()
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines([f"*accuracy under the transforms {moved:.1%} < min_accuracy 99.0%*"])


def test_only_rank_zero_of_a_distributed_run_writes_files(request, monkeypatch):
    worker = hasattr(request.config, "workerinput")
    monkeypatch.setattr(distributed, "world", lambda: (0, 2))
    assert writes_files(request.config) is not worker
    monkeypatch.setattr(distributed, "world", lambda: (1, 2))
    assert writes_files(request.config) is False
