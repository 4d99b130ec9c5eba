"""Run the documented demo suite, screenshot its HTML report into docs/img/report.png, and store its hash.

    python scripts/report_screenshot.py            # docs/img/report.png and docs/img/report.png.sha256
    python scripts/report_screenshot.py --hash     # print the hash of today's report, write nothing

The demo is ``examples/report_demo.py`` (docs/reports.md shows it), run as the docs say:
``pytest examples/report_demo.py --equiv-html report.html``. The page is normalised before it is
hashed and photographed — the title's project folder reads ``pytest-equivariance`` wherever the
checkout lives, paths are relative to it, and float noise below 1e-5 (an exact model's rounding, which differs between CPUs)
reads 0 — so the hash changes exactly when the report would look different.
``tests/reports/test_report_screenshot.py`` recomputes it and fails, pointing here, when the report
changed since the picture was taken. Needs Chromium for the picture (not for ``--hash``).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = "examples/report_demo.py"
IMAGE = ROOT / "docs" / "img" / "report.png"
HASH = IMAGE.with_name(IMAGE.name + ".sha256")
#: What the report's title names (the rootdir's folder), whatever the checkout is called.
PROJECT = "pytest-equivariance"
#: Numbers printed in scientific notation with an exponent of -6 or below: float rounding noise.
NOISE = re.compile(r"\b\d(?:\.\d+)?e-(?:0[6-9]|[1-9]\d+)\b")
WINDOW = (1200, 1600)


def demo_report(directory: Path) -> str:
    """Run the demo suite with ``--equiv-html`` into ``directory``; return the normalised page."""
    out = directory / "report.html"
    command = [sys.executable, "-m", "pytest", DEMO, "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
               "--equiv-seed=0", f"--equiv-html={out}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if not out.is_file():
        raise SystemExit(f"{' '.join(command)} wrote no report (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return normalise(out.read_text(encoding="utf-8"))


def normalise(page: str) -> str:
    """Return ``page`` with the checkout's location and float rounding noise made machine-independent."""
    page = page.replace(f"Equivariance report · {ROOT.name}<", f"Equivariance report · {PROJECT}<")
    return NOISE.sub("0", page.replace(f"{ROOT}/", ""))


def digest(page: str) -> str:
    return hashlib.sha256(page.encode("utf-8")).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hash", action="store_true", help="print the hash of today's report; write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        page = demo_report(Path(tmp))
        if args.hash:
            print(digest(page))
            return 0
        sys.path.insert(0, str(ROOT / "tests" / "reports"))
        from test_browser import find_chromium, screenshot

        binary = find_chromium()
        if binary is None:
            print("no Chromium binary found; the picture and its hash are unchanged", file=sys.stderr)
            return 2
        path = Path(tmp) / "normalised.html"
        path.write_text(page, encoding="utf-8")
        screenshot(binary, path, IMAGE, Path(tmp) / "profile", WINDOW)
    HASH.write_text(f"{digest(page)}  normalised HTML report of {DEMO}\n", encoding="utf-8")
    print(f"{IMAGE.relative_to(ROOT)}, {HASH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
