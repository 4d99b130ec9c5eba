"""Targets to models: discovery in files, named objects, modules, and one-sentence load errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from torch import nn

from pytest_equivariance.errors import EquivarianceUsageError, ModelLoadError
from pytest_equivariance.lint.loader import (
    NoModelFoundError,
    display_path,
    load_target,
    mentions_torch,
    parse_target,
    python_files,
    required_arguments,
)

MODELS = '''
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class Net(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.block = Block(3, width)

    def forward(self, x):
        return self.block(x)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


head = Head()


def build_wide():
    return Net(width=8)


def helper():
    return 3


if __name__ == "__main__":
    raise SystemExit("scripts must not run on import")
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def targets_and_types(target, **kw):
    with load_target(target, **kw) as loaded:
        return [(s.target.split("::")[-1], type(s.build()).__name__) for s in loaded.sources], loaded.skipped


def test_file_target_yields_zero_argument_classes_and_instances(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "models.py", MODELS)
    found, skipped = targets_and_types("models.py")
    # Block needs arguments; Head is represented by its module-level instance; helper is no factory.
    assert found == [("Net", "Net"), ("head", "Head")]
    assert skipped == ["Block needs cin, cout"]


def test_private_names_are_building_blocks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "models.py", MODELS + "\n_cached = Head()\n\n\nclass _Base(nn.Module):\n    pass\n")
    found, _ = targets_and_types("models.py")
    assert found == [("Net", "Net"), ("head", "Head")]
    assert targets_and_types("models.py::_Base")[0] == [("_Base", "_Base")]  # named: linted


def test_factories_from_config_are_called(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "models.py", MODELS)
    found, _ = targets_and_types("models.py", factories=["build_*"])
    assert ("build_wide", "Net") in found
    with load_target("models.py", factories=["build_*"]) as loaded:
        wide = [s for s in loaded.sources if s.target.endswith("build_wide")][0].build()
        assert wide.block.conv.out_channels == 8


@pytest.mark.parametrize(("name", "kind"), [("Net", "Net"), ("head", "Head"), ("build_wide", "Net")])
def test_named_class_instance_or_factory(tmp_path, monkeypatch, name, kind):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "models.py", MODELS)
    found, _ = targets_and_types(f"models.py::{name}")
    assert found == [(name, kind)]


def test_target_names_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path, "pkgless/models.py", MODELS)
    monkeypatch.chdir(tmp_path)
    with load_target(str(tmp_path / "pkgless" / "models.py::Net")) as loaded:
        assert [s.target for s in loaded.sources] == ["pkgless/models.py::Net"]
        source = loaded.sources[0]
        expected = MODELS.splitlines().index("class Net(nn.Module):") + 1
        assert Path(source.file).name == "models.py" and source.line == expected


def test_sibling_imports_work_and_are_undone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "proj/layers_for_equiv_test.py", "from torch import nn\nWIDTH = 5\n")
    write(
        tmp_path,
        "proj/model.py",
        """
        from torch import nn
        from layers_for_equiv_test import WIDTH

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, WIDTH, 3)
        """,
    )
    path_before = list(sys.path)
    with load_target("proj/model.py") as loaded:
        assert loaded.sources[0].build().conv.out_channels == 5
        assert "layers_for_equiv_test" in sys.modules
    assert "layers_for_equiv_test" not in sys.modules
    assert sys.path == path_before
    assert not any(name.startswith("_equiv_lint_") for name in sys.modules)


def test_two_files_with_the_same_name_stay_distinct(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for width, folder in ((2, "a"), (3, "b")):
        write(
            tmp_path,
            f"{folder}/model.py",
            f"""
            from torch import nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, {width}, 3)
            """,
        )
    widths = []
    for folder in ("a", "b"):
        with load_target(f"{folder}/model.py") as loaded:
            widths.append(loaded.sources[0].build().conv.out_channels)
    assert widths == [2, 3]


def test_file_inside_a_package_supports_relative_imports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "eqpkg_for_test/__init__.py", "")
    write(tmp_path, "eqpkg_for_test/layers.py", "WIDTH = 7\n")
    write(
        tmp_path,
        "eqpkg_for_test/model.py",
        """
        from torch import nn
        from .layers import WIDTH

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, WIDTH, 3)
        """,
    )
    with load_target("eqpkg_for_test/model.py") as loaded:
        assert loaded.sources[0].build().conv.out_channels == 7
    assert "eqpkg_for_test.model" not in sys.modules


def test_module_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "eqmod_for_test.py", MODELS)
    with load_target("eqmod_for_test:build_wide") as loaded:
        assert [s.target for s in loaded.sources] == ["eqmod_for_test:build_wide"]
        assert isinstance(loaded.sources[0].build(), nn.Module)
    found, _ = targets_and_types("eqmod_for_test")  # a module without a name: discovery, as for files
    assert [name for name, _ in found] == ["eqmod_for_test:Net", "eqmod_for_test:head"]


def test_library_factory_target():
    with load_target("torch.nn:Identity") as loaded:
        assert isinstance(loaded.sources[0].build(), nn.Identity)


# -- errors: one sentence, cause and remedy -------------------------------------------------------


def load_error(target: str) -> str:
    with pytest.raises(ModelLoadError) as info:
        with load_target(target) as loaded:
            for source in loaded.sources:
                source.build()
    message = str(info.value)
    assert isinstance(info.value, EquivarianceUsageError)
    assert message.count("; ") >= 1 and message.endswith(".")  # cause; remedy.
    assert "\n" not in message
    return message


def test_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_error("nope/model.py").startswith("nope/model.py does not exist; check the path")


def test_directory_and_non_python_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    write(tmp_path, "notes.txt", "torch")
    assert "is a directory" in load_error("models/")  # the API takes files; the CLI expands directories
    assert "is not a Python file" in load_error("notes.txt")


def test_syntax_error_names_file_and_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "broken.py", "import torch\n\ndef f(:\n    pass\n")
    message = load_error("broken.py")
    assert message.startswith("Syntax error in broken.py:3:")
    assert "fix the file" in message


def test_import_error_shows_the_modules_own_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "needs.py", "import torch\nimport no_such_package_for_equiv_test\n")
    message = load_error("needs.py")
    assert "No module named 'no_such_package_for_equiv_test'" in message
    assert "needs.py:2" in message and "install the missing package" in message
    assert not any(name.startswith("_equiv_lint_needs") for name in sys.modules)


def test_exception_at_import_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "raises.py", "import torch\nraise ValueError('bad config')\n")
    message = load_error("raises.py")
    assert "raised ValueError: bad config at raises.py:2" in message


def test_sys_exit_at_import_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "script.py", "import sys, torch\nsys.exit(3)\n")
    assert "called sys.exit(3)" in load_error("script.py")


def test_no_model_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "utils.py", "import torch\n\ndef helper():\n    return torch.zeros(1)\n")
    with pytest.raises(NoModelFoundError, match=r"No model found in utils\.py"):
        with load_target("utils.py"):
            pass


def test_constructor_needs_arguments_names_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "models.py", MODELS)
    message = load_error("models.py::Block")
    assert "Block() needs arguments (cin, cout)" in message and "give them defaults" in message
    write(
        tmp_path,
        "only_blocks.py",
        "from torch import nn\nclass Block(nn.Module):\n    def __init__(self, cin, *, depth):\n"
        "        super().__init__()\n",
    )
    with pytest.raises(NoModelFoundError, match=r"builds without arguments \(Block needs cin, depth\)"):
        with load_target("only_blocks.py"):
            pass


def test_constructor_that_raises(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "fails.py",
        """
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                raise RuntimeError("out of cheese")
        """,
    )
    message = load_error("fails.py::Net")
    assert "building Net() raised RuntimeError: out of cheese at fails.py:7" in message


def test_unknown_name_lists_the_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "models.py", MODELS)
    message = load_error("models.py::Nte")
    assert "has no attribute 'Nte'" in message and "Block, Head, Net, head" in message


def test_name_that_is_not_a_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "models.py", MODELS + "\nWIDTH = 3\n")
    assert "is a int, not an nn.Module" in load_error("models.py::WIDTH")
    assert "returned a int, not an nn.Module" in load_error("models.py::helper")


def test_missing_module_and_missing_dependency_differ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_error("no_such_pkg_eq.models:build").startswith("No module named 'no_such_pkg_eq'")
    write(tmp_path, "eqdep_for_test.py", "import no_such_dependency_eq\n")
    message = load_error("eqdep_for_test:build")
    assert message.startswith("Importing eqdep_for_test failed with ModuleNotFoundError")


def test_parse_target_forms(tmp_path):
    assert parse_target("a/b.py::Net", root=tmp_path).path == tmp_path / "a" / "b.py"
    assert parse_target("a/b.py::Net", root=tmp_path).name == "Net"
    target = parse_target("pkg.models:build")
    assert (target.module, target.name, target.is_file) == ("pkg.models", "build", False)
    with pytest.raises(ModelLoadError, match="Cannot read target"):
        parse_target("what is this?")


def test_mentions_torch(tmp_path):
    assert mentions_torch(write(tmp_path, "a.py", "import torch\n"))
    assert not mentions_torch(write(tmp_path, "b.py", "import numpy\n"))


def test_python_files_skips_hidden_and_environment_folders(tmp_path):
    for name in ("a.py", "pkg/b.py", ".git/c.py", "venv/lib/d.py", "pkg/__pycache__/e.py", "f.txt"):
        write(tmp_path, name, "")
    assert [p.relative_to(tmp_path).as_posix() for p in python_files(tmp_path)] == ["a.py", "pkg/b.py"]


def test_required_arguments():
    def f(a, b=1, *args, c, d=2, **kw):
        pass

    assert required_arguments(f) == ["a", "c"]


def test_display_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "x" / "y.py") == "x/y.py"
    assert display_path("/elsewhere/z.py") == "/elsewhere/z.py"


def test_constructor_that_downloads_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        "pretrained.py",
        """
        import urllib.error
        from torch import nn

        def build():
            raise urllib.error.URLError("Name or service not known")
        """,
    )
    message = load_error("pretrained.py::build")
    assert "raised URLError" in message and "weights=None" in message
