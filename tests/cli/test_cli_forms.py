"""equiv-lint on factories that return a model as it ships: compiled or exported."""

MODELS = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(x))


def compiled():
    return torch.compile(Net(), backend="eager")


def exported():
    return torch.export.export(Net().eval(), (torch.randn(1, 3, 32, 32),))
'''


def test_a_compiled_factory_lints_through_its_original_module(write, run):
    write("models.py", MODELS)
    result = run("models.py::compiled", "--input-shape", "1,3,32,32")
    assert result.code == 1, result.out + result.err
    assert "EQ001" in result.out and "pool" in result.out


def test_an_exported_factory_lints_its_aten_graph_with_the_calling_line(write, run):
    write("models.py", MODELS)
    result = run("models.py::exported")
    assert result.code == 1, result.out + result.err
    assert "EQ001" in result.out and "models.py:12" in result.out  # line 12: return self.pool(self.conv(x))
