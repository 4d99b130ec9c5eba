"""The lint cache: unchanged targets are answered without torch; any change they read is a re-lint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_equivariance.lint.cache import CACHE_DIR

# The constructor counts its builds in a file: a re-lint builds the model again, a cache hit does not.
MODEL = '''
from pathlib import Path

import torch
from torch import nn

from blocks import down


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        with open(Path(__file__).with_name("builds.txt"), "a") as fh:
            fh.write("built\\n")
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.down = down(8)

    def forward(self, x):
        return self.down(self.pool(self.conv(x)))
'''

BLOCKS = '''
from torch import nn


def down(channels):
    return nn.Conv2d(channels, channels, 3, stride=2, padding=1)
'''

SHAPE = ("--input-shape", "1,3,32,32")


@pytest.fixture
def model(write):
    write("blocks.py", BLOCKS)
    return write("net.py", MODEL)


def builds(project: Path) -> int:
    path = project / "builds.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def entries(project: Path, directory: str = CACHE_DIR) -> list[Path]:
    return sorted((project / directory).glob("*.json"))


def test_a_second_run_is_answered_from_the_cache_with_the_same_json(project, model, run):
    first = run("net.py", *SHAPE, "--format", "json")
    assert first.code == 1 and builds(project) == 1
    assert len(entries(project)) == 1
    assert (project / CACHE_DIR / ".gitignore").read_text().endswith("*\n")
    second = run("net.py", *SHAPE, "--format", "json")
    assert (second.code, second.out, second.err) == (first.code, first.out, first.err)
    assert builds(project) == 1
    # Text output, with locations and fixes, is the same too.
    assert run("net.py", *SHAPE, "--no-cache").out == run("net.py", *SHAPE).out


def test_a_hit_does_not_import_torch(project, model):
    script = ("import sys\nfrom pytest_equivariance.cli import main\n"
              "code = main(['net.py', '--input-shape', '1,3,32,32', '--format', 'json'])\n"
              "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules}), file=sys.stderr)\n")
    script = "import json\n" + script
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def lint() -> tuple[str, dict]:
        done = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True,
                              env=env, timeout=300)
        return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])

    out1, status1 = lint()
    out2, status2 = lint()
    assert status1 == {"code": 1, "torch": True}
    assert status2 == {"code": 1, "torch": False}
    assert out1 == out2 and json.loads(out2)["models"][0]["findings"]


@pytest.mark.parametrize("change", ["model file", "imported module", "config", "rule selection", "input shape"])
def test_each_change_forces_a_re_lint(project, model, write, run, change):
    write("pyproject.toml", "[tool.equiv-lint]\nselect = [\"EQ00\"]\n")
    args = ["net.py", *SHAPE]
    before = run(*args, "--format", "json")
    assert run(*args, "--format", "json").out == before.out and builds(project) == 1
    if change == "model file":
        model.write_text(model.read_text().replace("nn.MaxPool2d(2)", "nn.MaxPool2d(2, stride=1)"))
    elif change == "imported module":
        (project / "blocks.py").write_text(BLOCKS.replace("stride=2", "stride=1"))
    elif change == "config":
        write("pyproject.toml", "[tool.equiv-lint]\nselect = [\"EQ001\"]\n")
    elif change == "rule selection":
        args += ["--select", "EQ002"]
    else:
        args = ["net.py", "--input-shape", "1,3,64,64"]
    after = run(*args, "--format", "json")
    assert builds(project) == 2
    assert after.out != before.out


def test_a_suppression_comment_takes_effect_at_once(project, model, run):
    assert "EQ001" in run("net.py", *SHAPE).out
    model.write_text(model.read_text().replace("nn.MaxPool2d(2)", "nn.MaxPool2d(2)  # equiv: ignore[EQ001]"))
    result = run("net.py", *SHAPE)
    assert "EQ001" not in result.out and builds(project) == 2


def test_a_truncated_entry_is_replaced_silently(project, model, run):
    first = run("net.py", *SHAPE, "--format", "json")
    (entry,) = entries(project)
    entry.write_text(entry.read_text()[:100])
    again = run("net.py", *SHAPE, "--format", "json")
    assert (again.code, again.out, again.err) == (first.code, first.out, first.err)
    assert builds(project) == 2
    json.loads(entry.read_text())  # whole again
    run("net.py", *SHAPE, "--format", "json")
    assert builds(project) == 2


def test_no_cache_reads_and_writes_nothing(project, model, run):
    run("net.py", *SHAPE, "--no-cache")
    run("net.py", *SHAPE, "--no-cache")
    assert builds(project) == 2 and not (project / CACHE_DIR).exists()


def test_the_cache_directory_comes_from_the_flag_or_the_config(project, model, write, run):
    run("net.py", *SHAPE, "--cache-dir", "elsewhere")
    assert len(entries(project, "elsewhere")) == 1 and not (project / CACHE_DIR).exists()
    write("pyproject.toml", "[tool.equiv-lint]\ncache-dir = \"build/lint-cache\"\n")
    run("net.py", *SHAPE)
    assert len(entries(project, "build/lint-cache")) == 1
    write("pyproject.toml", "[tool.equiv-lint]\ncache-dir = 3\n")
    result = run("net.py", *SHAPE)
    assert result.code == 2 and "Bad value for 'cache-dir'" in result.err


def test_a_failed_target_is_not_remembered(project, write, run):
    write("broken.py", "import torch\nraise RuntimeError('boom')\n")
    assert run("broken.py").code == 2
    assert entries(project) == []


TWO_MODELS = '''
from pathlib import Path

from torch import nn


def built(name):
    with open(Path(__file__).with_name("builds.txt"), "a") as fh:
        fh.write(name + "\\n")


class Good(nn.Module):
    def __init__(self):
        super().__init__()
        built("Good")
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(x))


class Bad(nn.Module):
    def __init__(self):
        super().__init__()
        built("Bad")
        raise RuntimeError("no weights here")
'''


def test_a_model_that_lints_is_remembered_beside_one_that_fails_to_build(project, write, run):
    write("two.py", TWO_MODELS)
    first = run("two.py", *SHAPE, "--format", "json")
    good, bad = json.loads(first.out)["models"]
    assert (good["target"], bad["target"]) == ("two.py::Good", "two.py::Bad") and good["findings"] and bad["errors"]
    assert first.code == 2 and len(entries(project)) == 1
    builds_before = (project / "builds.txt").read_text().splitlines()

    second = run("two.py", *SHAPE, "--format", "json", "--verbose")
    assert second.out == first.out and second.code == 2
    assert "two.py::Good: answered from the cache" in second.err
    builds_after = (project / "builds.txt").read_text().splitlines()[len(builds_before):]
    assert "Good" not in builds_after and "Bad" in builds_after  # only the failing model is built again

    # Once the failing model builds, the whole file is answered from the cache, without importing it.
    fixed = 'self.conv = nn.Conv2d(3, 8, 3)\n\n    def forward(self, x):\n        return self.conv(x)'
    write("two.py", TWO_MODELS.replace('raise RuntimeError("no weights here")', fixed))
    assert run("two.py", *SHAPE).code == 1
    count = builds(project)
    third = run("two.py", *SHAPE, "--verbose")
    assert "two.py: answered from the cache" in third.err and builds(project) == count


def test_an_unusable_cache_directory_costs_only_the_cache(project, model, run):
    (project / CACHE_DIR).write_text("a file where the directory should be\n")  # unwritable, even as root
    for _ in range(2):
        result = run("net.py", *SHAPE)
        assert result.code == 1 and result.err == "" and "EQ001" in result.out
    assert builds(project) == 2


def test_fix_lints_afresh_and_a_fixed_file_is_a_miss(project, model, run):
    run("net.py", *SHAPE)
    assert run("net.py", *SHAPE, "--fix").code == 0
    assert builds(project) >= 3  # --fix builds the model to lint it, and again to verify the edit
    clean = run("net.py", *SHAPE, "--select", "EQ001,EQ002")
    assert clean.code == 0
