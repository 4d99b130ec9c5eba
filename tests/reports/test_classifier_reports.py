"""A classifier checked on labelled batches: every report shows its accuracies and image count.

The labels are the model's own predictions on the unshifted images, so clean accuracy is exactly
100 % and the accuracy under each shift is that shift's consistency; the figures are computed here
by hand and must appear, formatted, in the terminal report, the summary table, the HTML report,
the JSON and the job summary.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pytest_equivariance import check_shift_invariant
from pytest_equivariance.inputs import natural_images
from pytest_equivariance.report.html import render_html
from pytest_equivariance.report.step_summary import checks_markdown
from pytest_equivariance.report.terminal import failure_report, headline, render, summary_table

SHIFTS = [(0, 1), (1, 1), (1, 0)]


def _checked():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 5)).eval()
    images = natural_images((20, 1, 8, 8), seed=2)
    with torch.no_grad():
        labels = model(images).argmax(1)
        moved = [(model(torch.roll(images, s, (-2, -1))).argmax(1) == labels) for s in SHIFTS]
    batches = [(images[:8], labels[:8]), (images[8:], labels[8:])]
    result = check_shift_invariant(model, batches, shifts=SHIFTS, min_accuracy=0.99, seed=0, localize=False)
    result.test_id = "test_models.py::test_classifier"
    transformed = sum(int(m.sum()) for m in moved) / 60
    every = int(torch.stack(moved).all(0).sum()) / 20
    return result, transformed, every


def test_every_report_shows_the_accuracies_and_the_image_count():
    result, transformed, every = _checked()
    assert result.accuracy == 1.0 and result.images == 20
    assert result.transformed_accuracy == pytest.approx(transformed) and result.worst_case_accuracy == every
    assert transformed < 0.99
    assert not result.passed

    assert f"accuracy under the transforms {transformed:.1%} < min_accuracy 99.0%" in headline(result)
    text = render(failure_report(result), color=False, width=120)
    assert "(min_accuracy decides)" in text
    rows = {" ".join(line.split()[:-1]): line.split()[-1] for line in text.splitlines() if line.strip()}
    assert rows["accuracy (untransformed)"] == "100.0%"
    assert rows["accuracy under every transform"] == f"{every:.1%}"
    assert rows["images"] == "20"

    table = render(summary_table([result]), color=False, width=80)
    assert "acc" in table.splitlines()[1] and f"{transformed:.1%}" in table and "acc≥99%" in table

    page = render_html([result])
    assert f"{transformed:.1%}" in page and f"{every:.1%}" in page

    data = json.loads(json.dumps(result.to_json()))
    assert data["figures"]["worst_case_accuracy"] == every and data["images"] == 20

    summary = checks_markdown([result])
    assert "classifier" in summary and f"accuracy under every transform {every:.1%}" in summary
