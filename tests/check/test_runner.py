"""Batching, chunking, model preparation and output flattening."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from torch import nn

from check_models import circular_net, dropout_classifier
from pytest_equivariance.check import runner
from pytest_equivariance.errors import EquivarianceUsageError


def _jobs(n_jobs, per_job):
    return [(i, torch.randn(per_job, 3, 8, 8, generator=torch.Generator().manual_seed(i))) for i in range(n_jobs)]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 100])
def test_run_batches_matches_one_forward_per_job(batch_size):
    model = circular_net().eval()
    jobs = _jobs(4, 3)
    seen = []
    for key, leaves in runner.run_batches(model, iter(jobs), batch_size):
        (path, out), = leaves
        x = dict(jobs)[key]
        with torch.inference_mode():
            expected = model(x)
        assert path == "" and out.shape == expected.shape
        assert torch.allclose(out, expected, atol=1e-6)
        seen.append(key)
    assert seen == [0, 1, 2, 3]


def test_run_batches_forwards_chunks_of_batch_size():
    sizes = []

    class Spy(nn.Module):
        def forward(self, x):
            sizes.append(x.shape[0])
            return x

    list(runner.run_batches(Spy(), iter(_jobs(3, 3)), 4))
    assert sizes == [4, 4, 1]


def test_flatten_output_walks_structures():
    Point = namedtuple("Point", "a b")
    t = torch.zeros(1)
    out = {"x": (t, [t, None]), "y": Point(t, 3), "z": "text"}
    assert [p for p, _ in runner.flatten_output(out)] == ["['x'][0]", "['x'][1][0]", "['y'].a"]


def test_outputs_without_a_batch_dim_are_a_usage_error():
    class Scalar(nn.Module):
        def forward(self, x):
            return x.sum()

    with pytest.raises(EquivarianceUsageError, match="without the batch dim"):
        list(runner.run_batches(Scalar(), iter(_jobs(1, 2)), 4))


def test_output_with_no_tensor_is_a_usage_error():
    class Nothing(nn.Module):
        def forward(self, x):
            return None

    with pytest.raises(EquivarianceUsageError, match="holds no tensor"):
        runner.forward(Nothing(), torch.zeros(1, 3, 4, 4))


def test_forward_runs_under_inference_mode():
    (_, out), = runner.forward(circular_net(), torch.zeros(1, 3, 4, 4))
    assert out.is_inference()


def test_prepared_sets_eval_mode_and_restores_each_flag():
    model = dropout_classifier().train()
    model[1].eval()
    before = {n: m.training for n, m in model.named_modules()}
    with runner.prepared(model, torch.device("cpu"), torch.float32) as ready:
        assert not any(m.training for m in model.modules())
        assert any("train mode" in n for n in ready.notes)
    assert {n: m.training for n, m in model.named_modules()} == before


def test_prepared_switches_tf32_off_and_restores_it_even_on_error():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        with pytest.raises(RuntimeError):
            with runner.prepared(circular_net(), torch.device("cpu"), torch.float32):
                assert not torch.backends.cuda.matmul.allow_tf32
                assert not torch.backends.cudnn.allow_tf32
                raise RuntimeError("boom")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_auto_batch_size_follows_the_memory_budget():
    assert runner.auto_batch_size(runner.CPU_BUDGET, torch.device("cpu")) == 1
    assert runner.auto_batch_size(1, torch.device("cpu")) == runner.MAX_AUTO_BATCH
    small = runner.auto_batch_size(1 << 20, torch.device("cpu"))
    assert small == runner.CPU_BUDGET // (runner.ACTIVATION_FACTOR << 20)


def test_activation_bytes_sees_the_widest_layer():
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 1, 3, padding=1))
    _, per_image = runner.activation_bytes_per_image(model, torch.zeros(2, 3, 8, 8))
    assert per_image == 64 * 8 * 8 * 4


def test_resolve_device():
    assert runner.resolve_device(None, circular_net()) == torch.device("cpu")
    assert runner.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(EquivarianceUsageError, match="not a device"):
        runner.resolve_device("gpu!")


def test_receptive_radius_of_two_3x3_convs_is_two_pixels():
    model = circular_net(padding_mode="zeros").eval()
    assert runner.receptive_radius(model, torch.randn(1, 3, 16, 16), (-2, -1)) == (2.0, 2.0)


def test_measured_chunk_size_is_refined_after_the_first_pass():
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1))
    chunk = runner.ChunkSize(2, measure=True, device=torch.device("cpu"))
    sizes = []
    model.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    list(runner.run_batches(model, iter(_jobs(3, 4)), chunk))
    assert not chunk.measure
    assert chunk.size == runner.auto_batch_size(64 * 8 * 8 * 4, torch.device("cpu"))
    assert sizes == [2, 10]


def test_invariance_check_shares_one_pass_between_reference_and_shifts():
    from pytest_equivariance.check.api import check_shift_equivariant, check_shift_invariant

    from check_models import pooled_classifier

    calls = []
    model = circular_net()
    model.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    check_shift_equivariant(model, input_shape=(2, 3, 8, 8), trials=4)
    assert calls == [2, 8]  # reference first: the shifts depend on the output grid
    calls.clear()
    classifier = pooled_classifier()
    classifier.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    check_shift_invariant(classifier, input_shape=(2, 3, 8, 8), trials=4)
    assert calls == [10]


def test_a_model_writing_into_its_input_does_not_alter_the_next_jobs():
    class InPlace(nn.Module):
        def forward(self, x):
            return x.mul_(2)

    x = torch.ones(1, 1, 2, 2)
    outputs = [leaves[0][1] for _, leaves in runner.run_batches(InPlace(), iter([(0, x), (1, x)]), 1)]
    assert torch.equal(x, torch.ones(1, 1, 2, 2))
    assert all(torch.equal(o, torch.full((1, 1, 2, 2), 2.0)) for o in outputs)
