"""Options, ini keys and the run-wide settings every check starts from; seeds and reproduce commands."""

from __future__ import annotations

import dataclasses
import importlib
import os
import secrets
import shlex
import zlib

import pytest

from pytest_equivariance.check.arguments import DEVICE_PATTERN
from pytest_equivariance.plugin.markers import _equivariance_markers


#: Feature plugins that live in modules of their own; registered when present.
_EXTENSIONS = (
    "pytest_equivariance.plugin.baseline",
    "pytest_equivariance.plugin.html",
    "pytest_equivariance.plugin.summary",
)


OPTION_DEVICE = "--equiv-device"


OPTION_SEED = "--equiv-seed"


OPTION_TRIALS = "--equiv-trials"


OPTION_LOCALIZE = "--equiv-localize"


OPTION_NO_SEED_MODELS = "--equiv-no-seed-models"


DEFAULT_DEVICE = "cpu"


LOCALIZE_CHOICES = {"on-failure": None, "always": True, "never": False}


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("equivariance", "equivariance checks (pytest-equivariance)")
    group.addoption(
        OPTION_DEVICE,
        dest="equiv_device",
        default=None,
        metavar="DEVICE",
        help="device the checks run on: cpu, cuda, cuda:N or auto (default: ini equiv_device, else cpu).",
    )
    group.addoption(
        OPTION_SEED,
        dest="equiv_seed",
        default=None,
        metavar="SEED",
        help="run seed every check's seed is derived from: an integer, or 'random' to draw one "
        "and print it in the header (default: ini equiv_seed, else 0).",
    )
    group.addoption(
        OPTION_TRIALS,
        dest="equiv_trials",
        default=None,
        metavar="N",
        help="random transforms per check, unless a check sets trials= (default: ini equiv_trials, "
        "else each check's own default).",
    )
    group.addoption(
        OPTION_LOCALIZE,
        dest="equiv_localize",
        default=None,
        choices=tuple(LOCALIZE_CHOICES),
        help="when to profile a check layer by layer to find where equivariance breaks "
        "(default: ini equiv_localize, else on-failure).",
    )
    parser.addini("equiv_device", "default device for equivariance checks (cpu, cuda, cuda:N, auto)")
    parser.addini("equiv_seed", "run seed for equivariance checks (integer or 'random')")
    parser.addini("equiv_trials", "default number of random transforms per equivariance check")
    group.addoption(
        OPTION_NO_SEED_MODELS,
        dest="equiv_no_seed_models",
        action="store_true",
        default=False,
        help="do not seed torch, random and numpy before a marked test or one that uses the "
        "equivariance fixture (for suites that seed their models themselves; ini: equiv_seed_models).",
    )
    parser.addini("equiv_localize", "when to localize failures: on-failure, always or never")
    parser.addini(
        "equiv_seed_models",
        "build the models of marked tests under the test's seed (default true)",
        type="bool",
        default=True,
    )

    # pytest_addoption is a historic hook, so extensions registered here still add their options.
    for name in _EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        if not pluginmanager.is_registered(module):
            pluginmanager.register(module, name)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The run-wide defaults every check starts from (options override ini keys)."""

    device: str = DEFAULT_DEVICE
    seed: int = 0
    seed_is_random: bool = False
    trials: int | None = None
    localize: bool | None = None
    localize_name: str = "on-failure"
    seed_models: bool = True


def _setting(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name, None)
    if value is None:
        value = config.getini(name) or None
    return None if value is None else str(value).strip()


def read_settings(config: pytest.Config) -> Settings:
    """Return the run's settings from options, ini keys and defaults; raise UsageError when invalid."""
    device = _setting(config, "equiv_device") or DEFAULT_DEVICE
    if not DEVICE_PATTERN.match(device):
        raise pytest.UsageError(
            f"{OPTION_DEVICE}/equiv_device got {device!r}; pass cpu, cuda, cuda:N or auto."
        )
    worker_seed = getattr(config, "workerinput", {}).get("equiv_seed")
    seed_text = _setting(config, "equiv_seed") or "0"
    seed_is_random = seed_text == "random"
    if worker_seed is not None:  # an xdist worker uses the controller's seed, drawn once
        seed = int(worker_seed)
    elif seed_is_random:
        seed = secrets.randbelow(2**31)
    else:
        try:
            seed = int(seed_text)
        except ValueError:
            seed = -1
        if seed < 0:
            raise pytest.UsageError(
                f"{OPTION_SEED}/equiv_seed got {seed_text!r}; pass a non-negative integer or 'random'."
            )
    trials_text = _setting(config, "equiv_trials")
    trials = None
    if trials_text is not None:
        trials = int(trials_text) if trials_text.isdigit() else 0
        if trials <= 0:
            raise pytest.UsageError(
                f"{OPTION_TRIALS}/equiv_trials got {trials_text!r}; pass a positive integer."
            )
    localize_name = _setting(config, "equiv_localize") or "on-failure"
    if localize_name not in LOCALIZE_CHOICES:
        raise pytest.UsageError(
            f"{OPTION_LOCALIZE}/equiv_localize got {localize_name!r}; "
            f"pass one of {', '.join(LOCALIZE_CHOICES)}."
        )
    return Settings(
        device=device,
        seed=seed,
        seed_is_random=seed_is_random,
        trials=trials,
        localize=LOCALIZE_CHOICES[localize_name],
        localize_name=localize_name,
        seed_models=bool(config.getini("equiv_seed_models")) and not config.getoption("equiv_no_seed_models", False),
    )


def derive_seed(run_seed: int, nodeid: str) -> int:
    """Return the seed of the checks in test ``nodeid``: a stable hash of the run seed and node id.

    zlib.crc32 rather than ``hash()``: Python salts string hashes per process, and the same test
    must get the same seed on every run and every xdist worker. Every check in a test gets the same
    seed, so adding a check does not change the others' draws, and a hypothesis test sees the same
    inputs in every example (its shrinking stays deterministic).
    """
    return zlib.crc32(f"{run_seed}:{nodeid}".encode())


def build_seed(run_seed: int, nodeid: str) -> int:
    """Return the seed torch, ``random`` and numpy get before test ``nodeid`` builds its model.

    Derived like :func:`derive_seed`, but distinct from it: the check draws its natural images from
    a generator seeded with the check seed, and weights drawn from the same stream would be
    correlated with those images.
    """
    return zlib.crc32(f"{run_seed}:{nodeid}:build".encode())


def seeds_its_build(item: pytest.Item) -> bool:
    """Return whether the plugin seeds ``item``: it is marked, or it uses the ``equivariance`` fixture."""
    return bool(_equivariance_markers(item)) or "equivariance" in getattr(item, "fixturenames", ())


def reproduce_command(config: pytest.Config, nodeid: str, settings: Settings) -> str:
    """Return the shell command that re-runs test ``nodeid`` with this run's seed and defaults."""
    path, sep, rest = nodeid.partition("::")
    invocation_dir = config.invocation_params.dir
    if invocation_dir != config.rootpath:
        path = os.path.relpath(config.rootpath / path, invocation_dir)
    parts = ["pytest", shlex.quote(path + sep + rest), f"{OPTION_SEED}={settings.seed}"]
    if settings.device != DEFAULT_DEVICE:
        parts.append(f"{OPTION_DEVICE}={settings.device}")
    if settings.trials is not None:
        parts.append(f"{OPTION_TRIALS}={settings.trials}")
    return " ".join(parts)
