"""A check over a data set shows a progress bar on a terminal's stderr, and nowhere else.

The bar is drawn once the work has run for ``progress.DELAY`` seconds (set to 0 here), only when
stderr is a terminal a person watches: tested in a pseudo-terminal (with ``progress=False``, under
``CI``, in an xdist worker, on a dumb terminal) and against a pipe. One process runs every case,
each between two markers, so that torch is imported once.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest

SCRIPT = """
import os
import torch
from torch.utils.data import DataLoader, TensorDataset
from pytest_equivariance import check_shift_invariant
from pytest_equivariance.check import progress

progress.DELAY = 0.0
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
loader = DataLoader(TensorDataset(torch.randn(40, 3, 8, 8)), batch_size=4)
for case, shown, variable, value in CASES:
    print(f"<<{case}>>", flush=True)
    if variable:
        os.environ[variable] = value
    check_shift_invariant(model, loader, shifts=[(0, 1)], progress=shown, localize=False)
    if variable:
        del os.environ[variable]
    print(f"<</{case}>>", flush=True)
"""

CASES = [
    ("on", True, None, None),
    ("off", False, None, None),
    ("ci", True, "CI", "true"),
    ("xdist", True, "PYTEST_XDIST_WORKER", "gw0"),
    ("dumb", True, "TERM", "dumb"),
]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")


def script() -> str:
    return f"CASES = {CASES!r}\n{SCRIPT}"


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER", "TERM")}
    return {**clean, "TERM": "xterm-256color", "COLUMNS": "120"}


def run_in_terminal() -> str:
    """Run the cases with stdout and stderr on a pseudo-terminal; return what the terminal received."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", script()], stdin=follower, stdout=follower, stderr=follower,
                               env=env(), close_fds=True)
    os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        received += chunk
    assert process.wait(timeout=300) == 0, received.decode(errors="replace")[-2000:]
    os.close(leader)
    return received.decode(errors="replace")


def between(text: str, case: str) -> str:
    match = re.search(rf"<<{case}>>(.*?)<</{case}>>", text, re.S)
    assert match is not None, text[-2000:]
    return match.group(1)


def test_the_bar_shows_in_a_terminal_only_when_someone_watches():
    shown = run_in_terminal()
    bar = between(shown, "on")
    assert "check_shift_invariant" in bar and "/40" in bar and "images" in bar and "img/s" in bar
    for case in ("off", "ci", "xdist", "dumb"):
        assert between(shown, case).strip() == "", case


def test_no_bar_on_a_pipe():
    done = subprocess.run([sys.executable, "-c", script()], capture_output=True, text=True, env=env(), timeout=300)
    assert done.returncode == 0 and "<</dumb>>" in done.stdout
    assert done.stderr == ""
