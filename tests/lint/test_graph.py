"""The model graph: tracing modes and fallbacks, meta-device shapes, source locations."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_equivariance.lint import lint, lint_model
from pytest_equivariance.lint.graph import ModelGraph, build_graph


def line_of(obj, text: str) -> int:
    """The line number of the first line containing ``text`` in ``obj``'s source."""
    lines, start = inspect.getsourcelines(obj)
    for offset, line in enumerate(lines):
        if text in line:
            return start + offset
    raise AssertionError(f"{text!r} not in the source of {obj}")


# ------------------------------------------------------------------------------ models


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.body = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.stem(x)))
        x = self.body(x)
        x = F.avg_pool2d(x, 2)
        x = x[:, :, ::2, ::2]
        x = F.interpolate(x, scale_factor=0.5)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def downsample(x):
    return x[..., ::2]  # a helper in user code: the finding points here


class WithHelper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3)

    def forward(self, x):
        return downsample(self.conv(x))


class Gate(nn.Module):
    """Data-dependent control flow: fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = nn.Conv2d(8, 8, 3, stride=2, padding=1)

    def forward(self, x):
        if x.sum() > 0:
            return self.pool(x)
        return self.conv(x)


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.gate = Gate()
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.gate(self.stem(x))
        return self.head(x.mean((2, 3)))


class Branchy(nn.Module):
    """Data-dependent control flow in the model's own forward."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(8, 3, 3, stride=2), nn.Sigmoid())

    def forward(self, x):
        y = self.encoder(x)
        if y.mean() > 0.5:  # decided by the data
            y = y * 2
        for i in range(int(y.shape[1] > 4)):
            y = y + i
        return self.decoder(y)


class Flat(nn.Module):
    """Its forward iterates over its input: nothing traces, only its layers can be scanned."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.MaxPool2d(2)
        self.b = nn.Conv2d(3, 3, 3, stride=2)

    def forward(self, xs):
        return [self.b(self.a(x)) for x in xs]


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, stride=2)

    def forward(self, x):
        raise RuntimeError("this model always fails")


# ------------------------------------------------------------------------------ fx mode


def test_sites_are_in_execution_order_with_canonical_families():
    graph = build_graph(Net(), (1, 3, 32, 32))
    assert isinstance(graph, ModelGraph) and graph.mode == "fx" and graph.coverage == 1.0
    assert graph.graph_module is not None and graph.errors == []
    families = [s.family for s in graph.sites if s.family not in ("activation", "other", "reshape")]
    assert families == ["conv", "max_pool", "conv", "conv", "avg_pool", "getitem", "interpolate",
                        "adaptive_avg_pool", "flatten", "linear"]
    kinds = {s.qualname or s.op: s.kind for s in graph.sites}
    assert kinds["pool"] == "module" and kinds["body.2"] == "module"


def test_shapes_propagate_on_meta_for_real_and_meta_weights():
    real = Net()
    with torch.device("meta"):
        meta = Net()
    for model in (real, meta):
        graph = build_graph(model, (2, 3, 32, 32))
        conv = next(s for s in graph.sites if s.qualname == "body.2")
        assert conv.input_shape == (2, 8, 16, 16) and conv.output_shape == (2, 16, 8, 8)
        interp = next(s for s in graph.sites if s.family == "interpolate")
        assert interp.input_shape == (2, 16, 2, 2) and interp.output_shape == (2, 16, 1, 1)
    assert [(f.code, f.qualname) for f in lint(real, (1, 3, 32, 32))] == [
        (f.code, f.qualname) for f in lint(meta, (1, 3, 32, 32))
    ]


def test_linting_leaves_the_model_untouched():
    model = Net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = [id(p) for p in model.parameters()]
    model.body[1].eval()
    lint(model, torch.randn(1, 3, 32, 32))
    assert model.training and not model.body[1].training
    assert [id(p) for p in model.parameters()] == params
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_tensor_constants_are_not_left_on_the_model():
    model = Fn(lambda x: x + torch.arange(4.0).view(1, 4, 1, 1))
    before = set(vars(model))
    lint(model, (1, 4, 8, 8))
    assert set(vars(model)) == before


class Fn(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_example_input_forms_agree():
    shapes = [(1, 3, 32, 32), torch.randn(1, 3, 32, 32), (torch.randn(1, 3, 32, 32),), [1, 3, 32, 32]]
    found = [[(f.code, f.qualname) for f in lint(Net(), example)] for example in shapes]
    assert all(f == found[0] for f in found) and found[0]


def test_no_example_input_means_no_shapes_but_still_findings():
    graph = build_graph(Net(), None)
    assert graph.mode == "fx" and graph.input_shapes is None
    assert all(s.output_shape is None for s in graph.sites)
    assert "EQ001" in {f.code for f in lint(Net(), None)}  # inferred (1, 3, 224, 224) in lint


# ------------------------------------------------------------------------------ fallbacks


def test_untraceable_submodule_becomes_an_opaque_leaf_and_is_scanned():
    report = lint_model(GatedNet(), (1, 3, 32, 32), ignore=["EQ011"])
    assert report.trace == "fx" and 0 < report.coverage < 1 and report.errors == []
    found = sorted((f.code, f.qualname) for f in report.findings)
    assert found == [("EQ001", "gate.pool"), ("EQ002", "gate.conv"), ("EQ002", "stem")]
    graph = build_graph(GatedNet(), (1, 3, 32, 32))
    pool = next(s for s in graph.sites if s.qualname == "gate.pool")
    assert pool.node is None and pool.input_shape == (1, 8, 16, 16)  # shapes from an eager meta run


def test_data_dependent_control_flow_in_the_model_falls_back_hierarchically():
    report = lint_model(Branchy(), (1, 3, 32, 32), ignore=["EQ011"])
    assert report.trace == "hierarchical" and report.coverage == 1.0
    assert sorted((f.code, f.qualname) for f in report.findings) == [
        ("EQ001", "encoder.2"), ("EQ002", "encoder.0"), ("EQ007", "decoder.0")
    ]
    assert report.errors == [] and any("could not be traced" in n for n in report.notes)


class ShapeLoop(nn.Module):
    """Control flow on the input's size: fx cannot trace it, a meta run can."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        while x.shape[-1] > 4:
            x = F.max_pool2d(self.conv(x), 3, stride=2, padding=1)
        return x[:, :, ::2]


def test_functional_calls_in_an_untraceable_forward_are_read_from_a_meta_run():
    report = lint_model(ShapeLoop(), (1, 3, 32, 32))
    assert report.trace == "modules" and report.errors == []
    found = {(f.code, f.op, f.line) for f in report.findings}
    assert found == {
        ("EQ001", "F.max_pool2d", line_of(ShapeLoop, "F.max_pool2d(self.conv(x)")),  # once, not 3 times
        ("EQ005", "Tensor.__getitem__", line_of(ShapeLoop, "x[:, :, ::2]")),
    }


class Decimate(nn.Module):
    """No children, and a forward fx cannot trace."""

    def forward(self, x):
        if x.abs().max() > 1:
            x = x / x.abs().max()
        return x[..., ::2, ::2]


def test_a_childless_untraceable_module_is_read_from_a_meta_run():
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), Decimate())
    [finding] = lint(model, (1, 3, 16, 16))
    assert (finding.code, finding.qualname) == ("EQ005", "1")
    assert finding.line == line_of(Decimate, "x[..., ::2, ::2]")


@pytest.mark.filterwarnings("ignore")
def test_torchscript_modules_are_an_error_with_a_remedy():
    report = lint_model(torch.jit.script(nn.Sequential(nn.Conv2d(3, 3, 3, stride=2))), (1, 3, 16, 16))
    assert report.findings == [] and "before passing it to torch.jit.script" in report.errors[0]


class Masked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x, mask=None):
        if mask is not None:
            x = x * mask.view(1, 1, 8, 8)
        return self.pool(x)


def test_optional_arguments_left_out_are_traced_as_none():
    report = lint_model(Masked(), (1, 3, 8, 8))
    assert report.trace == "fx" and report.errors == []
    assert [f.code for f in report.findings] == ["EQ001"]


def test_nothing_traceable_scans_modules_without_crashing():
    report = lint_model(Flat(), (1, 3, 16, 16), ignore=["EQ011"])
    assert report.trace == "modules" and report.coverage == 0.0
    assert sorted(f.code for f in report.findings) == ["EQ001", "EQ002"]


def test_a_model_that_always_fails_still_gives_a_report():
    report = lint_model(Broken(), (1, 3, 16, 16))
    assert report.trace in ("hierarchical", "modules")
    assert [f.code for f in report.findings] == ["EQ002"]


def test_a_rejected_input_shape_is_an_error_string_not_an_exception():
    report = lint_model(Net(), (1, 5, 32, 32))
    assert report.findings  # the graph was traced; only shapes are missing
    [error] = report.errors
    assert "stem" in error and "(1, 5, 32, 32)" in error and error.endswith("--input-shape.")


def test_torch_fx_wrapped_functions_are_read_from_source():
    report = lint_model(Merging(), (1, 4, 8, 8))
    slices = [f for f in report.findings if f.code == "EQ005"]
    assert len(slices) == 2
    assert {f.line for f in slices} == {line_of(_merge, "0::2, 0::2"), line_of(_merge, "1::2, 1::2")}


def _merge(x):
    x0 = x[..., 0::2, 0::2, :]
    x1 = x[..., 1::2, 1::2, :]
    return torch.cat([x0, x1], -1)


torch.fx.wrap("_merge")  # fx keeps calls to it opaque, as torchvision does for Swin's patch merging


class Merging(nn.Module):
    def forward(self, x):
        return _merge(x.permute(0, 2, 3, 1))


# ------------------------------------------------------------------------------ locations


def test_layer_findings_point_at_the_constructor_line():
    found = {f.qualname: f for f in lint(Net(), (1, 3, 32, 32), select=["EQ001", "EQ002"])}
    assert found["pool"].line == line_of(Net, "self.pool = nn.MaxPool2d")
    assert found["pool"].file == inspect.getsourcefile(Net)
    # a layer built inside an nn.Sequential literal: the k-th call of its class there
    assert found["body.2"].line == line_of(Net, "nn.Conv2d(8, 16, 3, stride=2")


def test_functional_findings_point_at_the_call_line():
    found = {f.code: f for f in lint(Net(), (1, 3, 32, 32))}
    assert found["EQ003"].line == line_of(Net, "F.avg_pool2d(x, 2)")
    assert found["EQ005"].line == line_of(Net, "x[:, :, ::2, ::2]")
    assert found["EQ004"].line == line_of(Net, "F.interpolate(x, scale_factor=0.5)")
    assert found["EQ005"].file == inspect.getsourcefile(Net)


def test_a_call_inside_a_user_helper_points_into_the_helper():
    [finding] = lint(WithHelper(), (1, 2, 16))
    assert finding.line == line_of(downsample, "x[..., ::2]")


def test_layers_built_in_a_loop_point_at_the_loop_body():
    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers = []
            for _ in range(3):
                layers += [nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(2)]
            self.layers = nn.Sequential(*layers)

        def forward(self, x):
            return self.layers(x)

    found = lint(Stack(), (1, 4, 32, 32), select=["EQ001"])
    assert len(found) == 3
    assert {f.line for f in found} == {line_of(Stack, "nn.MaxPool2d(2)]")}
