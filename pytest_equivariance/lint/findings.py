"""What the static linter returns: plain dataclasses, no rendering."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Severity(str, enum.Enum):
    """How much a finding matters; ordered ``info < warning < error``."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def parse(cls, text: str) -> "Severity":
        try:
            return cls(text.lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r}; use one of {names}") from None


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True)
class Finding:
    """One call site in a model's graph that breaks (or weakens) equivariance.

    The first eight fields are the stable JSON interface (DESIGN.md); never rename them.
    ``params`` holds the op's parameters (stride, kernel_size, ...) for renderers and for
    ``antialias``, which rewrites the module named by ``qualname``.
    """

    code: str
    severity: Severity
    message: str
    qualname: str
    op: str
    file: str | None = None
    line: int | None = None
    fix: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    # "module": qualname names an nn.Module that antialias() can replace; "function" / "method":
    # a functional call (F.max_pool2d, x[..., ::2]) that only a source edit can change.
    kind: str = "module"
    # How many times the graph runs this site (a layer reused, a call in an unrolled loop): still
    # one finding, at its one construction or call site.
    calls: int = 1

    def to_json(self) -> dict[str, Any]:
        """Return the finding as a JSON-ready dict (the stable fields, ``params``, ``kind`` and ``calls``)."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Finding":
        """Return the finding that :meth:`to_json` wrote (tuples in ``params`` come back as lists)."""
        return cls(**{**data, "severity": Severity(data["severity"])})

    def location(
        self, fallback: tuple[str | None, int | None] | None = None
    ) -> tuple[str | None, int | None]:
        """Return ``(file, line)``: the finding's own, else ``fallback`` (e.g. where its model is defined)."""
        if self.file is None and fallback is not None:
            return fallback
        return self.file, self.line


@dataclass
class ModelReport:
    """Everything the linter found for one target (one model)."""

    target: str
    trace: str = "fx"  # "fx", or the name of the fallback that was used ("hierarchical", "modules")
    coverage: float = 1.0  # fraction of the model's leaf modules that were traced through fx
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    input_shape: tuple[int, ...] | None = None
    # What was analysed with less precision, without being an error: submodules analysed without
    # fx, shapes that could not be propagated. Shown with --verbose.
    notes: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        """The findings table with each rule's page, as HTML, for notebooks."""
        from pytest_equivariance.report.findings_html import lint_report_html

        return lint_report_html(self)

    def __rich__(self) -> Any:
        """The text report (header, findings, fixes), for terminals and IPython's rich display."""
        from rich.console import Group

        from pytest_equivariance.report.findings_text import model_lines

        return Group(*model_lines(self, verbose=True))

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "trace": self.trace,
            "coverage": self.coverage,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "findings": [f.to_json() for f in self.findings],
            "errors": list(self.errors),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModelReport":
        """Return the report that :meth:`to_json` wrote."""
        shape = data.get("input_shape")
        return cls(
            target=data["target"], trace=data["trace"], coverage=data["coverage"],
            findings=[Finding.from_json(f) for f in data["findings"]], errors=list(data["errors"]),
            input_shape=tuple(shape) if shape else None, notes=list(data["notes"]),
        )
