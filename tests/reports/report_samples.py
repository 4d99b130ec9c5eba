"""Hand-made check results for the report tests: every figure a report can show, and hostile ids."""

from __future__ import annotations

import math

from pytest_equivariance.check.result import CheckResult, LayerError, Profile, ShiftGrid, Trial

#: A test id with every character HTML must escape.
HOSTILE_ID = "tests/test_models.py::test_shift[<script>alert('x')</script> & \"q\"]"


def lattice_grid(n: int = 32, *, stride: int = 2) -> ShiftGrid:
    """A stride-``stride`` aliasing pattern: shifts on the lattice ~0, the others large and smooth."""
    errors = [
        [
            1e-7 * ((i * 7 + j * 3) % 5)
            if i % stride == 0 and j % stride == 0
            else 0.08 + 0.05 * math.sin(i / 5.0) * math.cos(j / 7.0) + 0.02 * ((i + j) % stride)
            for j in range(n)
        ]
        for i in range(n)
    ]
    return ShiftGrid(offsets_y=list(range(n)), offsets_x=list(range(n)), errors=errors)


def _trial(label: str, params: dict, err: float, passed: bool, **kw) -> Trial:
    return Trial(label, params, err, err / 3, err / 2, err / 10, passed, **kw)


def shift_failure() -> CheckResult:
    trials = []
    for dy, dx in [(1, -3), (2, 4), (-5, 0), (0, 2), (3, 3)]:
        on_lattice = dy % 2 == 0 and dx % 2 == 0
        trials.append(_trial(f"shift (dy={dy:+d}, dx={dx:+d})", {"shift": [dy, dx]}, 0.0 if on_lattice else 0.11, on_lattice))
    profile = Profile(
        layers=[
            LayerError("stem.conv", "Conv2d", 2e-7, 1e-6),
            LayerError("stem.relu", "ReLU", 2e-7, 1e-6),
            LayerError("pool", "MaxPool2d", 0.31, 1e-6, {"stride": 2, "kernel_size": 2}, file="models/net.py", line=14),
            LayerError("block.conv", "Conv2d", 0.27, 1e-6),
            LayerError("head.avgpool", "AdaptiveAvgPool2d", 0.09, 1e-6),
            LayerError("head.fc", "Linear", 0.11, 1e-6),
        ],
        method="forward hooks, output shifted on the layer's lattice",
    )
    profile.culprit = profile.layers[2]
    profile.finding_code = "EQ001"
    profile.finding_fix = "max pool with stride 1, then BlurPool(stride=2)"
    return CheckResult(
        kind="shift_invariant",
        passed=False,
        trials=trials,
        atol=1e-5,
        rtol=1e-4,
        seed=1234,
        device="cpu",
        dtype="float32",
        mode="circular",
        dims=(-2, -1),
        input_shape=(4, 3, 32, 32),
        notes=["model was in train mode; checked in eval mode"],
        profile=profile,
        grid=lattice_grid(),
        test_id=HOSTILE_ID,
        reproduce="python -m pytest 'tests/test_models.py::test_shift[<script>]' --equiv-seed 1234",
    )


def rotation_failure() -> CheckResult:
    angles = [0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0]
    trials = [
        _trial(f"rotate {a:g}°", {"angle": a}, 0.004 if a % 90 == 0 else 0.02 + a / 2000, a % 90 == 0,
               consistency=1.0 if a % 90 == 0 else 0.9)
        for a in angles
    ]
    return CheckResult(
        kind="rotation_invariant",
        passed=False,
        trials=trials,
        atol=0.01,
        rtol=0.0,
        seed=7,
        device="cpu",
        dtype="float32",
        mode="interp",
        dims=(-2, -1),
        input_shape=(8, 3, 64, 64),
        min_consistency=0.95,
        test_id="tests/test_models.py::test_rotation[resnet18 & blur]",
        reproduce="python -m pytest 'tests/test_models.py::test_rotation[resnet18 & blur]' --equiv-seed 7",
    )


def shift_pass() -> CheckResult:
    trials = [_trial("shift (dy=+1, dx=+2)", {"shift": [1, 2]}, 3e-7, True)]
    return CheckResult(
        kind="shift_equivariant",
        passed=True,
        trials=trials,
        atol=1e-5,
        rtol=1e-4,
        seed=99,
        device="cpu",
        dtype="float32",
        mode="circular",
        dims=(-2, -1),
        input_shape=(2, 3, 16, 16),
        test_id="tests/test_models.py::test_circular_conv",
        reproduce="python -m pytest tests/test_models.py::test_circular_conv --equiv-seed 99",
    )


def sample_results() -> list[CheckResult]:
    return [shift_failure(), rotation_failure(), shift_pass()]
