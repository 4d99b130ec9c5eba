"""The HTML report in a real browser: headless Chromium renders it, we read its DOM and a screenshot.

Skipped where no Chromium binary exists, and failed there in CI (``.ci/run`` installs Debian's
``chromium`` and sets ``EQUIV_REQUIRE_OPTIONAL``: see ``tests/optional.py``).
Run as a script to refresh the screenshot in the docs::

    python tests/reports/test_browser.py docs/img/report.png [report.html]
"""

from __future__ import annotations

import html
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from report_samples import sample_results  # noqa: E402

from pytest_equivariance.report.html import write_html  # noqa: E402

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
WINDOW = (1200, 1600)
TIMEOUT = 90


def find_chromium() -> str | None:
    """Return the Chromium binary: $CHROMIUM if set, else the first candidate on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium offline (no network services, no first-run, a throwaway profile)."""
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def png_pixels(data: bytes) -> bytes:
    """Return the PNG's decompressed scanlines (filter bytes included): enough to judge variety."""
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            chunks.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return zlib.decompress(b"".join(chunks))


def screenshot(binary: str, page: Path, out: Path, profile: Path, window: tuple[int, int] = WINDOW) -> None:
    done = chromium(binary, profile, f"--screenshot={out}", f"--window-size={window[0]},{window[1]}", page.as_uri())
    assert out.exists(), f"no screenshot; chromium said:\n{done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def browser() -> str:
    from optional import missing  # here, not at the top: this file also runs as a script

    binary = find_chromium()
    if binary is None:
        missing("Chromium")
    return binary


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_html(tmp_path_factory.mktemp("report") / "report.html", sample_results())


@pytest.mark.browser
def test_browser_renders_the_report_content(browser: str, report: Path, tmp_path: Path) -> None:
    done = chromium(browser, tmp_path / "profile", "--dump-dom", report.as_uri())
    dom = done.stdout
    assert "<h1>Equivariance report</h1>" in dom, done.stderr[-2000:]
    for r in sample_results():
        assert html.escape(r.test_id, quote=False) in dom  # the DOM serialiser escapes < > & in text
        assert html.escape(r.reproduce, quote=False) in dom
    assert "<script>alert" not in dom
    assert dom.count("<svg") == 3  # heatmap, angle plot, profile
    assert dom.count("<rect") > 1024  # one cell per shift of the 32 x 32 grid, and more
    assert "first break" in dom


@pytest.mark.browser
def test_browser_screenshot_is_a_real_picture(browser: str, report: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    screenshot(browser, report, out, tmp_path / "profile")
    data = out.read_bytes()
    assert png_size(data) == WINDOW
    assert len(data) > 20_000
    pixels = png_pixels(data)
    # A blank or failed page has a handful of byte values; the heatmap alone brings hundreds.
    assert len(set(pixels)) > 200


def main(argv: list[str]) -> int:
    """Write a screenshot of a report (the sample one unless an HTML file is given) to argv[0]."""
    import tempfile

    binary = find_chromium()
    if binary is None:
        print("no Chromium binary found", file=sys.stderr)
        return 2
    out = Path(argv[0]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(argv[1]).resolve() if len(argv) > 1 else write_html(Path(tmp) / "report.html", sample_results())
        height = int(argv[2]) if len(argv) > 2 else WINDOW[1]
        screenshot(binary, page, out, Path(tmp) / "profile", (WINDOW[0], height))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
