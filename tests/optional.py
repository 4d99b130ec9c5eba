"""Optional test dependencies: a skip on a developer's machine, a failure in CI.

Some tests need a library or a program the package itself never uses (escnn, Chromium, pyyaml, ...).
Without it they skip, so a contributor can run the suite with what they have. CI installs all of
them and sets ``EQUIV_REQUIRE_OPTIONAL=1`` (``.ci/run``): there a missing one fails the test with one
sentence naming what is missing and how to install it, so a broken install never passes as skips.
A module that needs one at import time is then a collection error, which stops the run before any
test: the install is broken, and the sentence says how to mend it. Only the GPU tier skips
everywhere (``-m gpu``; ``tests/conftest.py`` counts those skips).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

#: Set to 1 (CI does) to turn a missing optional dependency into a failure.
REQUIRE_ENV = "EQUIV_REQUIRE_OPTIONAL"

_TEST_EXTRA = "pip install -e '.[test]'"

#: How to install each optional dependency, by the name it is imported (or found) by.
INSTALL = {
    "escnn": "pip install -e '.[groups]' (escnn's py3nj compiles Fortran: apt-get install gfortran first)",
    "e2cnn": "pip install -e '.[groups]' (or pip install e2cnn)",
    "yaml": f"{_TEST_EXTRA} (pyyaml)",
    "Chromium": "apt-get install chromium, or set $CHROMIUM to a Chromium or Chrome binary",
    "git": "apt-get install git",
}


def required() -> bool:
    """Whether a missing optional dependency fails the test (CI) rather than skipping it."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def missing(name: str) -> NoReturn:
    """Skip the test because ``name`` is not installed, or fail it when ``EQUIV_REQUIRE_OPTIONAL`` is set."""
    __tracebackhide__ = True
    how = INSTALL.get(name, _TEST_EXTRA)
    if required():
        pytest.fail(f"{name} is missing ({REQUIRE_ENV}=1 makes that a failure, not a skip); install it with {how}.",
                    pytrace=False)
    pytest.skip(f"{name} is missing; install it with {how}.", allow_module_level=True)


def require(module_name: str) -> ModuleType:
    """Return the module ``module_name``; without it, skip the test (or fail it: see ``missing``)."""
    __tracebackhide__ = True
    try:
        return importlib.import_module(module_name)
    except ImportError:
        pass
    missing(module_name)  # outside the except clause: the sentence alone, not the ImportError's traceback
