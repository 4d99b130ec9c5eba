"""equiv-lint end to end, in-process: exit codes, bad inputs, targets, config, formats, pre-commit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from optional import require
from pytest_equivariance import __version__
from pytest_equivariance.cli import build_parser
from pytest_equivariance.lint.rules import RULES

from cli_models import ALIASING, CLEAN, INFO_ONLY, WARNING_ONLY

# -- exit codes -----------------------------------------------------------------------------------


def test_clean_model_exits_0(write, run):
    write("clean.py", CLEAN)
    result = run("clean.py")
    assert result.code == 0, result.out + result.err
    assert "clean.py::Net" in result.out and "no findings" in result.out
    assert result.out.splitlines()[-1] == "All clean: 1 model, no findings."
    assert result.err == ""


def test_aliasing_model_exits_1_with_location_and_fix(write, run):
    write("alias.py", ALIASING)
    result = run("alias.py")
    assert result.code == 1
    pool_line = ALIASING.lstrip("\n").splitlines().index("        self.pool = nn.MaxPool2d(3, stride=2, padding=1)") + 1
    assert f"alias.py:{pool_line}: EQ001 [error]" in result.out
    assert "fix:" in result.out
    assert "Found 1 finding (1 error) in 1 model." in result.out


def test_fail_level_decides_between_0_and_1(write, run):
    write("info.py", INFO_ONLY)
    write("warn.py", WARNING_ONLY)
    assert run("info.py").code == 0  # info is shown but does not fail by default
    assert "EQ011 [info]" in run("info.py").out
    assert run("info.py", "--fail-level", "info").code == 1
    assert run("warn.py").code == 1
    assert run("warn.py", "--fail-level", "error").code == 0


def test_exit_zero(write, run):
    write("alias.py", ALIASING)
    assert run("alias.py", "--exit-zero").code == 0


def test_select_and_ignore(write, run):
    write("alias.py", ALIASING)
    assert run("alias.py", "--ignore", "EQ001").code == 0
    assert run("alias.py", "--select", "EQ002,EQ003").code == 0
    assert run("alias.py", "--select", "EQ00").code == 1  # a prefix


def test_suppression_comment(write, run):
    write("alias.py", ALIASING.replace("padding=1)\n", "padding=1)  # equiv: ignore[EQ001]\n", 1))
    assert run("alias.py").code == 0


# -- bad input: one sentence, exit 2, no traceback unless --verbose, other targets still linted ----

BAD_TARGETS = {
    "missing": (None, "missing.py", "missing.py does not exist; check the path"),
    "syntax": ("import torch\n\ndef f(:\n    pass\n", "bad.py", "Syntax error in bad.py:3"),
    "import": (
        "import torch\nimport no_such_module_for_equiv_cli\n",
        "bad.py",
        "No module named 'no_such_module_for_equiv_cli' at bad.py:2; install the missing package",
    ),
    "no model": ("import torch\n\nWIDTH = 3\n", "bad.py", "No model found in bad.py"),
    "needs arguments": (
        "from torch import nn\n\nclass Block(nn.Module):\n    def __init__(self, cin, cout):\n"
        "        super().__init__()\n",
        "bad.py",
        "No model in bad.py builds without arguments (Block needs cin, cout)",
    ),
    "named needs arguments": (
        "from torch import nn\n\nclass Block(nn.Module):\n    def __init__(self, cin):\n"
        "        super().__init__()\n",
        "bad.py::Block",
        "the constructor Block() needs arguments (cin)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TARGETS))
def test_bad_target_is_one_sentence_and_the_rest_is_linted(write, run, case):
    text, target, expected = BAD_TARGETS[case]
    if text is not None:
        write("bad.py", text)
    write("alias.py", ALIASING)
    result = run(target, "alias.py")
    assert result.code == 2
    (line,) = result.err.splitlines()
    assert line.startswith("equiv-lint: error: ") and expected in line
    assert line.endswith(".") and "; " in line
    assert "Traceback" not in result.err
    assert "EQ001 [error]" in result.out  # the good target was still linted
    assert "1 target failed (errors above)" in result.out


def test_verbose_shows_the_traceback(write, run):
    write("bad.py", "import torch\nimport no_such_module_for_equiv_cli\n")
    result = run("bad.py", "--verbose")
    assert result.code == 2
    assert "Traceback (most recent call last)" in result.err
    assert "ModuleNotFoundError" in result.err
    assert result.err.splitlines()[-1].startswith("equiv-lint: error: Importing bad.py failed")


def test_input_shape_the_model_rejects(write, run):
    write("clean.py", CLEAN)  # takes 3 channels
    write("five.py", ALIASING.replace("nn.Conv2d(3, 4,", "nn.Conv2d(5, 4,"))  # takes 5
    result = run("clean.py::Net", "five.py", "--input-shape", "1,5,32,32")
    assert result.code == 2
    (line,) = result.err.splitlines()
    assert line.startswith("equiv-lint: error: clean.py::Net: ") and "conv" in line
    assert line.endswith(".") and "; " in line
    assert "Traceback" not in result.err
    assert "five.py::Net" in result.out and "EQ001 [error]" in result.out  # the other was linted


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--format", "xml", "m.py"], "invalid choice: 'xml'"),
        (["--select", "EQ999", "m.py"], "Bad --select: 'EQ999' matches no rule"),
        (["--ignore", "XYZ", "m.py"], "Bad --ignore: 'XYZ' matches no rule"),
        (["--input-shape", "1,three,8", "m.py"], "Malformed input shape '1,three,8'"),
        (["--fail-level", "fatal", "m.py"], "invalid choice: 'fatal'"),
        (["--no-such-flag"], "Unrecognized arguments: --no-such-flag"),
        ([], "No targets given"),
        (["--explain", "EQ999"], "Unknown rule code 'EQ999'"),
        (["--config", "nope.toml", "m.py"], "Config file nope.toml does not exist"),
    ],
)
def test_usage_errors_exit_2(project, run, argv, expected):
    result = run(*argv)
    assert result.code == 2
    (line,) = result.err.splitlines()
    assert line.startswith("equiv-lint: error: ") and expected in line
    assert result.out == ""


# -- targets --------------------------------------------------------------------------------------


def test_several_models_and_forms_in_one_call(write, run):
    write("models.py", ALIASING + "\n" + CLEAN.replace("class Net", "class Clean"))
    write("eq_cli_mod.py", ALIASING)
    result = run("models.py", "models.py::Clean", "eq_cli_mod:Net", "--format", "json")
    targets = [m["target"] for m in json.loads(result.out)["models"]]
    assert targets == ["models.py::Net", "models.py::Clean", "models.py::Clean", "eq_cli_mod:Net"]
    assert result.code == 1


def test_directory_target_lints_the_model_files_below_it(write, run):
    write("models/alias.py", ALIASING)
    write("models/sub/clean.py", CLEAN)
    write("models/sub/utils.py", "import torch\n\ndef ones():\n    return torch.ones(1)\n")
    write("models/.hidden/alias.py", ALIASING)
    write("models/notes.py", "raise SystemExit('imported!')\n")  # never imported: no torch in it
    result = run("models", "--format", "json")
    targets = [m["target"] for m in json.loads(result.out)["models"]]
    assert targets == ["models/alias.py::Net", "models/sub/clean.py::Net"]
    assert result.code == 1 and result.err == ""


def test_discovery_passes_over_classes_that_need_hidden_arguments(write, run):
    hidden = (
        "from torch import nn\n\n\nclass Wrapped(nn.Conv2d):\n"
        "    def __init__(self, *args, **kwargs):\n        super().__init__(*args, **kwargs)\n"
    )
    write("alias.py", ALIASING + "\n" + hidden)
    result = run("alias.py", "--format", "json", "--verbose")
    assert [m["target"] for m in json.loads(result.out)["models"]] == ["alias.py::Net"]
    assert "skipped alias.py::Wrapped (Conv2d.__init__() missing" in result.err
    assert result.code == 1
    named = run("alias.py::Wrapped")
    assert named.code == 2 and "Wrapped() needs arguments (TypeError: " in named.err
    write("only.py", hidden)
    alone = run("only.py")
    assert alone.code == 2 and "No model in only.py could be linted (only.py::Wrapped (" in alone.err


def test_discovery_skips_modules_without_an_input_to_infer(write, run):
    write("alias.py", ALIASING + "\nloss = nn.CrossEntropyLoss()\n")
    result = run("alias.py", "--verbose", "--format", "json")
    assert [m["target"] for m in json.loads(result.out)["models"]] == ["alias.py::Net"]
    assert "skipped alias.py::loss (no conv or linear layer" in result.err


# -- config ---------------------------------------------------------------------------------------


def test_config_is_found_upward_and_flags_override_it(write, run, project, monkeypatch):
    write("pyproject.toml", '[tool.equiv-lint]\ntargets = ["models/alias.py"]\nignore = ["EQ001"]\n')
    write("models/alias.py", ALIASING)
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")
    result = run()  # targets from the config, relative to its directory
    assert result.code == 0, result.err
    assert "models/alias.py::Net" in result.out or "alias.py::Net" in result.out
    assert run("--ignore", "EQ011").code == 1  # the flag replaces the config's ignore list


def test_config_fail_level_and_per_module_ignores(write, run):
    write("warn.py", WARNING_ONLY)
    write("pyproject.toml", '[tool.equiv-lint]\nfail-level = "error"\n')
    assert run("warn.py").code == 0
    assert run("warn.py", "--fail-level", "warning").code == 1
    write("pyproject.toml", '[tool.equiv-lint]\nper-module-ignores = { "po*" = ["EQ003"] }\n')
    assert run("warn.py").code == 0


def test_bad_config_is_a_usage_error(write, run):
    write("alias.py", ALIASING)
    path = write("pyproject.toml", '[tool.equiv-lint]\nfail_level = "error"\n')
    result = run("alias.py")
    assert result.code == 2
    assert result.err.strip() == (
        f"equiv-lint: error: Unknown key 'fail_level' in [tool.equiv-lint] in {path}; "
        f"did you mean 'fail-level'?"
    )


def test_explicit_config_file(write, run):
    write("alias.py", ALIASING)
    write("ci/equiv.toml", 'ignore = ["EQ001"]\n')
    assert run("alias.py", "--config", "ci/equiv.toml").code == 0


# -- pre-commit -----------------------------------------------------------------------------------


def test_files_without_torch_are_skipped_without_import_in_directories_and_pre_commit(write, run):
    write("pkg/notes.py", "raise SystemExit('imported!')\n")
    write("pkg/alias.py", ALIASING)
    result = run("pkg", "--verbose")
    assert result.code == 1
    assert "skipped pkg/notes.py (does not mention torch)" in result.err
    assert "imported!" not in result.err
    result = run("pkg/notes.py", "pkg/alias.py", "--allow-no-model", "--verbose")
    assert result.code == 1
    assert "skipped pkg/notes.py (does not mention torch)" in result.err and "imported!" not in result.err


def test_an_explicit_file_is_imported_even_without_torch(write, run):
    write("notes.py", "raise SystemExit('imported!')\n")
    result = run("notes.py")
    assert result.code == 2
    assert "Importing notes.py called sys.exit('imported!')" in result.err
    write("broken.py", "def f(:\n")
    result = run("broken.py")
    assert result.code == 2
    assert result.err.strip() == ("equiv-lint: error: Syntax error in broken.py:1: invalid syntax; fix the file "
                                  "and run equiv-lint again.")
    write("plain.py", "X = 1\n")
    result = run("plain.py")
    assert result.code == 2 and "No model found in plain.py" in result.err


def test_allow_no_model_skips_torch_files_without_models(write, run):
    write("utils.py", "import torch\n\ndef ones():\n    return torch.ones(1)\n")
    assert run("utils.py").code == 2
    result = run("utils.py", "--allow-no-model")
    assert result.code == 0 and result.err == ""


def test_exclude_from_config(write, run):
    write("pyproject.toml", '[tool.equiv-lint]\nexclude = ["legacy/*"]\n')
    write("legacy/alias.py", ALIASING)
    assert run("legacy/alias.py").code == 0


# -- formats through the CLI ----------------------------------------------------------------------


def test_json_format(write, run):
    write("alias.py", ALIASING)
    write("bad.py", "import torch\nimport no_such_module_for_equiv_cli\n")
    result = run("alias.py", "bad.py", "--format", "json")
    document = json.loads(result.out)
    assert document["version"] == 1
    good, bad = document["models"]
    assert good["target"] == "alias.py::Net" and good["trace"] == "fx" and good["coverage"] == 1.0
    (finding,) = good["findings"]
    assert finding["code"] == "EQ001" and finding["qualname"] == "pool"
    assert finding["file"].endswith("alias.py") and isinstance(finding["line"], int)
    assert bad["target"] == "bad.py" and bad["trace"] == "none" and bad["errors"]
    assert result.code == 2


def test_sarif_format(write, run):
    write("alias.py", ALIASING)
    result = run("alias.py", "--format", "sarif")
    log = json.loads(result.out)
    (run_,) = log["runs"]
    (sarif_result,) = run_["results"]
    location = sarif_result["locations"][0]["physicalLocation"]
    assert sarif_result["ruleId"] == "EQ001" and sarif_result["level"] == "error"
    assert location["artifactLocation"]["uri"] == "alias.py"
    assert location["region"]["startLine"] > 0
    assert len(run_["tool"]["driver"]["rules"]) == len(RULES)
    assert result.code == 1


def test_github_format(write, run):
    write("alias.py", ALIASING)
    result = run("alias.py", "--format", "github")
    (line,) = result.out.splitlines()
    assert line.startswith("::error file=alias.py,line=") and ",title=EQ001::" in line
    assert result.code == 1


def test_text_honours_no_color(write, run, monkeypatch):
    write("alias.py", ALIASING)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = run("alias.py")
    assert re.search(r"\x1b\[[0-9;]*3[0-7]m", result.out) is None  # no foreground colours
    assert "\x1b[1m" in result.out  # bold stays: NO_COLOR is about colour only
    assert "EQ001 [error]" in re.sub(r"\x1b\[[0-9;]*m", "", result.out)


# -- rule documentation ---------------------------------------------------------------------------


def test_list_rules(run):
    result = run("--list-rules")
    assert result.code == 0
    assert [line.split()[0] for line in result.out.splitlines()] == list(RULES)
    rows = json.loads(run("--list-rules", "--format", "json").out)
    assert [r["code"] for r in rows] == list(RULES)
    assert {r["code"]: r["enabled_by_default"] for r in rows}["EQ010"] is False


def test_explain(run):
    result = run("--explain", "eq001")
    assert result.code == 0
    assert result.out.startswith("# EQ001: strided-max-pool")
    assert RULES["EQ001"].why in result.out and "antialias(model)" in result.out
    assert "## Fix a whole model" not in run("--explain", "EQ004").out


def test_version(run):
    result = run("--version")
    assert result.code == 0 and result.out.strip() == f"equiv-lint {__version__}"


# -- real processes -------------------------------------------------------------------------------


def test_console_script_in_a_subprocess(write, project):
    write("alias.py", ALIASING)
    done = subprocess.run(
        [sys.executable, "-m", "pytest_equivariance.cli", "alias.py", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["models"][0]["findings"][0]["code"] == "EQ001"


def test_skipping_a_file_without_torch_does_not_import_torch(write, project):
    write("notes.py", "print('hello')\n")
    code = (
        "import sys\nfrom pytest_equivariance.cli import main\n"
        "rc = main(['notes.py', '--allow-no-model', '--format', 'json'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"version": 1, "models": []}


@pytest.mark.parametrize("argv", [["--explain", "EQ001"], ["--list-rules"], ["--version"]])
def test_rule_pages_and_the_version_do_not_import_torch(argv, project):
    code = (
        "import sys\nfrom pytest_equivariance.cli import main\n"
        f"rc = main({argv!r})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=project)
    assert done.returncode == 0, done.stderr


# -- real models (zoo tier) -----------------------------------------------------------------------


@pytest.mark.zoo
def test_torchvision_factories_as_module_targets(project, run):
    result = run("torchvision.models:resnet18", "torchvision.models:alexnet", "--format", "json")
    resnet, alexnet = json.loads(result.out)["models"]
    codes = [f["code"] for f in resnet["findings"]]
    assert (codes.count("EQ001"), codes.count("EQ002")) == (1, 7)  # the stem pool; 4 convs, 3 shortcuts
    assert resnet["trace"] == "fx" and resnet["errors"] == []
    assert alexnet["target"] == "torchvision.models:alexnet" and alexnet["findings"]
    assert result.code == 1


def test_pre_commit_hook_definitions():
    yaml = require("yaml")
    root = Path(__file__).resolve().parents[2]
    hooks = {h["id"]: h for h in yaml.safe_load((root / ".pre-commit-hooks.yaml").read_text())}
    # The hooks that run in the user's environment first, then the isolated ones (docs/cli.md#pre-commit).
    assert list(hooks) == ["equiv-lint-system", "equiv-lint-fix-system", "equiv-lint", "equiv-lint-fix"]
    for id_, h in hooks.items():
        assert h["language"] == ("system" if id_.endswith("-system") else "python")
        assert h["types"] == ["python"] and h["require_serial"]
        command, *flags = h["entry"].split()
        assert command == "equiv-lint"
        args = build_parser().parse_args([*flags, "models/net.py"])  # the flags exist
        assert args.allow_no_model and args.targets == ["models/net.py"]
        assert args.fix == id_.startswith("equiv-lint-fix")
    assert hooks["equiv-lint-system"]["entry"] == hooks["equiv-lint"]["entry"]
    assert hooks["equiv-lint-fix-system"]["entry"] == hooks["equiv-lint-fix"]["entry"]
