"""Tiny model files for the equiv-lint tests, each with a known set of findings."""

# A strided max pool: EQ001 (error). Everything else is exactly shift-equivariant.
ALIASING = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x):
        return self.pool(torch.relu(self.conv(x)))
"""

# Stride 1, circular padding, global pooling: nothing to flag under the default rules.
CLEAN = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.head(x.mean(dim=(-2, -1)))
"""

# A stride-1 even kernel: EQ011 (info) only.
INFO_ONLY = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 2)

    def forward(self, x):
        return self.conv(x)
"""

# A strided average pool: EQ003 (warning) only.
WARNING_ONLY = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(x))
"""
