"""The CI examples (examples/ci/) and docs/ci.md: valid YAML, and every option they use exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from optional import require
from pytest_equivariance.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "equivariance.yml"
PRE_COMMIT = ROOT / "examples" / "ci" / ".pre-commit-config.yaml"
DOC = ROOT / "docs" / "ci.md"
OPTION = re.compile(r"--equiv-[a-z-]+")


@pytest.fixture(scope="module")
def yaml():
    return require("yaml")


@pytest.fixture
def pytest_options(pytester: pytest.Pytester, quiet_plugins) -> set[str]:
    """The ``--equiv-*`` options this plugin adds to pytest, read off ``pytest --help``."""
    help_text = pytester.runpytest(*quiet_plugins, "--help").stdout.str()
    return set(OPTION.findall(help_text))


def _pytest_commands(workflow: dict) -> list[list[str]]:
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines() or [""]:
                words = shlex.split(line)
                if words[:3] == ["python", "-m", "pytest"]:
                    commands.append(words[3:])
    return commands


def test_the_docs_show_the_example_files_as_they_are():
    doc = DOC.read_text()
    for path in (WORKFLOW, PRE_COMMIT):
        assert path.read_text() in doc, f"docs/ci.md no longer shows {path.name} as it is"


def test_workflow_is_valid_yaml_with_a_lint_and_a_checks_job(yaml):
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert set(workflow["jobs"]) == {"lint", "checks"}
    assert any(step.get("uses", "").startswith("pre-commit/action") for step in workflow["jobs"]["lint"]["steps"])
    uploads = [s for s in workflow["jobs"]["checks"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()"  # reports are uploaded when the gate fails too


def test_workflow_pytest_command_parses_with_this_plugin(yaml, pytester, quiet_plugins):
    (command,) = _pytest_commands(yaml.safe_load(WORKFLOW.read_text()))
    for option in ("--equiv-baseline", "--equiv-json", "--equiv-html", "--junitxml"):
        assert option in command
    config = pytester.parseconfig(*quiet_plugins, *command)  # unknown options raise a usage error
    assert config.option.equiv_baseline == "tests/equiv-baseline.json"
    assert config.option.equiv_json == "reports/equivariance.json"
    assert not config.option.equiv_baseline_update  # CI compares, it never writes the baseline


def test_pre_commit_config_uses_a_published_hook_with_valid_arguments(yaml):
    config = yaml.safe_load(PRE_COMMIT.read_text())
    published = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    hooks = [(repo["repo"], hook) for repo in config["repos"] for hook in repo["hooks"]]
    assert [repo for repo, _ in hooks][0] == "local"  # the docs lead with the hook of the user's environment
    for repo, hook in hooks:
        assert hook["id"] in published
        if repo == "local":  # a local hook is the published one, spelled out
            for key in ("entry", "language", "types", "require_serial"):
                assert hook[key] == published[hook["id"]][key]
        build_parser().parse_args([*hook.get("args", []), "models/net.py"])  # exits on a bad flag


def test_every_equiv_option_in_the_docs_and_examples_exists(pytest_options):
    assert {"--equiv-baseline", "--equiv-baseline-update", "--equiv-json", "--equiv-device"} <= pytest_options
    used = set()
    for path in (DOC, WORKFLOW, PRE_COMMIT):
        used |= set(OPTION.findall(path.read_text()))
    assert used - pytest_options == set()
