"""GPU tier of the point-cloud checks: rotations, irreps and permutations on CUDA. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch
from cloud_models import egnn, graph, message_passing

from pytest_equivariance import check_e3_equivariant, check_permutation_equivariant

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_cpu_inputs_are_checked_on_cuda_with_the_cpu_figures():
    pos, h, edges = graph(dtype=torch.float64)
    fields = {"input_fields": ("points", "4x0e", None), "output_fields": ("points", "4x0e"), "trials": 8}
    on_gpu = check_e3_equivariant(egnn(dtype=torch.float64), (pos, h, edges), device="cuda", **fields)
    on_cpu = check_e3_equivariant(egnn(dtype=torch.float64), (pos, h, edges), **fields)
    assert on_gpu.passed and on_gpu.device.startswith("cuda") and on_gpu.worst_error < 1e-10
    assert on_gpu.notes[0].startswith("ran the 8 elements as disjoint unions")
    assert [t.params for t in on_gpu.trials] == [t.params for t in on_cpu.trials]  # the same elements


def test_irreps_and_permutations_on_cuda():
    from pytest_equivariance.check import so3
    from pytest_equivariance.check.irreps import Irreps

    rotations = so3.random_orthogonal(4, 1).cuda()
    irreps = Irreps.parse("1x0o + 1x1o + 2x2e")
    x = torch.randn(5, irreps.dim, dtype=torch.float64, device="cuda")
    assert torch.allclose(irreps.apply(rotations, x), torch.einsum("kij,nj->kni", irreps.matrix(rotations), x))
    _, h, edges = graph()
    result = check_permutation_equivariant(message_passing().cuda(), (h.cuda(), edges.cuda()), trials=4)
    assert result.passed and result.device.startswith("cuda")
