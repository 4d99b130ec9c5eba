"""The published pre-commit hooks, run by the real ``pre-commit`` in a scratch git repository.

The hooks repository is a fresh git repository holding only this project's ``.pre-commit-hooks.yaml``
(a ``language: system`` hook needs nothing else from it), named by path and pinned to its commit, as a
user's configuration names this project's repository and a release tag. ``equiv-lint`` on ``PATH`` is
this test's interpreter running this checkout's code, as the console script of the user's environment
would be.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from optional import missing, require

yaml = require("yaml")

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / ".pre-commit-hooks.yaml"
PRE_COMMIT = shutil.which("pre-commit")
GIT = shutil.which("git")
if PRE_COMMIT is None:
    missing("pre-commit")
if GIT is None:
    missing("git")

BLOCKS = """
import torch.nn as nn


def conv_block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="circular"), nn.ReLU())
"""

NET = """
import torch.nn as nn
from blocks import conv_block


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = conv_block(3, 8)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.block(x))
"""


def _git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run([GIT, "-c", "commit.gpgsign=false", *args], cwd=cwd, env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``equiv-lint`` is this checkout's, with pre-commit's cache under tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "equiv-lint"
    shim.write_text(f"#!{sys.executable}\nimport sys\nfrom pytest_equivariance.cli.equiv_lint import main\n"
                    "sys.exit(main())\n")
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT", "EQUIV_"))}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        GIT_AUTHOR_NAME="a", GIT_AUTHOR_EMAIL="a@example.com",
        GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@example.com",
        GIT_CONFIG_NOSYSTEM="1", NO_COLOR="1",
    )
    return env


@pytest.fixture
def hooks_repo(tmp_path: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A git repository publishing this project's hook manifest; its path and commit."""
    repo = tmp_path / "hooks"
    repo.mkdir()
    shutil.copy(MANIFEST, repo / ".pre-commit-hooks.yaml")
    _git(repo, "init", "-q", env=env)
    _git(repo, "add", ".", env=env)
    _git(repo, "commit", "-qm", "hooks", env=env)
    return repo, _git(repo, "rev-parse", "HEAD", env=env)


def _project(tmp_path: Path, env: dict[str, str], config: dict) -> Path:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "blocks.py").write_text(textwrap.dedent(BLOCKS).lstrip())
    (project / "models" / "net.py").write_text(textwrap.dedent(NET).lstrip())
    (project / "README.md").write_text("not Python\n")
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    _git(project, "init", "-q", env=env)
    _git(project, "add", ".", env=env)
    _git(project, "commit", "-qm", "models", env=env)
    return project


def _pre_commit(project: Path, env: dict[str, str], *hook_ids: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRE_COMMIT, "run", "--all-files", "--color", "never", *hook_ids], cwd=project,
                          env=env, capture_output=True, text=True, timeout=300)


def test_system_hooks_lint_and_fix_a_model_that_imports_a_sibling_module(tmp_path, env, hooks_repo):
    repo, commit = hooks_repo
    config = {"repos": [{"repo": str(repo), "rev": commit,
                         "hooks": [{"id": "equiv-lint-system"}, {"id": "equiv-lint-fix-system"}]}]}
    project = _project(tmp_path, env, config)
    pool_line = NET.lstrip().splitlines().index("        self.pool = nn.MaxPool2d(2)") + 1

    lint = _pre_commit(project, env, "equiv-lint-system")
    assert lint.returncode == 1, lint.stdout + lint.stderr
    assert re.search(rf"models/net\.py:{pool_line}\b.*EQ001", lint.stdout), lint.stdout
    assert "models/blocks.py:" not in lint.stdout  # the sibling defines no model; nothing in it aliases
    assert "Traceback" not in lint.stdout + lint.stderr

    fix = _pre_commit(project, env, "equiv-lint-fix-system")
    assert fix.returncode == 1, fix.stdout + fix.stderr  # the hook rewrote a file: the commit stops
    assert "files were modified by this hook" in fix.stdout
    assert "MaxBlurPool2d" in (project / "models" / "net.py").read_text()

    again = _pre_commit(project, env, "equiv-lint-system")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "EQ001" not in again.stdout


def test_local_hook_as_the_docs_show_it(tmp_path, env):
    """The ``repo: local`` block of docs/cli.md, pasted as it is, runs this project's linter."""
    doc = (ROOT / "docs" / "cli.md").read_text()
    section = doc[doc.index("## pre-commit\n"):doc.index("## The cache\n")]
    config = yaml.safe_load(re.search(r"```yaml\n(repos:.*?)```", section, re.S).group(1))
    assert config["repos"][0]["repo"] == "local"
    project = _project(tmp_path, env, config)
    result = _pre_commit(project, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"models/net\.py:\d+.*EQ001", result.stdout), result.stdout


def test_isolated_hooks_are_the_system_hooks_in_an_environment_of_their_own(tmp_path, env):
    """The ``language: python`` hooks: valid for pre-commit, the same commands as the system hooks.

    Not run here: on first use pre-commit installs this package and torch into an environment of its
    own, a download of several GB that a test must not make (and cannot, offline). What is checked is
    what docs/cli.md says of them: their ids, their language and that they run the same command.
    """
    check = subprocess.run([PRE_COMMIT, "validate-manifest", str(MANIFEST)], env=env, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    hooks = {hook["id"]: hook for hook in yaml.safe_load(MANIFEST.read_text())}
    doc = (ROOT / "docs" / "cli.md").read_text()
    assert "The published `equiv-lint` and `equiv-lint-fix` hooks (`language: python`)" in doc
    assert "`equiv-lint-system`" in doc and "`equiv-lint-fix-system`" in doc
    for isolated in ("equiv-lint", "equiv-lint-fix"):
        system = hooks[f"{isolated}-system"]
        assert (hooks[isolated]["language"], system["language"]) == ("python", "system")
        assert hooks[isolated]["entry"] == system["entry"]
