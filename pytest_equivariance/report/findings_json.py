"""Lint reports as JSON: the stable, versioned document of ``equiv-lint --format json``.

Schema (DESIGN.md; fields may be added, never renamed)::

    {"version": 1,
     "models": [{"target": "models/net.py::Net", "trace": "fx", "coverage": 1.0,
                 "input_shape": [1, 3, 224, 224],
                 "findings": [{"code", "severity", "message", "qualname", "op", "file", "line",
                               "fix", "params", "kind"}],
                 "errors": ["..."]}]}

A target that could not be loaded appears with ``"trace": "none"``, ``"coverage": 0.0``, no
findings and its error sentence in ``errors``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pytest_equivariance.lint.findings import ModelReport

#: Version of the document layout; bumped only if a field is renamed or removed.
SCHEMA_VERSION = 1


def findings_document(reports: Sequence[ModelReport]) -> dict[str, Any]:
    """Return the JSON-ready document for a run's reports, one entry per model, in target order."""
    return {"version": SCHEMA_VERSION, "models": [report.to_json() for report in reports]}


def render_json(reports: Sequence[ModelReport], *, indent: int | None = 2) -> str:
    """Return the JSON document as text; op parameters that are not JSON types become strings."""
    return json.dumps(findings_document(reports), indent=indent, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)
