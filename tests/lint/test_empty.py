"""Building models without initialising or allocating their large weights (what equiv-lint does)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_equivariance.lint import lint_model
from pytest_equivariance.lint.empty import SMALL_PARAMETER, build_empty, empty_weights
from pytest_equivariance.lint.loader import NeedsArgumentsError


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.big = nn.Conv2d(64, 128, 3)  # 73,728 weights: meta
        self.small = nn.Conv2d(3, 8, 3, stride=2)  # 216 weights: real
        self.depthwise = nn.Conv2d(512, 512, 5, groups=512, stride=2, bias=False)  # (512, 1, 5, 5): real
        self.depthwise.weight.requires_grad_(False)
        with torch.no_grad():  # a frozen binomial blur, written after the weight was registered
            k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
            self.depthwise.weight.copy_((k[:, None] * k[None, :] / 256).expand(512, 1, 5, 5))
        self.register_buffer("table", torch.arange(100_000.0))  # buffers stay real, whatever their size
        self.scale = nn.Parameter(torch.ones(1))


def test_large_parameters_go_to_meta_and_the_rest_stays_real():
    with empty_weights():
        model = Mixed()
    assert model.big.weight.is_meta and model.big.weight.numel() > SMALL_PARAMETER
    assert isinstance(model.big.weight, nn.Parameter) and model.big.weight.requires_grad
    assert not model.small.weight.is_meta and not model.big.bias.is_meta
    assert not model.depthwise.weight.is_meta and not model.depthwise.weight.requires_grad
    assert float(model.depthwise.weight[0, 0].sum()) == pytest.approx(1.0)
    assert not model.table.is_meta and float(model.table[-1]) == 99_999.0
    assert float(model.scale.detach()) == 1.0


def test_the_frozen_filter_is_recognised_as_after_a_real_build():
    def findings(model):
        return [(f.code, f.qualname) for f in lint_model(model, (1, 512, 32, 32), select=["EQ002"]).findings]

    with empty_weights():
        empty = Mixed()
    assert findings(empty) == findings(Mixed())
    assert ("EQ002", "depthwise") not in findings(empty)


def test_everything_patched_is_restored_also_after_an_error():
    register, kaiming = nn.Module.register_parameter, nn.init.kaiming_uniform_
    with pytest.raises(RuntimeError, match="boom"), empty_weights():
        assert nn.Module.register_parameter is not register and nn.init.kaiming_uniform_ is not kaiming
        raise RuntimeError("boom")
    assert nn.Module.register_parameter is register and nn.init.kaiming_uniform_ is kaiming
    assert not nn.Linear(300, 300).weight.is_meta


def test_initialisers_skip_meta_tensors_and_still_initialise_real_ones():
    with empty_weights():
        meta = torch.empty(3, device="meta")
        assert nn.init.normal_(meta) is meta
        real = nn.init.constant_(torch.zeros(3), 2.0)
    assert real.tolist() == [2.0, 2.0, 2.0]


class NeedsValues(nn.Module):
    """Reads a large weight's value while it is built: it cannot be built with empty weights."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(64, 128, 3, stride=2)
        self.gain = float(self.conv.weight.detach().abs().max())
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(x) * self.gain)


def test_a_model_that_refuses_meta_falls_back_to_a_normal_build_with_the_same_findings():
    built = build_empty(NeedsValues)
    assert not built.empty and not built.model.conv.weight.is_meta
    assert built.note.startswith("built with initialised weights: building it with empty weights raised")
    assert "meta" in built.note
    shape = (1, 64, 32, 32)
    assert lint_model(built.model, shape).findings == lint_model(NeedsValues(), shape).findings


def test_errors_named_by_the_caller_propagate_without_a_second_build():
    calls = []

    def build():
        calls.append(1)
        raise NeedsArgumentsError("needs arguments")

    with pytest.raises(NeedsArgumentsError):
        build_empty(build, errors=(NeedsArgumentsError,))
    assert calls == [1]


def test_lazy_layers_are_left_alone():
    with empty_weights():
        model = nn.Sequential(nn.LazyConv2d(8, 3), nn.Linear(400, 400))
    assert isinstance(model[0].weight, nn.parameter.UninitializedParameter)
    assert model[1].weight.is_meta
