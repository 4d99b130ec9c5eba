"""Default input shapes read what the model's layers say: each model here lints without --input-shape."""

from __future__ import annotations

import json

import pytest

FLATTEN_HEAD = '''
import torch
from torch import nn


class FlattenHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.conv(x), 1))
'''

STRIDED_FLATTEN_HEAD = '''
import torch
from torch import nn


class StridedFlattenHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.down = nn.Conv2d(8, 16, 3, stride=2)  # no padding: 2k + 1 pixels in, k out
        self.head = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        return self.head(self.down(self.pool(self.stem(x))).flatten(1))
'''

TOKEN_GRID = '''
import torch
from torch import nn


class TokenGrid(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, stride=8)
        self.pos = nn.Parameter(torch.zeros(1, 8 * 8, dim))
        self.mix = nn.Linear(dim, dim)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        return self.mix(tokens).mean(1)
'''

MAP_GRID = '''
import torch
from torch import nn


class MapGrid(nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, stride=8)
        self.pos = nn.Parameter(torch.zeros(1, dim, 8, 8))
        self.out = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        return self.out(self.patch(x) + self.pos)
'''

FUNCTIONAL = '''
import torch
import torch.nn.functional as F
from torch import nn


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 3, 3, 3))
        self.bias = nn.Parameter(torch.zeros(8))

    def forward(self, x):
        return F.max_pool2d(F.relu(F.conv2d(x, self.weight, self.bias, padding=1)), 2)
'''


@pytest.mark.parametrize(
    ("source", "shape"),
    [
        (FLATTEN_HEAD, [1, 3, 32, 32]),
        (STRIDED_FLATTEN_HEAD, [1, 3, 30, 30]),  # 30 -> pool 15 -> conv(3, stride 2) 7
        (TOKEN_GRID, [1, 3, 64, 64]),
        (MAP_GRID, [1, 3, 64, 64]),
        (FUNCTIONAL, [1, 3, 224, 224]),
    ],
    ids=["linear-after-flatten", "linear-after-strides", "token-grid", "map-grid", "functional-conv"],
)
def test_a_model_lints_at_the_shape_its_layers_say(write, run, source, shape):
    write("model.py", source)
    result = run("model.py", "--format", "json", "--select", "EQ0")
    (report,) = json.loads(result.out)["models"]
    assert report["errors"] == [] and result.code in (0, 1), result.err
    assert report["input_shape"] == shape
    assert report["trace"] == "fx" and report["coverage"] == 1.0


def test_layers_that_fix_no_size_keep_the_default():
    from torch import nn

    from pytest_equivariance.inputs import infer_input_shape

    pooled = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(8 * 7 * 7, 10))
    per_token = nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), nn.Flatten(2), nn.Linear(16, 16))  # ratio 1
    for model in (pooled, per_token):
        assert infer_input_shape(model) == (1, 3, 224, 224)
    # A size the layers fix holds at check time too, where the default is smaller.
    head = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 32 * 32, 10))
    assert infer_input_shape(head, spatial={2: (64, 64)}, batch=2) == (2, 3, 32, 32)
