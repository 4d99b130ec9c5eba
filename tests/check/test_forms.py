"""Models in the forms they ship: torch.compile, torch.export and TorchScript, through every entry.

The figures come from the form that ships; hooks, the per-layer profile, forward-mode AD and
``antialias`` run on a compiled model's original module; exported and scripted models, which keep
no eager layers, are refused in one sentence by the entries that need them.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import pytest_equivariance as pe
from pytest_equivariance import forms
from pytest_equivariance.check.transforms import shift
from pytest_equivariance.errors import EquivarianceUsageError


def circular_cnn() -> nn.Module:
    """Stride 1, circular padding: exactly equivariant to circular shifts."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"),
    ).eval()


def aliasing_cnn() -> nn.Module:
    """A strided max pool before global pooling: not shift-invariant."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()


# torch.jit.script is deprecated in torch 2.9+; scripting is what this file tests, so its warning is expected.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def shipped(model: nn.Module, form: str):
    if form == "compiled":
        return torch.compile(model, backend="eager")
    if form == "program":
        return torch.export.export(model, (X,))
    if form == "exported":
        return torch.export.export(model, (X,)).module()
    if form == "scripted":
        return torch.jit.script(model)
    return model


FORMS = ["compiled", "program", "exported", "scripted"]


@pytest.mark.parametrize("form, expected", [("eager", forms.EAGER), ("compiled", forms.COMPILED),
                                            ("program", forms.EXPORTED), ("exported", forms.EXPORTED),
                                            ("scripted", forms.SCRIPTED)])
def test_each_form_is_told_apart(form, expected):
    model = circular_cnn()
    assert forms.form_of(shipped(model, form)) == expected
    assert forms.original(shipped(model, "compiled")) is model


@pytest.mark.parametrize("form", FORMS)
def test_an_exactly_equivariant_model_passes_in_every_form(form):
    result = pe.check_shift_equivariant(shipped(circular_cnn(), form), X, trials=4)
    assert result.passed, result.worst
    assert any(form_word in note for note in result.notes
               for form_word in ("compiled model", "exported model", "TorchScript model"))


def test_an_exported_module_runs_without_a_mode_and_in_pieces_of_its_batch():
    exported = shipped(circular_cnn(), "exported")
    result = pe.check_shift_equivariant(exported, X, trials=5, batch_size=3, grid=True)  # 3 is not the exported 2
    assert result.passed and max(map(max, result.grid.errors)) < 1e-5
    assert any("no train/eval" in note for note in result.notes)
    assert exported.training  # left as exported: eval() was never called


@pytest.mark.parametrize("form", FORMS)
def test_an_aliasing_model_fails_in_every_form(form):
    result = pe.check_shift_invariant(shipped(aliasing_cnn(), form), X, trials=4)
    assert not result.passed
    if form == "compiled":  # profiled through the original module
        assert result.profile is not None and result.profile.culprit.qualname == "2"
        assert result.weights_fingerprint == pe.check_shift_invariant(aliasing_cnn(), X, trials=4).weights_fingerprint
    else:
        assert result.profile is None


ENTRIES = {
    "check_shift_invariant": lambda m: pe.check_shift_invariant(m, X, trials=2),
    "check_rotation_invariant": lambda m: pe.check_rotation_invariant(m, X),
    "lie_check": lambda m: pe.check_shift_invariant(m, X, measure="lie"),
    "lie_derivative": lambda m: pe.lie_derivative(m, X, "translate_x"),
    "attribute": lambda m: pe.attribute(m, X, "translate_x"),
    "localize": lambda m: pe.localize(m, X, shift((1, 2), (-2, -1)), equivariant=False),
    "lint_model": lambda m: pe.lint_model(m, X),
    "antialias": lambda m: pe.antialias(m, example_input=X),
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_no_raw_torch_exception_reaches_the_user(form, entry):
    try:
        ENTRIES[entry](shipped(aliasing_cnn(), form))
    except EquivarianceUsageError as exc:
        assert form in ("program", "exported", "scripted") and entry in ("attribute", "localize", "antialias")
        assert "eager model" in str(exc) and str(exc).count(". ") == 0


def test_a_compiled_model_lints_and_antialiases_through_its_original_module():
    eager = aliasing_cnn()
    compiled = torch.compile(eager, backend="eager")
    report = pe.lint_model(compiled, X)
    assert [f.code for f in report.findings] == [f.code for f in pe.lint_model(eager, X).findings]
    assert "EQ001" in [f.code for f in report.findings]
    assert report.trace == "fx" and any("_orig_mod" in note for note in report.notes)
    fixed = pe.antialias(compiled, example_input=X)
    assert forms.form_of(fixed) == forms.EAGER and fixed.antialias_report.changed_qualnames == ["2"]
    assert "torch.compile(fixed)" in str(fixed.antialias_report)
    assert isinstance(compiled._orig_mod[2], nn.MaxPool2d)  # the compiled model is left alone


@pytest.mark.parametrize("form", ["program", "exported"])
def test_an_exported_model_lints_as_its_eager_model(form):
    report = pe.lint_model(shipped(aliasing_cnn(), form), X)
    assert report.trace == "export" and report.errors == []
    eager = pe.lint_model(aliasing_cnn(), X)
    assert [(f.code, f.qualname, f.op) for f in report.findings] == [(f.code, f.qualname, f.op) for f in eager.findings]


QUIET_RUN = textwrap.dedent("""
    import torch
    from torch import nn
    import pytest_equivariance as pe

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()
    compiled = torch.compile(model, backend="aot_eager")
    x = torch.randn(2, 3, 16, 16)
    compiled(x)  # the user's own first call
    failing = pe.check_shift_invariant(compiled, x, trials=4)
    assert not failing.passed and failing.profile.culprit.qualname == "2", failing
    assert pe.check_shift_invariant(compiled, x, measure="lie").passed is False
    pe.lint_model(compiled, x)
    pe.attribute(compiled, x, "translate_x")
    pe.antialias(compiled, example_input=x)
    print("done")
""")


def test_a_compiled_run_prints_nothing_of_torchs_on_stderr(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCH_LOGS", "TORCHDYNAMO", "TORCHINDUCTOR"))}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(pe.__file__)), env.get("PYTHONPATH", "")])
    run = subprocess.run([sys.executable, "-c", QUIET_RUN], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "done"
    assert run.stderr == "", run.stderr[:3000]
