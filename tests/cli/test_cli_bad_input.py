"""equiv-lint never edits what it must not, and never passes a gate having checked nothing.

Every test here runs as whoever runs the suite; CI runs as root, where ``os.access`` says yes to a
0444 file and an atomic replace needs no write permission on the file at all. The mode bits decide.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x):
        return self.pool(self.conv(x))
'''
SHAPE = ("--input-shape", "1,3,32,32", "--no-cache")


@pytest.fixture
def read_only(write):
    """A model file with mode 0444, made writable again afterwards (so tmp_path can be removed)."""
    path = write("net.py", NET)
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    yield path
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)


@pytest.fixture
def read_only_directory(write, project):
    """A model file in a directory with mode 0555."""
    path = write("models/net.py", NET)
    path.parent.chmod(0o555)
    yield path
    path.parent.chmod(0o755)


@pytest.mark.parametrize("action", ["--fix", "--add-noqa"])
def test_a_read_only_file_is_left_byte_identical(read_only, run, action):
    before = read_only.read_bytes()
    result = run("net.py", *SHAPE, action)
    assert read_only.read_bytes() == before
    assert "net.py was not" in result.err and "read-only (its mode forbids writing)" in result.err
    assert result.code == (2 if action == "--add-noqa" else 1)  # --fix: the findings remain
    assert "Traceback" not in result.err + result.out


@pytest.mark.parametrize("action", ["--fix", "--add-noqa"])
def test_a_file_in_a_read_only_directory_is_left_byte_identical(read_only_directory, project, run, action):
    before = read_only_directory.read_bytes()
    listing = sorted(p.name for p in read_only_directory.parent.iterdir())
    result = run("models/net.py", *SHAPE, action)
    assert read_only_directory.read_bytes() == before
    assert sorted(p.name for p in read_only_directory.parent.iterdir()) == listing  # no temporary file
    assert "directory" in result.err and "is read-only" in result.err
    assert "Traceback" not in result.err + result.out and "PermissionError" not in result.err
    assert result.code == (2 if action == "--add-noqa" else 1)  # --fix: the findings remain


def test_a_fix_that_a_local_module_would_shadow_is_not_written(write, run, project):
    path = write("net.py", NET)
    write("pytest_equivariance.py", "x = 1\n")
    before = path.read_bytes()
    result = run("net.py", *SHAPE, "--fix")
    assert path.read_bytes() == before
    assert f"{project / 'pytest_equivariance.py'} would be imported instead there; rename that local module" \
        in result.err
    assert result.code == 1


def test_the_fix_is_written_when_nothing_shadows_the_package(write, run):
    path = write("net.py", NET)
    result = run("net.py", *SHAPE, "--fix")
    assert result.code == 0, result.err
    assert "from pytest_equivariance import MaxBlurPool2d" in path.read_text()


def test_a_directory_without_a_model_fails_the_gate(write, run):
    write("pkg/util.py", "x = 1\n")
    result = run("pkg/")
    assert result.code == 2
    assert result.err.strip() == (
        "equiv-lint: error: No model found in pkg/; point equiv-lint at the files that define models, or "
        "pass --allow-no-model to accept that (as the pre-commit hook does)."
    )
    assert run("pkg/", "--allow-no-model").code == 0


def test_writes_of_reports_and_baselines_refuse_read_only_files_too(tmp_path: Path):
    from pytest_equivariance.files import write_atomic

    path = tmp_path / "baseline.json"
    path.write_text("old")
    path.chmod(0o444)
    try:
        with pytest.raises(PermissionError, match="read-only"):
            write_atomic(path, "new")
        assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["baseline.json"]
    finally:
        path.chmod(0o644)
