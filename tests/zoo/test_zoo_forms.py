"""Zoo tier: a torchvision resnet18 compiled and exported, as it ships (``-m zoo``)."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import pytest_equivariance as pe
from optional import require

torchvision = require("torchvision")
pytestmark = pytest.mark.zoo

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def resnet18() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def test_an_exported_resnet18_lints_as_its_eager_model_and_fails_its_check():
    eager = resnet18()
    program = torch.export.export(eager, (X,))
    want = collections.Counter(f.code for f in pe.lint_model(eager, X).findings)
    for exported in (program, program.module()):
        report = pe.lint_model(exported, X)
        assert collections.Counter(f.code for f in report.findings) == want
        assert all(f.file and f.file.endswith("resnet.py") and f.line for f in report.findings)
    result = pe.check_shift_invariant(program.module(), X, trials=4)
    assert not result.passed and result.profile is None
    assert any("exported model" in note for note in result.notes)


QUIET_RESNET = textwrap.dedent("""
    import torch, torchvision
    import pytest_equivariance as pe

    torch.manual_seed(0)
    compiled = torch.compile(torchvision.models.resnet18(weights=None).eval(), backend="aot_eager")
    x = torch.randn(2, 3, 64, 64)
    result = pe.check_shift_invariant(compiled, x, trials=4)
    assert not result.passed and result.profile is not None and result.profile.culprit is not None, result
    assert result.profile.culprit.qualname in ("conv1", "maxpool"), result.profile.culprit
    assert len(pe.lint_model(compiled, x).findings) == len(pe.lint_model(compiled._orig_mod, x).findings)
    print("done")
""")


def test_a_compiled_resnet18_fails_with_its_culprit_and_prints_nothing_of_torchs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCH_LOGS", "TORCHDYNAMO", "TORCHINDUCTOR"))}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(pe.__file__)), env.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, "-c", QUIET_RESNET], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "done" and run.stderr == "", run.stderr[:3000]
