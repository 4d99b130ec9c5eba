"""GPU tier: CUDA transfers, chunking and TF32 handling. Skipped without CUDA (run with -m gpu)."""

from __future__ import annotations

import pytest
import torch

from check_models import circular_net, pooled_classifier, strided_net
from pytest_equivariance.check import runner
from pytest_equivariance.check.api import check_rotation_equivariant, check_shift_equivariant, check_shift_invariant

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
SHAPE = (4, 3, 32, 32)


def test_cpu_model_is_checked_on_cuda_and_returned_to_the_cpu():
    model = circular_net()
    result = check_shift_equivariant(model, input_shape=SHAPE, device="cuda", trials=4)
    assert result.passed
    assert result.device.startswith("cuda")
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_auto_device_picks_cuda():
    result = check_shift_equivariant(circular_net(), input_shape=SHAPE, device="auto", trials=2)
    assert result.device.startswith("cuda")


def test_cuda_model_stays_on_cuda_and_cpu_inputs_are_moved():
    model = strided_net().cuda()
    x = torch.randn(SHAPE)
    result = check_shift_equivariant(model, x, trials=4)
    assert result.passed and result.device.startswith("cuda") and result.lattice == (2, 2)
    assert all(p.is_cuda for p in model.parameters())


def test_cuda_figures_match_cpu_figures():
    model = pooled_classifier(aliasing=True)
    cpu = check_shift_invariant(model, input_shape=SHAPE, trials=6, device="cpu", localize=False)
    gpu = check_shift_invariant(model, input_shape=SHAPE, trials=6, device="cuda", localize=False)
    assert [t.params for t in cpu.trials] == [t.params for t in gpu.trials]
    assert [t.passed for t in cpu.trials] == [t.passed for t in gpu.trials]
    for a, b in zip(cpu.trials, gpu.trials):
        assert a.max_abs == pytest.approx(b.max_abs, rel=1e-2, abs=1e-5)


def test_chunking_bounds_peak_memory_and_keeps_figures():
    model = circular_net(out=64).cuda()
    x = torch.randn(8, 3, 96, 96)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    whole = check_shift_equivariant(model, x, trials=16, batch_size=136)
    peak_whole = torch.cuda.max_memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    chunked = check_shift_equivariant(model, x, trials=16, batch_size=8)
    peak_chunked = torch.cuda.max_memory_allocated()
    assert whole.passed and chunked.passed
    assert [t.params for t in whole.trials] == [t.params for t in chunked.trials]
    assert peak_chunked < peak_whole / 2


def test_tf32_is_off_during_a_check_and_restored_after():
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1, padding_mode="circular")

        def forward(self, x):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return self.conv(x)

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        result = check_shift_equivariant(Spy(), input_shape=SHAPE, device="cuda", trials=2)
        assert set(seen) == {(False, False)}
        assert result.passed  # float32 tolerances hold because TF32 was off
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_half_precision_uses_loose_tolerances():
    from pytest_equivariance.check.metrics import TOLERANCES

    model = circular_net().cuda().half()
    result = check_shift_equivariant(model, input_shape=SHAPE, trials=4)
    assert result.dtype == "float16"
    assert (result.atol, result.rtol) == TOLERANCES["float16"]
    assert result.passed


def test_rotation_on_cuda():
    from check_models import c4_net

    assert check_rotation_equivariant(c4_net(), input_shape=SHAPE, device="cuda").passed
    assert check_rotation_equivariant(c4_net(), input_shape=SHAPE, device="cuda", mode="interp").passed


def test_auto_batch_size_uses_free_cuda_memory():
    size = runner.auto_batch_size(1 << 20, torch.device("cuda"))
    free, _ = torch.cuda.mem_get_info()
    assert size == min(runner.MAX_AUTO_BATCH, int(free * runner.CUDA_BUDGET_FRACTION) // (runner.ACTIVATION_FACTOR << 20))


def test_fingerprints_are_the_same_on_cuda_and_cpu():
    from pytest_equivariance.check.fingerprint import fingerprint_model

    model = pooled_classifier(aliasing=True)
    cpu = fingerprint_model(model)
    assert fingerprint_model(model.cuda()) == cpu


def test_a_seeded_cuda_build_gives_the_same_figures_twice():
    from pytest_equivariance.seeding import rng_states, seeded

    torch.cuda.init()
    before = rng_states()
    results = []
    for _ in range(2):
        with seeded(11):
            model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, device="cuda"),
                                        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
            torch.rand(3, device="cuda")  # draws on the CUDA generator too
            results.append(check_shift_invariant(model, input_shape=SHAPE, trials=4, localize=False))
    assert results[0].weights_fingerprint == results[1].weights_fingerprint
    assert [t.max_abs for t in results[0].trials] == [t.max_abs for t in results[1].trials]
    assert rng_states() == before


@pytest.mark.parametrize("mode", ["fourier", "antialias"])
def test_rescaling_on_cuda_keeps_exact_models_exact_and_matches_cpu_figures(mode):
    from torch import nn

    from check_models import seeded
    from pytest_equivariance import check_scale_equivariant

    pointwise = seeded(lambda: nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)))
    assert check_scale_equivariant(pointwise, input_shape=SHAPE, mode=mode, device="cuda", localize=False).passed
    relu = seeded(lambda: nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 4, 1)))
    cpu = check_scale_equivariant(relu, input_shape=SHAPE, mode=mode, device="cpu", localize=False)
    gpu = check_scale_equivariant(relu, input_shape=SHAPE, mode=mode, device="cuda", localize=False)
    for a, b in zip(cpu.trials, gpu.trials):
        assert a.channel_error == pytest.approx(b.channel_error, rel=1e-3)
