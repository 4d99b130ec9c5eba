"""equiv-lint --fix / --diff / --add-noqa on a model file written in several styles."""

from __future__ import annotations

import stat

import torch

from optional import require
from pytest_equivariance.cli import edit as cli_fix
from pytest_equivariance.fix import source as autofix

STYLES = '''
"""A classifier written the way real code is: aliases, names from torch.nn, a helper, comments."""
import torch
import torch.nn as tnn
import torch.nn.functional as F
from torch import nn
from torch.nn import MaxPool2d


def conv_bn(cin, cout, stride):
    # a helper that builds the strided convs: fixed once, here
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = tnn.Conv2d(3, 16, 3, 2, 1)  # positional stride and padding
        self.pool = MaxPool2d(
            3,  # kernel
            stride=2,  # stride
            padding=1,
        )
        self.stage1 = conv_bn(16, 32, 2)
        self.stage2 = conv_bn(32, 32, 1)
        self.down = torch.nn.Conv2d(in_channels=32, out_channels=64, kernel_size=3, stride=2, padding=1)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.stem(x)))
        x = self.stage2(self.stage1(x))
        x = F.max_pool2d(x, 2)  # a functional pool
        x = self.down(x)
        return self.head(x.mean((2, 3)))
'''

SHAPE = ("--input-shape", "1,3,64,64")


def _build(path, name="Net"):
    namespace: dict = {"__name__": "user_model"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    torch.manual_seed(0)
    return namespace[name]()


def _shift_change(model, seed=0) -> float:
    x = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    model.eval()
    with torch.no_grad():
        return float((model(torch.roll(x, 1, -1)) - model(x)).abs().max())


def test_fix_rewrites_every_style_and_keeps_the_rest_byte_identical(write, run):
    path = write("net.py", STYLES)
    before = path.read_text()
    original = _build(path)
    result = run("net.py", *SHAPE, "--fix")
    assert result.code == 0, result.out + result.err
    assert "Fixed 5 findings (1 remaining)." in result.out  # the functional pool's EQ011 (info) stays
    after = path.read_text()
    assert run("net.py", *SHAPE, "--select", "EQ001,EQ002,EQ003").code == 0
    # Exactly these lines changed, plus one import after the imports.
    old_lines, new_lines = before.splitlines(), after.splitlines()
    assert len(new_lines) == len(old_lines) + 1  # one import line more, none lost
    assert new_lines[:6] == old_lines[:6]
    assert new_lines[6] == "from pytest_equivariance import AntialiasedConv2d, MaxBlurPool2d, blur_pool2d"
    assert [(a, b) for a, b in zip(old_lines[6:], new_lines[7:]) if a != b] == [
        ("    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),",
         "    return nn.Sequential(AntialiasedConv2d(cin, cout, 3, stride=stride, padding=1, bias=False), "
         "nn.BatchNorm2d(cout),"),
        ("        self.stem = tnn.Conv2d(3, 16, 3, 2, 1)  # positional stride and padding",
         "        self.stem = AntialiasedConv2d(3, 16, 3, 2, 1)  # positional stride and padding"),
        ("        self.pool = MaxPool2d(", "        self.pool = MaxBlurPool2d("),  # its keywords stay keywords
        ("        self.down = torch.nn.Conv2d(in_channels=32, out_channels=64, kernel_size=3, stride=2, padding=1)",
         "        self.down = AntialiasedConv2d(in_channels=32, out_channels=64, kernel_size=3, stride=2, padding=1)"),
        ("        x = F.max_pool2d(x, 2)  # a functional pool",
         "        x = blur_pool2d(F.max_pool2d(x, 2, stride=1), stride=2)  # a functional pool"),
    ]
    fixed = _build(path)
    fixed.load_state_dict(original.state_dict(), strict=True)
    assert _shift_change(original) >= 3 * _shift_change(fixed)


POOLS = '''
import torch
import torch.nn.functional as F
from torch import nn


class Pools(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, kernel_size=3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.pool2 = nn.MaxPool2d(2, 2, 0, 1)
        self.avg = nn.AvgPool2d(2)
        self.avg2 = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool2(self.pool(torch.relu(self.stem(x))))
        x = F.max_pool2d(x, 2)
        x = F.max_pool2d(x, kernel_size=2, stride=2, padding=1)
        x = self.avg2(self.avg(x))
        return self.head(x.mean((2, 3)))
'''


def test_fix_leaves_no_pooling_finding_keeps_keywords_shapes_and_checkpoint(write, run):
    path = write("pools.py", POOLS)
    original = _build(path, "Pools")
    result = run("pools.py", "--input-shape", "1,3,129,129", "--fix")  # no --unsafe-fixes
    assert result.code == 0, result.out + result.err
    assert run("pools.py", "--input-shape", "1,3,129,129", "--select", "EQ001,EQ002,EQ003").code == 0
    text = path.read_text()
    for line in [
        "self.stem = AntialiasedConv2d(3, 16, kernel_size=3, stride=2, padding=1)",
        "self.pool = MaxBlurPool2d(kernel_size=3, stride=2, padding=1)",  # keywords stay keywords
        "self.pool2 = MaxBlurPool2d(2, 2, padding=0, dilation=1)",  # MaxBlurPool takes these by keyword
        "self.avg = BlurAvgPool2d(2)",
        "self.avg2 = BlurAvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)",
        "x = blur_pool2d(F.max_pool2d(x, 2, stride=1), stride=2)",
        "x = blur_pool2d(F.max_pool2d(x, kernel_size=2, stride=1, padding=1), stride=2)",
    ]:
        assert line in text, text
    fixed = _build(path, "Pools")
    fixed.load_state_dict(original.state_dict(), strict=True)
    for size in (129, 128, 97):
        x = torch.randn(1, 3, size, size)
        assert fixed(x).shape == original(x).shape


def test_fix_twice_is_a_no_op_and_diff_changes_nothing(write, run):
    path = write("net.py", STYLES)
    diff = run("net.py", *SHAPE, "--diff")
    assert diff.code == 1 and diff.out.startswith("--- a/net.py\n+++ b/net.py\n")
    assert "+from pytest_equivariance import AntialiasedConv2d, MaxBlurPool2d, blur_pool2d" in diff.out
    assert path.read_text() == STYLES.lstrip("\n")
    assert run("net.py", *SHAPE, "--fix").code == 0
    fixed = path.read_bytes()
    again = run("net.py", *SHAPE, "--fix")
    assert again.code == 0 and "Fixed 0 findings (1 remaining)." in again.out
    assert path.read_bytes() == fixed
    assert run("net.py", *SHAPE, "--diff").code == 0


def test_add_noqa_suppresses_every_finding_once(write, run):
    path = write("net.py", STYLES)
    result = run("net.py", *SHAPE, "--add-noqa")
    assert result.code == 0 and "Added 5 suppression comments." in result.out  # lines, not findings
    text = path.read_text()
    assert "self.stem = tnn.Conv2d(3, 16, 3, 2, 1)  # positional stride and padding  # equiv: ignore[EQ002]" in text
    assert "x = F.max_pool2d(x, 2)  # a functional pool  # equiv: ignore[EQ001, EQ011]" in text
    assert "self.pool = MaxPool2d(  # equiv: ignore[EQ001]" in text
    assert run("net.py", *SHAPE).code == 0
    again = run("net.py", *SHAPE, "--add-noqa")
    assert "Added 0 suppression comments." in again.out and path.read_text() == text


def test_add_noqa_merges_with_an_existing_suppression():
    text = "x = f(1)  # equiv: ignore[EQ011]\ny = '''a\nb'''\n"
    new, changed = autofix.add_noqa(text, {1: {"EQ001", "EQ011"}, 2: {"EQ001"}})
    assert changed == 1  # line 2 ends inside a string: no comment can go there
    assert new == "x = f(1)  # equiv: ignore[EQ001, EQ011]\ny = '''a\nb'''\n"
    assert autofix.add_noqa(new, {1: {"EQ001"}}) == (new, 0)


AVG = '''
import torch
from torch import nn


class Pooled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.avg = nn.AvgPool2d(2)

    def forward(self, x):
        return self.avg(self.conv(x))
'''


def test_average_pools_are_fixed_safely_and_keep_their_shape_and_checkpoint(write, run):
    path = write("avg.py", AVG)
    original = _build(path, "Pooled")
    result = run("avg.py", "--input-shape", "1,3,33,33", "--fix")
    assert result.code == 0 and "Fixed 1 finding (0 remaining)." in result.out, result.out + result.err
    assert "self.avg = BlurAvgPool2d(2)" in path.read_text()
    fixed = _build(path, "Pooled")
    fixed.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(1, 3, 33, 33)
    assert fixed(x).shape == original(x).shape == (1, 4, 16, 16)


def test_an_unsafe_fix_waits_for_unsafe_fixes(write, run, monkeypatch):
    monkeypatch.setitem(autofix.AUTOFIX, "EQ003", ("unsafe", "pretend it rounds differently"))
    path = write("avg.py", AVG)
    result = run("avg.py", *SHAPE, "--fix")
    assert result.code == 1 and path.read_text() == AVG.lstrip("\n")
    assert "not fixed: avg.py:9: EQ003 avg: an unsafe fix: pretend it rounds differently; pass --unsafe-fixes" \
           in result.out
    result = run("avg.py", *SHAPE, "--fix", "--unsafe-fixes")
    assert result.code == 0 and "self.avg = BlurAvgPool2d(2)" in path.read_text()


def test_a_fix_that_changes_an_output_shape_is_undone(write, run, monkeypatch):
    # Pretend the average pool's drop-in were a plain BlurPool: BlurPool2d(2) rounds 33 / 2 up.
    monkeypatch.setitem(autofix._KINDS, "avg_pool", ("AvgPool", "BlurPool", "blur_pool"))
    path = write("avg.py", AVG)
    result = run("avg.py", "--input-shape", "1,3,33,33", "--fix")
    assert result.code == 1
    assert "The fixes were undone, every file restored as it was: the output shape of avg.py::Pooled changed " \
           "from ((1, 4, 16, 16),) to ((1, 4, 17, 17),)." in result.err
    assert path.read_text() == AVG.lstrip("\n")


def test_any_failed_verification_restores_every_file(write, run, monkeypatch):
    helper = write("blocks.py", "from torch import nn\n\ndef down(c):\n    return nn.Conv2d(c, c, 3, stride=2)\n")
    model = write("model.py", "from torch import nn\nfrom blocks import down\n\nclass M(nn.Module):\n"
                              "    def __init__(self):\n        super().__init__()\n        self.a = down(3)\n"
                              "        self.p = nn.MaxPool2d(2)\n\n    def forward(self, x):\n"
                              "        return self.p(self.a(x))\n")
    before = helper.read_bytes(), model.read_bytes()
    monkeypatch.setattr(cli_fix, "_regression", lambda *a: "a reason")
    result = run("model.py", *SHAPE, "--fix")
    assert "every file restored as it was: a reason." in result.err
    assert (helper.read_bytes(), model.read_bytes()) == before


def test_a_read_only_file_is_reported_and_left_alone(write, run):
    # As root too: the mode bits decide, not os.access (which says yes to root).
    path = write("net.py", STYLES)
    path.chmod(stat.S_IRUSR | stat.S_IRGRP)
    try:
        result = run("net.py", *SHAPE, "--fix")
        assert result.code == 1
        assert "equiv-lint: error: net.py was not fixed: it is read-only (its mode forbids writing); make it writable" \
            in result.err
        assert path.read_text() == STYLES.lstrip("\n")
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_a_file_changed_between_lint_and_fix_is_not_written(write, run, monkeypatch):
    from pytest_equivariance.cli.run import Run

    path = write("net.py", STYLES)
    lint_target = Run.lint_target

    def lint_then_edit(self, text, root=None):
        reports = lint_target(self, text, root)
        path.write_text(path.read_text() + "# edited meanwhile\n")
        return reports

    monkeypatch.setattr(Run, "lint_target", lint_then_edit)
    result = run("net.py", *SHAPE, "--fix")
    assert "net.py was not fixed: it changed on disk since it was linted; run equiv-lint --fix again." in result.err
    assert path.read_text() == STYLES.lstrip("\n") + "# edited meanwhile\n"


def test_a_call_the_cst_cannot_map_is_reported_not_guessed(write, run):
    text = ("import torch\nfrom torch import nn\n\nclass Twins(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.Conv2d(8, 8, 3, stride=2))\n\n"
            "    def forward(self, x):\n        return self.body(x)\n")
    path = write("twins.py", text)
    result = run("twins.py", *SHAPE, "--fix")
    assert result.code == 1 and path.read_text() == text
    assert "not fixed: twins.py:7: EQ002 body.0: 2 calls of Conv2d at line 7: not guessed; edit it by hand" in result.out


def test_layers_in_installed_libraries_are_never_edited(run, project):
    require("torchvision")
    import torchvision

    source = open(torchvision.models.resnet.__file__, "rb").read()
    result = run("torchvision.models:resnet18", "--fix")
    assert result.code == 1
    assert "which is not your code; fix the model object with pytest_equivariance.antialias(model)" in result.out
    assert open(torchvision.models.resnet.__file__, "rb").read() == source


def test_fix_with_other_formats_is_a_usage_error(write, run):
    write("net.py", STYLES)
    result = run("net.py", "--fix", "--format", "json")
    assert result.code == 2 and "--fix, --diff and --add-noqa print text" in result.err
    assert run("net.py", "--fix", "--diff").code == 2


def test_fix_without_an_input_shape_reads_the_drop_ins_channels(write, run):
    # The re-lint infers the input shape again, now from an AntialiasedConv2d.
    write("net.py", STYLES)
    result = run("net.py", "--fix")
    assert result.code == 0 and "Fixed 5 findings (1 remaining)." in result.out, result.err


def test_a_file_that_is_not_utf8_is_reported_not_rewritten(project, run):
    text = ("# -*- coding: latin-1 -*-\n# caf\xe9\nimport torch\nfrom torch import nn\n\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(3, 8, 3, stride=2)\n\n    def forward(self, x):\n"
            "        return self.conv(x)\n")
    path = project / "latin.py"
    path.write_bytes(text.encode("latin-1"))
    result = run("latin.py", *SHAPE, "--fix")
    assert result.code == 1 and path.read_bytes() == text.encode("latin-1")
    assert "EQ002 conv: the file is not UTF-8, which the rewrite needs; edit it by hand" in result.out


EVEN_POOL = '''
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular")
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(x))
'''


def test_fix_says_what_became_of_the_other_findings_on_a_rewritten_line(write, run):
    write("net.py", EVEN_POOL)
    before = run("net.py", *SHAPE)
    assert "EQ001" in before.out and "EQ011" in before.out  # the strided pool, and its even kernel
    result = run("net.py", *SHAPE, "--fix")
    assert result.code == 0, result.out + result.err
    assert "no longer reported: net.py:8: EQ011 pool (its line was rewritten by the fix)" in result.out
    assert "Fixed 1 finding (0 remaining)." in result.out


def test_a_clean_fix_run_prints_nothing(write, run):
    write("net.py", EVEN_POOL.replace("nn.MaxPool2d(2)", "nn.Identity()"))
    result = run("net.py", *SHAPE, "--fix", "--allow-no-model")
    assert (result.code, result.out, result.err) == (0, "", "")
    assert "All clean" in run("net.py", *SHAPE, "--fix", "--verbose").out  # still there when asked for
