"""``# equiv: ignore[...]`` comments on a finding's source line, read from the model's file."""

from __future__ import annotations

import importlib.util
import sys
import textwrap

import torch.nn.functional as F
from torch import nn

from pytest_equivariance.lint import lint, lint_model
from pytest_equivariance.lint.engine import suppressed_codes


class Suppressed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.kept = nn.MaxPool2d(3, stride=2, padding=1)
        self.quiet = nn.MaxPool2d(3, stride=2, padding=1)  # equiv: ignore[EQ001]
        self.other_code = nn.MaxPool2d(3, stride=2, padding=1)  # equiv: ignore[EQ002]
        self.everything = nn.Conv2d(4, 4, 2, stride=2)  # equiv: ignore
        self.several = nn.Conv2d(4, 4, 2, stride=2)  # equiv: ignore[EQ002, EQ011] -- known, see #12
        self.multiline = nn.MaxPool2d(
            kernel_size=3,
            stride=2,
        )  # equiv: ignore[EQ001]

    def forward(self, x):
        x = self.multiline(self.other_code(self.quiet(self.kept(x))))
        x = self.several(self.everything(x))
        x = F.max_pool2d(x, 2)  # equiv: ignore[EQ001]
        return x[..., ::2, ::2]  # equiv: ignore[EQ00]


def test_suppression_comments_remove_exactly_what_they_name():
    found = {(f.code, f.qualname) for f in lint(Suppressed(), (1, 4, 512, 512))}
    # F.max_pool2d(x, 2) keeps its EQ011 (even kernel): only EQ001 is suppressed on that line.
    assert found == {("EQ001", "kept"), ("EQ001", "other_code"), ("EQ011", "")}


def test_suppressions_can_be_turned_off():
    report = lint_model(Suppressed(), (1, 4, 512, 512), respect_suppressions=False)
    found = {(f.code, f.qualname or f.op) for f in report.findings}
    assert {("EQ001", "quiet"), ("EQ002", "everything"), ("EQ002", "several"), ("EQ011", "several"),
            ("EQ001", "multiline"), ("EQ001", "F.max_pool2d"), ("EQ005", "Tensor.__getitem__")} <= found


def test_comment_parsing(tmp_path):
    lines = textwrap.dedent(
        """\
        a = 1  # equiv: ignore
        b = 2  # equiv: ignore[EQ001]
        c = 3  #equiv:ignore[eq001,EQ005]
        d = 4  # noqa
        """
    )
    path = tmp_path / "comments.py"
    path.write_text(lines)
    path = str(path)
    assert suppressed_codes(path, 1) == {"ALL"}
    assert suppressed_codes(path, 2) == {"EQ001"}
    assert suppressed_codes(path, 3) == {"EQ001", "EQ005"}
    assert suppressed_codes(path, 4) is None
    assert suppressed_codes(None, 1) is None and suppressed_codes(path, 99) is None


def test_suppression_in_a_model_loaded_from_another_file(tmp_path):
    source = textwrap.dedent(
        """\
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.MaxPool2d(2)  # equiv: ignore[EQ001]
                self.b = nn.MaxPool2d(2)

            def forward(self, x):
                return self.b(self.a(x))
        """
    )
    path = tmp_path / "suppressed_model.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("suppressed_model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["suppressed_model"] = module
    try:
        spec.loader.exec_module(module)
        found = lint(module.Net(), (1, 1, 16, 16), select=["EQ001"])
    finally:
        del sys.modules["suppressed_model"]
    assert [(f.qualname, f.file, f.line) for f in found] == [("b", str(path), 8)]
