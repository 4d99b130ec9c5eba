"""ruff's habits: -q, --statistics, --output-format; one finding per site with its call count; meta builds."""

from __future__ import annotations

import json

from cli_models import ALIASING

REUSED = """
import torch
import torch.nn.functional as F
from torch import nn


class Reused(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x):
        for _ in range(3):
            x = self.pool(self.conv(x))
        for _ in range(2):
            x = F.avg_pool2d(x, 3, stride=2, padding=1)
        return F.max_pool2d(x, 3, stride=2, padding=1)
"""

NEEDS_VALUES = """
import torch
from torch import nn


class NeedsValues(nn.Module):
    # Reads a large weight while it is built: equiv-lint must build it with real weights.
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(64, 128, 3, stride=2)
        self.gain = float(self.conv.weight.detach().abs().max())

    def forward(self, x):
        return self.conv(x) * self.gain
"""


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_reused_layer_and_a_looped_call_are_one_finding_each_with_their_calls(write, run):
    write("reused.py", REUSED)
    result = run("reused.py", "--input-shape", "1,3,128,128", "--format", "json")
    findings = json.loads(result.out)["models"][0]["findings"]
    by_code = {(f["code"], f["op"]): f for f in findings if f["code"] != "EQ011"}
    assert {k: f["calls"] for k, f in by_code.items()} == {
        ("EQ001", "nn.MaxPool2d"): 3, ("EQ003", "F.avg_pool2d"): 2, ("EQ001", "F.max_pool2d"): 1}
    text = run("reused.py", "--input-shape", "1,3,128,128").out
    assert "(called 3 times)" in text and "(called 2 times)" in text
    assert text.count("called") == 2  # a site run once says nothing


def test_quiet_prints_the_findings_alone(write, run):
    write("alias.py", ALIASING)
    full, quiet = run("alias.py"), run("alias.py", "-q")
    assert quiet.code == full.code == 1
    assert _lines(quiet.out) == [line for line in _lines(full.out) if line.startswith(("  alias.py:", "    fix:"))]
    assert "Found" not in quiet.out and "alias.py::" not in quiet.out
    assert run("alias.py", "--quiet").out == quiet.out


def test_statistics_count_findings_per_code(write, run):
    write("reused.py", REUSED)
    write("alias.py", ALIASING)
    result = run("reused.py", "alias.py", "--input-shape", "1,3,128,128", "--statistics")
    assert result.code == 1
    rows = [line.split() for line in _lines(result.out)]
    assert rows == [["3", "EQ001", "strided-max-pool"], ["1", "EQ003", "strided-avg-pool"]]  # 2 + 1 pools
    data = json.loads(run("reused.py", "alias.py", "--input-shape", "1,3,128,128", "--statistics",
                          "--output-format", "json").out)
    assert data == [{"code": "EQ001", "name": "strided-max-pool", "count": 3},
                    {"code": "EQ003", "name": "strided-avg-pool", "count": 1}]
    assert run("alias.py", "--statistics", "--exit-zero").code == 0


def test_output_format_is_format(write, run):
    write("alias.py", ALIASING)
    assert run("alias.py", "--output-format", "json").out == run("alias.py", "--format", "json").out
    assert run("alias.py", "--output-format", "yaml").code == 2


def test_a_model_that_cannot_be_built_on_meta_falls_back_and_says_so(write, run):
    write("values.py", NEEDS_VALUES)
    quiet = run("values.py", "--input-shape", "1,64,32,32", "--format", "json")
    assert quiet.code == 1
    report = json.loads(quiet.out)["models"][0]
    assert [f["code"] for f in report["findings"]] == ["EQ002"]
    assert report["notes"][0].startswith("built with initialised weights: building it with empty weights raised")
    verbose = run("values.py", "--input-shape", "1,64,32,32", "--verbose")
    assert "note: built with initialised weights" in verbose.out
    assert "note: built with initialised weights" not in run("values.py", "--input-shape", "1,64,32,32").out
