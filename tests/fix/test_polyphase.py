"""Adaptive polyphase sampling: exact circular-shift invariance, drop-in shapes, weights kept."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from optional import require
from pytest_equivariance import check_shift_invariant
from pytest_equivariance.errors import EquivarianceUsageError
from pytest_equivariance.fix import (
    PolyphaseAvgPool2d,
    PolyphaseConv1d,
    PolyphaseConv2d,
    PolyphaseMaxPool1d,
    PolyphaseMaxPool2d,
    PolyphaseMaxPool3d,
    PolyphasePool2d,
    antialias,
    polyphase_pool1d,
    polyphase_pool2d,
    polyphase_pool3d,
)
from pytest_equivariance.layers.polyphase import polyphase_conv
from pytest_equivariance.lint import lint

CODES = ["EQ001", "EQ002", "EQ003"]


class CircularNet(nn.Module):
    """Circular convs, a strided max pool, a strided 3x3 conv, a strided 1x1 conv, an average pool,
    global pooling: every subsampling aliases, so circular shifts change the logits."""

    def __init__(self) -> None:
        super().__init__()
        circ = {"padding_mode": "circular"}
        self.stem = nn.Conv2d(3, 8, 3, padding=1, **circ)
        self.pool = nn.MaxPool2d(2)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1, **circ)
        self.proj = nn.Conv2d(16, 16, 1, stride=2)
        self.avg = nn.AvgPool2d(2)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.stem(x)))
        x = torch.relu(self.down(x))
        x = self.avg(torch.relu(self.proj(x)))
        return self.head(x.mean((-2, -1)))


def _images(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _worst_relative_change(model: nn.Module, x: torch.Tensor, shifts) -> float:
    with torch.no_grad():
        y = model(x)
        shifted = torch.cat([torch.roll(x, s, dims=(-2, -1)) for s in shifts])
        ys = model(shifted).reshape(len(shifts), *y.shape)
        return float(((ys - y).flatten(2).norm(dim=-1) / y.flatten(1).norm(dim=-1)).max())


@pytest.fixture(scope="module")
def circular_pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = CircularNet().double().eval()
    return model, antialias(model, method="polyphase", example_input=(1, 3, 32, 32)).eval()


def test_polyphase_makes_a_circular_net_exactly_invariant_to_every_circular_shift(circular_pair) -> None:
    model, fixed = circular_pair
    assert sorted(fixed.antialias_report.changed_qualnames) == ["avg", "down", "pool", "proj"]
    x = _images()
    # The strides multiply to 16: shifts 0..15 along each axis reach every phase of every layer,
    # odd ones included; a few large ones wrap around.
    shifts = list(itertools.product(range(16), range(16))) + [(17, 31), (31, 1), (-5, 12)]
    assert _worst_relative_change(fixed, x, shifts) <= 1e-5
    assert _worst_relative_change(model, x, shifts) > 1e-2


def test_polyphase_keeps_the_checkpoint_and_output_shapes(circular_pair) -> None:
    model, fixed = circular_pair
    assert list(fixed.state_dict()) == list(model.state_dict())
    fixed.load_state_dict(model.state_dict(), strict=True)
    fresh = antialias(CircularNet(), method="polyphase", example_input=(1, 3, 32, 32))
    fresh.load_state_dict(model.state_dict(), strict=True)
    for size in (32, 31, 45):
        x = _images(size=size)
        assert fixed(x).shape == model(x).shape
    assert lint(fixed, (1, 3, 32, 32), select=CODES) == []


def test_the_circular_shift_check_passes_at_1e_5_after_polyphase_and_fails_before(circular_pair) -> None:
    model, fixed = circular_pair
    x = _images(4)
    after = check_shift_invariant(fixed, x, mode="circular", max_shift=15, trials=64, atol=1e-5, rtol=1e-5)
    assert after.passed, after.worst_error
    before = check_shift_invariant(model, x, mode="circular", max_shift=15, trials=64, atol=1e-5, rtol=1e-5)
    assert not before.passed


def test_blur_only_reduces_what_polyphase_removes(circular_pair) -> None:
    model, polyphase = circular_pair
    blurred = antialias(model, example_input=(1, 3, 32, 32)).eval()
    x, shifts = _images(), [(0, 1), (1, 0), (1, 1), (3, 5)]
    plain, blur = _worst_relative_change(model, x, shifts), _worst_relative_change(blurred, x, shifts)
    assert blur < plain and blur > 1e-4
    assert _worst_relative_change(polyphase, x, shifts) < 1e-12


def test_each_sample_keeps_its_own_component() -> None:
    x = torch.zeros(2, 1, 4, 4)
    x[0, 0, 0::2, 0::2] = 1.0  # all energy in phase (0, 0)
    x[1, 0, 1::2, 0::2] = 2.0  # all energy in phase (1, 0)
    y = polyphase_pool2d(x)
    assert torch.equal(y[0], torch.ones(1, 2, 2)) and torch.equal(y[1], torch.full((1, 2, 2), 2.0))


@pytest.mark.parametrize("criterion", ["l2", "l1", "max"])
def test_every_criterion_is_shift_consistent(criterion: str) -> None:
    x = torch.randn(3, 4, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = polyphase_pool2d(x, criterion=criterion)
    for t in [(1, 0), (0, 1), (3, 7)]:
        ys = polyphase_pool2d(torch.roll(x, t, (-2, -1)), criterion=criterion)
        # A circular shift of the input is a circular shift on the coarse grid of each output (by
        # an amount that depends on the component the sample keeps).
        for a, b in zip(ys, y):
            assert any(torch.equal(a, torch.roll(b, c, (-2, -1))) for c in itertools.product(range(6), range(6)))


def test_criteria_differ_where_norms_do() -> None:
    x = torch.zeros(1, 1, 1, 4)
    x[..., 0::2] = torch.tensor([3.0, 0.0])  # phase 0: l2 3, l1 3, max 3
    x[..., 1::2] = torch.tensor([2.0, 2.0])  # phase 1: l2 2.83, l1 4, max 2
    assert polyphase_pool2d(x, (1, 2), "l2").flatten().tolist() == [3.0, 0.0]
    assert polyphase_pool2d(x, (1, 2), "l1").flatten().tolist() == [2.0, 2.0]
    assert polyphase_pool2d(x, (1, 2), "max").flatten().tolist() == [3.0, 0.0]


def test_blur_before_selection_stays_exact_and_smooths() -> None:
    x = _images(2, 16)
    y = polyphase_pool2d(x, blur=3)
    ys = polyphase_pool2d(torch.roll(x, (1, 1), (-2, -1)), blur=3)
    for a, b in zip(ys, y):
        assert any(torch.allclose(a, torch.roll(b, c, (-2, -1)), atol=1e-12) for c in itertools.product(range(8), range(8)))
    assert y.std() < polyphase_pool2d(x).std()


@given(n=st.integers(3, 21), k=st.integers(1, 4), s=st.integers(2, 3), pad=st.integers(0, 2),
       ceil=st.booleans(), circular=st.booleans())
@settings(max_examples=60, deadline=None)
def test_pools_and_convs_keep_the_strided_output_size(n, k, s, pad, ceil, circular) -> None:
    pad = min(pad, k // 2)
    x = torch.randn(1, 2, n, n + 1)
    if n + 2 * pad < k:
        return
    assert PolyphaseMaxPool2d(k, s, pad, ceil_mode=ceil, circular=circular)(x).shape == \
        nn.MaxPool2d(k, s, pad, ceil_mode=ceil)(x).shape
    assert PolyphaseAvgPool2d(k, s, pad, ceil, circular=circular)(x).shape == nn.AvgPool2d(k, s, pad, ceil)(x).shape
    for mode in ("zeros", "circular", "reflect"):
        if mode == "reflect" and pad >= n:
            continue
        conv = nn.Conv2d(2, 3, k, s, pad, padding_mode=mode)
        assert polyphase_conv(conv, circular=circular)(x).shape == conv(x).shape


def test_standalone_pool_rounds_odd_sizes_up_by_wrapping_around() -> None:
    x = torch.tensor([[[1.0, 5.0, 1.0, 5.0, 1.0]]])
    # Padded circularly to 6: phases [1, 1, 1] and [5, 5, 1]; the second is larger.
    assert polyphase_pool1d(x).flatten().tolist() == [5.0, 5.0, 1.0]
    assert polyphase_pool2d(torch.randn(1, 1, 9, 8)).shape == (1, 1, 5, 4)


def test_1d_and_3d_models_become_exactly_invariant() -> None:
    torch.manual_seed(0)
    net1 = nn.Sequential(nn.Conv1d(2, 4, 3, stride=2, padding=1, padding_mode="circular"), nn.ReLU(),
                         nn.MaxPool1d(2), nn.AdaptiveAvgPool1d(1)).double()
    fixed1 = antialias(net1, method="polyphase", example_input=(1, 2, 32))
    assert isinstance(fixed1[0], PolyphaseConv1d) and isinstance(fixed1[2], PolyphaseMaxPool1d)
    x = torch.randn(2, 2, 32, dtype=torch.float64)
    for t in range(1, 5):
        assert torch.allclose(fixed1(torch.roll(x, t, -1)), fixed1(x), atol=1e-12)
    x3 = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    pool3 = PolyphaseMaxPool3d(2, circular=True)
    y = pool3(x3).sum((-3, -2, -1))
    assert torch.allclose(pool3(torch.roll(x3, (1, 3, 5), (-3, -2, -1))).sum((-3, -2, -1)), y, atol=1e-12)
    assert polyphase_pool3d(x3).shape == (1, 2, 4, 4, 4)


def test_polyphase_conv_shares_the_conv_parameters_and_keeps_names() -> None:
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=True)
    twin = polyphase_conv(conv)
    assert twin.weight is conv.weight and twin.bias is conv.bias
    assert list(twin.state_dict()) == ["weight", "bias"]
    assert twin.stride == (2, 2) and type(conv) is nn.Conv2d and conv.stride == (2, 2)
    direct = PolyphaseConv2d(3, 4, 3, stride=2, padding=1)
    direct.load_state_dict(conv.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    # Away from the selection, the dense conv is the conv with stride 1.
    dense = nn.functional.conv2d(x, conv.weight, conv.bias, 1, 1)
    assert torch.allclose(direct(x), polyphase_pool2d(dense))


def test_gradients_flow_through_the_selected_component() -> None:
    layer = PolyphaseConv2d(2, 3, 3, stride=2, padding=1, padding_mode="circular")
    x = torch.randn(2, 2, 8, 8, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_meta_device_and_the_linter_see_no_aliasing() -> None:
    with torch.device("meta"):
        model = CircularNet()
    fixed = antialias(model, method="polyphase", example_input=(1, 3, 32, 32))
    assert fixed(torch.empty(2, 3, 32, 32, device="meta")).shape == (2, 5)
    assert lint(fixed, (1, 3, 32, 32), select=CODES) == []


def test_polyphase_is_circular_only_in_circular_models() -> None:
    zero_padded = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2))
    assert not antialias(zero_padded, method="polyphase", example_input=(1, 3, 8, 8))[1].circular
    assert antialias(zero_padded, method="polyphase", padding_mode="circular", example_input=(1, 3, 8, 8))[1].circular
    assert antialias(CircularNet(), method="polyphase", example_input=(1, 3, 32, 32)).pool.circular


def test_the_lint_fix_names_polyphase_in_circular_models_only() -> None:
    hint = 'antialias(model, method="polyphase")'
    assert all(hint in f.fix for f in lint(CircularNet(), (1, 3, 32, 32), select=CODES))
    zero_padded = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2))
    (finding,) = lint(zero_padded, (1, 3, 8, 8), select=["EQ001"])
    assert hint not in finding.fix


class Residual(nn.Module):
    """A residual block whose strided 3x3 conv and strided 1x1 shortcut subsample the same input."""

    def __init__(self) -> None:
        super().__init__()
        circ = {"padding_mode": "circular"}
        self.stem = nn.Conv2d(3, 8, 3, padding=1, **circ)
        self.pool = nn.MaxPool2d(3, 2, 1)  # resnet's: circular in polyphase form
        self.conv1 = nn.Conv2d(8, 16, 3, stride=2, padding=1, **circ)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, **circ)
        self.shortcut = nn.Conv2d(8, 16, 1, stride=2)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.stem(x)))
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))) + self.shortcut(x))
        return self.head(x.mean((-2, -1)))


def test_branches_that_subsample_one_signal_share_their_component() -> None:
    torch.manual_seed(0)
    model = Residual().double().eval()
    fixed = antialias(model, method="polyphase", example_input=(1, 3, 16, 16)).eval()
    x, shifts = _images(2, 16), list(itertools.product(range(4), range(4)))
    assert _worst_relative_change(fixed, x, shifts) <= 1e-10
    # Each selecting alone, the conv and the shortcut pick components that no longer line up.
    from pytest_equivariance.layers.polyphase import SharedPhases

    for module in fixed.modules():
        if isinstance(module, PolyphasePool2d):
            module._phases = SharedPhases()  # never opened: every layer selects alone
    assert _worst_relative_change(fixed, x, shifts) > 1e-3


def test_sharing_lasts_one_forward_and_survives_a_copy() -> None:
    import copy

    fixed = antialias(Residual(), method="polyphase", example_input=(1, 3, 16, 16))
    phases = fixed.conv1.select._phases
    assert phases is fixed.shortcut.select._phases and not phases.active
    fixed(torch.randn(1, 3, 16, 16))
    assert not phases.active and phases.chosen == {}
    twin = copy.deepcopy(fixed)
    assert twin.conv1.select._phases is twin.shortcut.select._phases is not phases
    x = _images(2, 16).float()
    assert torch.equal(twin(x), fixed(x))


def test_torchvision_resnet18_with_circular_convs_is_exactly_invariant() -> None:
    torchvision = require("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and any(module.padding):
            module.padding_mode = "circular"
    model = model.double().eval()
    fixed = antialias(model, method="polyphase", example_input=(1, 3, 64, 64)).eval()
    fixed.load_state_dict(model.state_dict(), strict=True)
    assert lint(fixed, (1, 3, 64, 64), select=CODES) == []
    x, shifts = _images(1, 64), [(0, 1), (1, 0), (5, 3), (17, 31), (32, 0)]
    assert _worst_relative_change(fixed, x, shifts) <= 1e-10
    assert _worst_relative_change(model, x, shifts) > 1e-2


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: PolyphasePool2d(criterion="l3"), "criterion 'l3'"),
        (lambda: PolyphasePool2d(stride=0), "stride 0"),
        (lambda: polyphase_pool2d(torch.ones(4, 4)), "expects a \\(batch, channels, 2 spatial dims\\)"),
        (lambda: polyphase_conv(nn.Conv2d(2, 2, 3, padding="same")), "integer padding"),
        (lambda: polyphase_conv(nn.ConvTranspose2d(2, 2, 3, stride=2)), "expects an nn.Conv1d/2d/3d"),
        (lambda: antialias(nn.MaxPool2d(2), method="wavelet"), "Unknown antialias method 'wavelet'"),
        (lambda: antialias(nn.MaxPool2d(2), method="polyphase", criterion="median"), "criterion 'median'"),
    ],
)
def test_bad_arguments_are_usage_errors(call, match) -> None:
    with pytest.raises(EquivarianceUsageError, match=match):
        call()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_polyphase_runs_on_cuda_and_matches_the_cpu() -> None:
    torch.manual_seed(0)
    model = CircularNet().eval()
    fixed = antialias(model, method="polyphase", example_input=(1, 3, 32, 32)).eval()
    x = _images(4).float()
    cuda = fixed.cuda()(x.cuda()).cpu()
    assert torch.allclose(cuda, fixed.cpu()(x), atol=1e-4)
    shifts = [(1, 0), (0, 1), (5, 11)]
    assert _worst_relative_change(fixed.cuda(), x.cuda(), shifts) <= 1e-5
