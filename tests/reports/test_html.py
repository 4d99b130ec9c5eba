"""The HTML report: self-contained, escaped, deterministic, well-formed, with every figure."""

from __future__ import annotations

import html
import math
import re
from html.parser import HTMLParser

import pytest
from report_samples import HOSTILE_ID, lattice_grid, rotation_failure, sample_results, shift_failure

from pytest_equivariance.check.result import CheckResult, ShiftGrid
from pytest_equivariance.report.colormap import VIRIDIS, hex_colour
from pytest_equivariance.report.html import angle_svg, heatmap_svg, render_html, write_html
from pytest_equivariance.report.figures import angle_series

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _TagChecker(HTMLParser):
    """Checks that every element is closed in order (void elements aside) and collects tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(document: str) -> _TagChecker:
    checker = _TagChecker()
    checker.feed(document)
    checker.close()
    return checker


def test_report_is_self_contained(results: list[CheckResult]) -> None:
    page = render_html(results)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page
    tags = [tag for tag, _ in parse(page).tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags


def test_report_is_well_formed_html5(results: list[CheckResult]) -> None:
    page = render_html(results)
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    checker = parse(page)
    assert checker.errors == [] and checker.stack == []
    tags = [tag for tag, _ in checker.tags]
    assert tags.count("html") == tags.count("head") == tags.count("body") == 1
    assert ("meta", {"charset": "utf-8"}) in checker.tags
    ids = [attrs["id"] for _, attrs in checker.tags if "id" in attrs]
    assert len(ids) == len(set(ids))  # every anchor unique
    for _, attrs in checker.tags:
        if attrs.get("href", "").startswith("#"):
            assert attrs["href"][1:] in ids


def test_every_test_id_is_escaped(results: list[CheckResult]) -> None:
    page = render_html(results)
    assert "<script>alert" not in page
    text = "".join(parse(page).text)
    for r in results:
        assert html.escape(r.test_id) in page
        assert text.count(r.test_id) >= 2  # summary row and section heading, read back as text


def test_seed_and_reproduce_command_are_shown(results: list[CheckResult]) -> None:
    text = "".join(parse(render_html(results)).text)
    for r in results:
        assert r.reproduce in text
        assert f"seed{r.seed}" in text.replace(" ", "")


def test_api_results_get_a_reproducing_call() -> None:
    r = shift_failure()
    r.reproduce = None
    r.test_id = None
    text = "".join(parse(render_html([r])).text)
    assert "check_shift_invariant(model, inputs, seed=1234)" in text
    assert "shift_invariant #1" in text


def test_summary_counts_and_badges(results: list[CheckResult]) -> None:
    page = render_html(results)
    assert "3 checks · 1 passed · 2 failed" in page
    summary = page[page.index('id="summary"') : page.index('id="check-1"')]
    assert summary.count("badge fail") == 2 and summary.count("badge pass") == 1


def test_report_is_deterministic() -> None:
    assert render_html(sample_results()) == render_html(sample_results())


def test_heatmap_has_one_cell_per_shift_with_tooltips_and_axes() -> None:
    grid = lattice_grid(32)
    svg = heatmap_svg(grid, atol=1e-5)
    cells = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"><title>dy=(\d+), dx=(\d+): ', svg)
    assert len(cells) == 32 * 32
    assert {(int(dy), int(dx)) for _, dy, dx in cells} == {(y, x) for y in range(32) for x in range(32)}
    by_shift = {(int(dy), int(dx)): colour for colour, dy, dx in cells}
    assert by_shift[(0, 0)] == hex_colour(VIRIDIS[0])  # ~0 error: the bottom of the scale
    assert by_shift[(23, 22)] == hex_colour(VIRIDIS[-1])  # the worst shift: the top
    assert ">dx →<" in svg and ">dy<" in svg


def test_large_heatmaps_are_reduced() -> None:
    svg = heatmap_svg(lattice_grid(96))
    assert len(re.findall(r"<title>dy=", svg)) == 48 * 48
    assert "<title>dy=0..1, dx=0..1: " in svg


def test_heatmap_with_nan_and_constant_grids() -> None:
    assert "nan" in heatmap_svg(ShiftGrid([0, 1], [0, 1], [[0.0, math.nan], [0.1, 0.2]]))
    assert "<title>dy=1, dx=1: 0</title>" in heatmap_svg(ShiftGrid([0, 1], [0, 1], [[0.0, 0.0], [0.0, 0.0]]))


def test_angle_plot_has_a_bar_per_angle_and_the_tolerance() -> None:
    points = angle_series(rotation_failure())
    svg = angle_svg(points, atol=0.01)
    bars = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"><title>([^<]*)</title>', svg)
    assert len(bars) == len(points) == 7
    assert sum(1 for _, title in bars if title.endswith("(fails)")) == 5
    assert ">atol<" in svg and "stroke-dasharray" in svg


def test_sections_show_profile_and_figures(results: list[CheckResult]) -> None:
    page = render_html(results)
    first, second, third = (page[page.index(f'id="check-{i}"') :] for i in (1, 2, 3))
    first = first[: first.index('id="check-2"')]
    second = second[: second.index('id="check-3"')]
    assert "Equivariance first breaks at <code>pool</code>: MaxPool2d(kernel_size=2, stride=2) at <code>models/net.py:14</code> — EQ001" in first
    assert "noise 1.0e-06 · models/net.py:14</title>" in first
    assert "first break" in first and "Per-layer profile (6 layers)" in first
    assert "Error over shifts" in first and "Error by rotation angle" not in first
    assert "Error by rotation angle" in second and "Error over shifts" not in second
    assert "model was in train mode" in first
    assert "<svg" not in third  # a passing check without a grid draws no figure


def test_no_results_still_makes_a_page() -> None:
    page = render_html([])
    assert "No equivariance checks ran." in page and parse(page).errors == []


def test_write_html_creates_parents(tmp_path) -> None:
    path = write_html(tmp_path / "deep" / "report.html", sample_results())
    assert path.read_text(encoding="utf-8") == render_html(sample_results())
    assert HOSTILE_ID not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("title", ["a <b> & c"])
def test_title_is_escaped(title: str) -> None:
    assert "<title>a &lt;b&gt; &amp; c</title>" in render_html([], title=title)


def test_the_card_names_the_weights_and_inputs_fingerprints():
    result = shift_failure()
    result.weights_fingerprint, result.inputs_fingerprint = "0123456789abcdef", "fedcba9876543210"
    page = render_html([result])
    assert "<dt>weights fingerprint</dt><dd>0123456789abcdef</dd>" in page
    assert "<dt>inputs fingerprint</dt><dd>fedcba9876543210</dd>" in page
