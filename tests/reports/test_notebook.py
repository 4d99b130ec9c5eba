"""Results in Jupyter: a real kernel runs the example notebook; its outputs are the HTML cards.

Needs the test extra's nbclient and ipykernel (skipped without them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from optional import require

nbformat = require("nbformat")
nbclient = require("nbclient")
require("ipykernel")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def executed() -> "nbformat.NotebookNode":
    notebook = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(EXAMPLES)}})
    client.execute()
    return notebook


def _html(cell) -> str:
    (output,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert "text/html" in output.data, sorted(output.data)
    return output.data["text/html"]


def test_a_check_shows_its_card_with_the_heatmap(executed) -> None:
    html = _html(executed.cells[1])
    assert html.startswith('<div class="equiv-report"><style>')
    assert "FAIL" in html and "shift invariant" in html
    assert html.count("<svg") >= 2  # the shift heatmap and the per-layer profile
    assert html.count("<rect") > 81  # a cell per shift of the 9 x 9 grid
    assert "Largest share of the equivariance error: <code>features.2</code>" in html
    assert "--equiv-seed" not in html and "check_shift_invariant(" in html  # reproduce call outside pytest
    assert "body {" not in html  # the notebook's own page is not restyled


def test_a_lint_report_shows_codes_locations_fixes_and_rule_pages(executed) -> None:
    html = _html(executed.cells[2])
    assert '<a href="#equiv-rule-EQ001"><code>EQ001</code></a>' in html
    assert 'id="equiv-rule-EQ001"' in html and "MaxBlurPool2d" in html
    assert "models.py:" in html


def test_the_profile_alone(executed) -> None:
    html = _html(executed.cells[3])
    assert "Per-layer profile" in html and "<svg" in html


def test_rich_consoles_print_the_terminal_reports() -> None:
    # What IPython shows with `%load_ext rich`, and rich.print everywhere: the objects' __rich__.
    import importlib.util
    import io

    from rich.console import Console

    from pytest_equivariance import check_shift_invariant, lint_model

    spec = importlib.util.spec_from_file_location("notebook_example_models", EXAMPLES / "models.py")
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    model = models.build(models.AliasingCNN)
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    result = check_shift_invariant(model, input_shape=(2, 3, 32, 32), shift=(0, 1))
    console.print(result)
    console.print(lint_model(model, (1, 3, 32, 32)))
    console.print(result.profile)
    text = out.getvalue()
    assert "FAILED shift_invariant (circular)" in text and "worst transform: shift (dy=+0, dx=+1)" in text
    assert "EQ001 [error] features.2" in text
    assert "largest share of the equivariance error: features.2" in text


def test_the_notebook_picture_was_taken_of_todays_output(executed, load_script) -> None:
    script = load_script("notebook_screenshot")
    stored = (EXAMPLES.parent / "docs" / "img" / "notebook.png.sha256").read_text(encoding="utf-8").split()[0]
    assert script.digest(script.cell_page(executed)) == stored, (
        "the notebook's check cell renders differently since docs/img/notebook.png was taken; run "
        "python scripts/notebook_screenshot.py docs/img/notebook.png and commit the picture and its hash"
    )
