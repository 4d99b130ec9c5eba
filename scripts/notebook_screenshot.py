"""Execute ``examples/notebook.ipynb`` and screenshot its first check cell, as a notebook shows it.

    python scripts/notebook_screenshot.py docs/img/notebook.png

Needs the test extra (nbclient, ipykernel) and Chromium. The page imitates a notebook cell: the code
as typed, then the HTML output exactly as the kernel returned it. Its hash, normalised as
``report_screenshot.py`` normalises the report, is written beside the picture
(``docs/img/notebook.png.sha256``); ``tests/reports/test_notebook.py`` fails when the cell's output
changed since the picture was taken.
"""

from __future__ import annotations

import html
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reports"))
sys.path.insert(0, str(ROOT / "scripts"))

from report_screenshot import digest, normalise  # noqa: E402
from test_browser import find_chromium, screenshot  # noqa: E402

CELL = 1  # the check cell
PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #fff; font: 14px/1.4 ui-sans-serif, system-ui, sans-serif; }}
.cell {{ display: grid; grid-template-columns: 70px 1fr; gap: 4px 8px; padding: 16px 24px 16px 8px; }}
.prompt {{ color: #303f9f; font: 13px ui-monospace, monospace; text-align: right; padding-top: 8px; }}
.prompt.out {{ color: #d84315; }}
pre.input {{ margin: 0; background: #f5f5f5; border: 1px solid #e0e0e0; border-radius: 2px; padding: 8px;
  font: 13px/1.4 ui-monospace, monospace; }}
</style></head><body><div class="cell">
<div class="prompt">In [{n}]:</div><pre class="input">{code}</pre>
<div class="prompt out">Out[{n}]:</div><div>{output}</div>
</div></body></html>"""


def main(argv: list[str]) -> int:
    import nbclient
    import nbformat

    binary = find_chromium()
    if binary is None:
        print("no Chromium binary found", file=sys.stderr)
        return 2
    notebook = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "examples")}}).execute()
    page = cell_page(notebook)
    out = Path(argv[0]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cell.html"
        path.write_text(page, encoding="utf-8")
        screenshot(binary, path, out, Path(tmp) / "profile", (1100, int(argv[1]) if len(argv) > 1 else 1500))
    out.with_name(out.name + ".sha256").write_text(f"{digest(page)}  normalised page of examples/notebook.ipynb's "
                                                  f"cell {CELL}\n", encoding="utf-8")
    print(out)
    return 0


def cell_page(notebook: Any) -> str:
    """Return the normalised page of the executed ``notebook``'s check cell, as the picture shows it."""
    cell = notebook.cells[CELL]
    (output,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    return normalise(PAGE.format(n=cell.execution_count, code=html.escape(cell.source),
                                 output=output.data["text/html"]))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
