"""Every bad marker argument is a usage error that names the test and the argument."""

from __future__ import annotations

import pytest

from pytest_equivariance.plugin import MARKERS, allowed_keywords, marker_usage_error

#: (marker, arguments as written in the decorator, text the error must contain)
BAD = [
    ("shift_equivariant", "max_shfit=3", "unknown argument 'max_shfit'"),
    ("shift_equivariant", "(1, 3, 8, 8)", "positional arguments"),
    ("shift_equivariant", "angles=[90]", "unknown argument 'angles'"),
    ("rotation_invariant", "max_shift=2", "unknown argument 'max_shift'"),
    ("shift_equivariant", "min_consistency=0.9", "unknown argument 'min_consistency'"),
    ("shift_invariant", "input_shape=(8, 8)", "input_shape=(8, 8)"),
    ("shift_invariant", "input_shape=(1, 0, 8, 8)", "input_shape=(1, 0, 8, 8)"),
    ("shift_invariant", "input_shape='1,x,8'", "input_shape='1,x,8'"),
    ("shift_invariant", "max_shift=0", "max_shift=0"),
    ("shift_invariant", "max_shift=1.5", "max_shift=1.5"),
    ("shift_invariant", "max_shift=(2, 3)", "max_shift=(2, 3)"),
    ("shift_invariant", "shifts=[]", "shifts=[]"),
    ("shift_invariant", "shifts=[(1, 0), (1,)]", "shifts=[(1, 0), (1,)]"),
    ("shift_invariant", "shifts=[(0, float('inf'))]", "shifts=[(0, inf)]"),
    ("shift_invariant", "shift='one'", "shift='one'"),
    ("shift_invariant", "trials=0", "trials=0"),
    ("shift_invariant", "trials=True", "trials=True"),
    ("shift_invariant", "mode='exact'", "mode='exact'"),
    ("rotation_invariant", "mode='circular'", "mode='circular'"),
    ("rotation_invariant", "angles=[]", "angles=[]"),
    ("rotation_invariant", "angles=['spin']", "angles=['spin']"),
    ("rotation_invariant", "angle=None", "angle=None"),
    ("shift_invariant", "dims=(-1, -1)", "dims=(-1, -1)"),
    ("shift_invariant", "dims='hw'", "dims='hw'"),
    ("shift_invariant", "atol=-1e-3", "atol=-0.001"),
    ("shift_invariant", "rtol='tight'", "rtol='tight'"),
    ("shift_invariant", "min_consistency=1.5", "min_consistency=1.5"),
    ("shift_invariant", "seed=-1", "seed=-1"),
    ("shift_invariant", "device='gpu'", "device='gpu'"),
    ("shift_invariant", "batch_size=0", "batch_size=0"),
    ("shift_invariant", "localize='yes'", "localize='yes'"),
    ("shift_invariant", "grid=1", "grid=1"),
    ("shift_invariant", "margin=-2", "margin=-2"),
    ("shift_invariant", "shift=(1, 0), shifts=[(1, 0)]", "both shift= and shifts="),
    ("shift_invariant", "shift=1, max_shift=3", "both shift= and max_shift="),
    ("rotation_invariant", "angle=90, angles=[90]", "both angle= and angles="),
    ("shift_invariant", "dims=(-1,), shift=(1, 2)", "shift=(1, 2) for dims=(-1,)"),
]


def test_all_bad_marker_arguments_fail_their_test_with_one_sentence(inner):
    lines = ["import pytest", "from models import circular_net", ""]
    for i, (marker, arguments, _) in enumerate(BAD):
        lines += [f"@pytest.mark.{marker}({arguments})", f"def test_bad_{i}():", "    return circular_net()", ""]
    lines += ["@pytest.mark.shift_equivariant(input_shape=(1, 1, 8, 8), shift=(1, 1))",
              "def test_good():", "    return circular_net()"]  # fmt: skip
    inner.write("\n".join(lines))
    result = inner.run("-rE")
    result.assert_outcomes(errors=len(BAD), passed=1)
    output = result.stdout.str()
    for i, (marker, arguments, expected) in enumerate(BAD):
        head = f"@pytest.mark.{marker} on test_inner.py::test_bad_{i} got"
        line = next((ln for ln in output.splitlines() if ln.startswith(head)), None)
        assert line is not None, f"no usage error for {arguments}"
        assert expected in line, line
        assert line.endswith("."), line  # one sentence, ending with the remedy
    result.stdout.no_fnmatch_line("*Traceback*")


def test_bad_arguments_are_reported_before_fixtures_run(inner):
    inner.write(
        """
import pytest

@pytest.fixture
def model():
    raise RuntimeError("expensive fixture must not run")

@pytest.mark.shift_invariant(trails=3)
def test_typo(model):
    pass
"""
    )
    result = inner.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown argument 'trails'*use one of: input_shape, max_shift*"])
    result.stdout.no_fnmatch_line("*expensive fixture*")


@pytest.mark.parametrize("marker", sorted(MARKERS))
def test_every_allowed_keyword_accepts_a_valid_value(marker):
    valid = {
        "input_shape": (1, 3, 8, 8), "max_shift": 2, "shifts": [(1, 0)], "shift": (1, 0), "trials": 3,
        "mode": {"shift": "crop", "scale": "antialias"}.get(MARKERS[marker][0], "interp"),
        "angles": [90, "hflip"], "angle": 30.5,
        "dims": (-2, -1), "atol": 1e-4, "rtol": 0, "min_consistency": 0.9, "seed": 7, "device": "cuda:1",
        "batch_size": 16, "localize": None, "grid": True, "margin": 2, "subpixel": True, "min_psnr": 40,
        "measure": "lie", "group": "D4", "input_fields": "scalar", "output_fields": ["vector", "sign"],
        "limit": 100, "progress": False, "protocol": "zhang2019", "min_accuracy": 0.9, "max_accuracy_drop": 0.05,
        "scales": [0.5, 2], "scale": 0.5, "scale_range": (0.5, 2.0), "max_channel_error": 1e-5,
        "permute": "edges", "positions": "pos", "edge_index": "edge_index", "edge_attrs": ("edge_attr",),
    }  # fmt: skip
    if marker.startswith("e3_"):  # point clouds: E(3) groups and irreps
        valid.update(group="SO3", input_fields=("points", "8x0e", None), output_fields="1x1o")
    if marker == "scale_invariant":  # rescaling's protocols
        valid.update(protocol="azulay2019")
    for name in allowed_keywords(marker):
        mark = getattr(pytest.mark, marker)(**{name: valid[name]}).mark
        assert marker_usage_error(mark, "t.py::test") is None, name


#: Values the check functions reject; a marker must reject the same ones at collection.
REJECTED_BY_THE_API = [
    ("max_shift", 0), ("max_shift", (2, 3)), ("trials", 0), ("atol", -1.0), ("rtol", float("inf")),
    ("min_consistency", 1.5), ("seed", -1), ("batch_size", 0), ("localize", "yes"), ("margin", -1),
    ("subpixel", "yes"), ("min_psnr", float("nan")), ("measure", "psnr"), ("limit", 0), ("progress", "no"),
    ("protocol", "zhang"), ("min_accuracy", 1.5), ("max_accuracy_drop", -0.1),
]  # fmt: skip


@pytest.mark.parametrize("name, value", REJECTED_BY_THE_API)
def test_markers_and_check_functions_reject_the_same_values(name, value):
    from torch import nn

    from pytest_equivariance import check_shift_invariant
    from pytest_equivariance.errors import EquivarianceUsageError

    mark = pytest.mark.shift_invariant(**{name: value}).mark
    assert marker_usage_error(mark, "t.py::test") is not None
    classifier = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(EquivarianceUsageError, match=f"{name}="):
        check_shift_invariant(classifier, input_shape=(1, 3, 8, 8), **{name: value})
