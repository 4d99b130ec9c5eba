"""The point-cloud and graph markers, the fixture's twins, and a baseline that gates their figures."""

from __future__ import annotations

import json

CLOUD_MODELS = """
import pytest, torch
from torch import nn


def cloud():
    g = torch.Generator().manual_seed(0)
    pos, h = torch.randn(6, 3, generator=g), torch.randn(6, 2, generator=g)
    edges = torch.tensor([(a, b) for a in range(6) for b in range(6) if a != b]).T
    return pos, h, edges


class Distances(nn.Module):
    '''Features from summed distances (invariant) and positions moved along relative positions (equivariant).'''

    def __init__(self, tilt=0.0):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.tilt = tilt

    def forward(self, pos, h, edge_index):
        i, j = edge_index
        d = pos[i] - pos[j]
        r = torch.zeros(pos.shape[0], 1).index_add_(0, i, d.norm(dim=-1, keepdim=True))
        moved = pos + torch.zeros_like(pos).index_add_(0, i, 0.1 * d) + self.tilt * pos[:, :1]
        return moved, self.lin(torch.cat([h, r], -1))
"""


def test_markers_and_fixture_check_point_clouds(inner) -> None:
    inner.write(CLOUD_MODELS, "clouds")
    inner.write(
        """
        import pytest
        from clouds import Distances, cloud

        FIELDS = dict(input_fields=("points", "2x0e", None), output_fields=("points", "2x0e"))

        @pytest.mark.e3_equivariant(**FIELDS, trials=8)
        @pytest.mark.permutation_equivariant(trials=4)
        def test_marked():
            return Distances(), cloud()

        def test_fixture(equivariance):
            equivariance.assert_e3_equivariant(Distances(), cloud(), **FIELDS)
            equivariance.assert_permutation_equivariant(Distances(), cloud(), permute="edges")
            assert not equivariance.check_e3_equivariant(Distances(tilt=0.5), cloud(), **FIELDS).passed

        @pytest.mark.e3_equivariant(**FIELDS, trials=8)
        def test_broken():
            return Distances(tilt=0.5), cloud()

        @pytest.mark.e3_invariant(output_fields="2x0e")
        def test_misused():
            return Distances(), cloud()
        """
    )
    result = inner.run("--equiv-trials=3")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*@pytest.mark.e3_invariant on *test_misused got an unknown argument 'output_fields' (an invariance check "
        "compares its outputs unchanged)*",
        "*e3_equivariant failed under E(3) #*",
    ])


def test_a_point_cloud_check_saves_to_a_baseline_and_gates(inner) -> None:
    inner.write(CLOUD_MODELS, "clouds")
    source = """
        import pytest
        from clouds import Distances, cloud

        @pytest.mark.e3_equivariant(input_fields=("points", "2x0e", None), output_fields=("points", "2x0e"),
                                    trials=4, atol=10, rtol=0)
        def test_lenient():
            return Distances(tilt=TILT), cloud()
        """
    inner.write(source.replace("TILT", "0.001"))
    assert inner.run("--equiv-baseline=base.json", "--equiv-baseline-update").ret == 0
    data = json.loads((inner.pytester.path / "base.json").read_text())
    (entry,) = data["checks"]
    assert entry["kind"].startswith("e3_equivariant") and entry["figures"]["worst_error"] > 0
    inner.write(source.replace("TILT", "0.5"))  # still within atol=10, but hundreds of times worse
    result = inner.run("--equiv-baseline=base.json")
    result.assert_outcomes(passed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*Robustness regressions against base.json (*", "*worst_error*×500*"])
