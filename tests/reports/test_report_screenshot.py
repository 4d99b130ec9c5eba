"""docs/img/report.png shows today's report: the hash beside it is that of the demo's HTML as it renders now."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_report_picture_was_taken_of_todays_report(tmp_path, load_script):
    script = load_script("report_screenshot")
    stored = script.HASH.read_text(encoding="utf-8").split()[0]
    assert script.digest(script.demo_report(tmp_path)) == stored, (
        f"the HTML report of {script.DEMO} changed since docs/img/report.png was taken; "
        f"run python scripts/report_screenshot.py and commit the picture and its hash"
    )


def test_normalising_keeps_what_a_reader_sees_and_drops_what_a_machine_adds(load_script):
    script = load_script("report_screenshot")
    page = f"<h1>Equivariance report · {ROOT.name}</h1><td>6.0e-08</td><td>1.0e-05</td><td>0.0258</td>"
    assert script.normalise(page) == (
        f"<h1>Equivariance report · {script.PROJECT}</h1><td>0</td><td>1.0e-05</td><td>0.0258</td>"
    )
