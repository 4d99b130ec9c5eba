"""[tool.equiv-lint] settings: discovery, validation, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_equivariance.errors import ConfigError, EquivarianceUsageError
from pytest_equivariance.lint.config import (
    LintConfig,
    find_config,
    is_excluded,
    load_config,
    parse_codes,
    parse_config,
)
from pytest_equivariance.lint.findings import Severity

CODES = [f"EQ{i:03d}" for i in range(1, 12)]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_key_is_read_and_converted(tmp_path):
    path = write(
        tmp_path / "pyproject.toml",
        """
[tool.equiv-lint]
select = ["EQ00"]
ignore = ["eq003"]
per-module-ignores = { "head.*" = ["EQ008"] }
input-shape = [1, 3, 64, 64]
fail-level = "error"
targets = ["models/net.py"]
factories = ["build_*"]
exclude = ["tests/*"]
""",
    )
    config = load_config(path)
    assert config.select == tuple(CODES[:9])  # the prefix EQ00 means EQ001..EQ009
    assert config.ignore == ("EQ003",)
    assert config.per_module_ignores == {"head.*": ("EQ008",)}
    assert config.input_shape == (1, 3, 64, 64)
    assert config.fail_level is Severity.ERROR
    assert config.targets == ("models/net.py",)
    assert config.factories == ("build_*",)
    assert config.exclude == ("tests/*",)
    assert config.root == tmp_path


def test_input_shape_may_be_a_string():
    assert parse_config({"input-shape": "1,1,32"}).input_shape == (1, 1, 32)


def test_discovery_walks_up_past_pyprojects_without_the_table(tmp_path):
    outer = write(tmp_path / "pyproject.toml", '[tool.equiv-lint]\nfail-level = "info"\n')
    write(tmp_path / "sub" / "pyproject.toml", '[project]\nname = "sub"\n')
    start = tmp_path / "sub" / "deeper"
    start.mkdir()
    assert find_config(start) == outer
    assert load_config(start=start).fail_level is Severity.INFO


def test_discovery_prefers_the_nearest_table(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.equiv-lint]\nfail-level = "info"\n')
    inner = write(tmp_path / "sub" / "pyproject.toml", '[tool.equiv-lint]\nfail-level = "error"\n')
    assert find_config(tmp_path / "sub") == inner


def test_no_config_gives_defaults(tmp_path):
    start = tmp_path / "a"
    start.mkdir()
    if find_config(start) is not None:
        pytest.skip("a directory above the temporary directory has a [tool.equiv-lint] table")
    config = load_config(start=start)
    assert config == LintConfig()
    assert config.fail_level is Severity.WARNING and config.select is None and config.path is None


def test_explicit_non_pyproject_file_uses_top_level_keys(tmp_path):
    path = write(tmp_path / "equiv.toml", 'ignore = ["EQ011"]\n')
    assert load_config(path).ignore == ("EQ011",)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('selct = ["EQ001"]', ["'selct'", "did you mean 'select'"]),
        ('frobnicate = 1', ["'frobnicate'", "known keys"]),
        ('select = "EQ001"', ["'select'", "list of strings"]),
        ('select = ["EQ999"]', ["'select'", "'EQ999' matches no rule"]),
        ('fail-level = "fatal"', ["'fail-level'", "unknown severity"]),
        ('input-shape = [1, 0, 4]', ["'input-shape'", "positive integers"]),
        ('input-shape = 7', ["'input-shape'", "list of positive integers"]),
        ('per-module-ignores = ["EQ001"]', ["'per-module-ignores'", "table of qualname globs"]),
        ('per-module-ignores = { "a.*" = ["XX1"] }', ["'per-module-ignores'", "matches no rule"]),
    ],
)
def test_bad_keys_and_values_name_the_file_and_key(tmp_path, body, words):
    path = write(tmp_path / "pyproject.toml", f"[tool.equiv-lint]\n{body}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message
    assert isinstance(info.value, EquivarianceUsageError)


def test_invalid_toml_is_a_config_error(tmp_path):
    path = write(tmp_path / "pyproject.toml", "[tool.equiv-lint\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_missing_explicit_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_override_applies_only_given_values():
    base = LintConfig(ignore=("EQ011",), fail_level=Severity.ERROR)
    merged = base.override(select=("EQ001",), ignore=None, fail_level=None)
    assert merged.select == ("EQ001",)
    assert merged.ignore == ("EQ011",) and merged.fail_level is Severity.ERROR


def test_parse_codes_accepts_prefixes_all_and_commas():
    assert parse_codes("EQ001, eq01", rules=CODES) == ("EQ001", "EQ010", "EQ011")
    assert parse_codes(["ALL"], rules=CODES) == tuple(CODES)
    with pytest.raises(ValueError, match="'EQ1' matches no rule"):
        parse_codes(["EQ1"], rules=CODES)


def test_exclude_globs_are_relative_to_the_config(tmp_path):
    config = LintConfig(exclude=("tests/*", "legacy"), path=tmp_path / "pyproject.toml")
    assert is_excluded(tmp_path / "tests" / "test_x.py", config)
    assert is_excluded(tmp_path / "legacy" / "old.py", config)
    assert not is_excluded(tmp_path / "models" / "net.py", config)
