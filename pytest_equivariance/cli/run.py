"""One ``equiv-lint`` call: load each target, lint each model, answer from the cache, collect reports."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pytest_equivariance.cli.output import PROG
from pytest_equivariance.cli.output import error as _error
from pytest_equivariance.errors import EquivarianceUsageError, InputShapeError
from pytest_equivariance.lint.config import LintConfig, is_excluded
from pytest_equivariance.lint.findings import ModelReport

if TYPE_CHECKING:
    from pytest_equivariance.lint.cache import LintCache
    from pytest_equivariance.lint.loader import ModelSource, Target


#: Why a target the settings exclude was skipped (a skip note, cached and replayed with the rest).
EXCLUDED = "excluded by config"


@dataclass
class Run:
    """One ``equiv-lint`` call: reports in target order, which targets failed, where models live."""

    config: LintConfig
    verbose: bool = False
    allow_no_model: bool = False
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    reports: list[ModelReport] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    locations: dict[str, tuple[str | None, int | None]] = field(default_factory=dict)
    #: With --fix: what each model's rewrite must keep (state-dict and output shapes), by target.
    signatures: dict[str, Any] | None = None
    #: With --fix: the digest of each file as it was when its target was loaded.
    snapshots: dict[Path, str] = field(default_factory=dict)
    #: Where results are answered from and stored (None: --no-cache).
    cache: "LintCache | None" = None
    #: While a target is linted for the cache: the source files its imports read.
    files: set[str] | None = None
    #: While a target is linted for the cache: what each file or module it names gave, by its text.
    units: dict[str, Any] | None = None
    #: While a target is linted again after a partial hit: what the last lint of each file or module
    #: gave, so that only the models that failed are built again.
    memo: dict[str, Any] | None = None

    def lint_target(self, text: str, root: Path | None = None) -> list[ModelReport]:
        """Load one target, lint each model it names, and return the new reports (errors included).

        A directory stands for the Python files below it; those that define no model are skipped.
        Answered from the cache when nothing the last lint of the target read has changed, model by
        model: a model that failed is linted again, the others are answered from the cache. ``--fix``
        always lints (it needs the models).
        """
        key = self._cache_key(text, root) if self.cache is not None and self.signatures is None else None
        if key is None or self.cache is None:
            return self._lint_target(text, root)
        hit = self.cache.lookup(key)
        if hit is not None and all(unit["clean"] for unit in hit.result["units"].values()):
            return self._replay(hit.result["units"], text)
        from pytest_equivariance.lint.cache import loaded_module_files

        self.files, self.units = set(hit.files if hit is not None else ()), {}
        self.memo = hit.result["units"] if hit is not None else None
        try:
            reports = self._lint_target(text, root)
        finally:
            files, units = self.files, self.units
            self.files = self.units = self.memo = None
        # A model that failed is linted again next time, not remembered; the rest of its file is.
        if any(unit["clean"] or unit["models"] for unit in units.values()):
            if self.config.path is not None:
                files.add(str(self.config.path.resolve()))
            self.cache.store(key, files | set(loaded_module_files()), {"units": units})
        return reports

    def _cache_key(self, text: str, root: Path | None) -> dict[str, Any] | None:
        from pytest_equivariance.lint.cache import cache_key
        from pytest_equivariance.lint.loader import parse_target, python_files

        try:
            target = parse_target(text, root=root)
        except EquivarianceUsageError:
            return None  # reported by the lint itself
        listing = None
        if target.path is not None and target.name is None and target.path.is_dir():
            listing = [str(p) for p in python_files(target.path)]  # a new file changes the key
        config = self.config
        return cache_key({
            "target": text, "root": str(root) if root is not None else None, "listing": listing,
            "allow_no_model": self.allow_no_model, "select": config.select, "ignore": config.ignore,
            "per_module_ignores": sorted(config.per_module_ignores.items()), "input_shape": config.input_shape,
            "factories": config.factories, "exclude": config.exclude,
        })

    def _replay(self, units: dict[str, Any], text: str) -> list[ModelReport]:
        """Add a cached result's reports, locations and skip notes, as the lint would have."""
        start = len(self.reports)
        for unit in units.values():
            self._replay_outcome(unit)
        if self.verbose:
            print(f"{PROG}: {text}: answered from the cache in {self.cache.directory if self.cache else ''}",
                  file=self.stderr)
        return self.reports[start:]

    def _replay_outcome(self, outcome: dict[str, Any]) -> None:
        """Add the reports, locations and skip notes of one cached file, module or model."""
        for name, location in outcome["locations"].items():
            if location is not None:
                self.locations[name] = (location[0], location[1])
        for note in outcome["skipped"]:
            self._skip(note)
        self.reports.extend(ModelReport.from_json(r) for r in outcome["reports"])

    def _outcome(self, start: tuple[int, int, int]) -> dict[str, Any]:
        """Return what was added since ``start`` (reports, skipped, failed), as it is cached."""
        reports = self.reports[start[0]:]
        return {
            "clean": len(self.failed) == start[2],
            "reports": [r.to_json() for r in reports],
            "skipped": self.skipped[start[1]:],
            "locations": {r.target: self.locations.get(r.target) for r in reports},
        }

    def _mark(self) -> tuple[int, int, int]:
        return len(self.reports), len(self.skipped), len(self.failed)

    def _lint_target(self, text: str, root: Path | None = None) -> list[ModelReport]:
        from pytest_equivariance.lint.loader import Target, display_path, parse_target, python_files

        start = len(self.reports)
        try:
            target = parse_target(text, root=root)
        except EquivarianceUsageError as exc:
            self._fail(text, exc)
            return self.reports[start:]
        if target.path is not None and target.name is None and target.path.is_dir():
            for path in python_files(target.path):
                self._lint(Target(text=display_path(path), path=path), allow_no_model=True)
        else:
            self._lint(target, allow_no_model=self.allow_no_model)
        return self.reports[start:]

    def _lint(self, target: "Target", *, allow_no_model: bool) -> None:
        """Lint one file or module target, answering what it can from ``memo``; record it in ``units``."""
        cached = self.memo.get(target.text) if self.memo is not None else None
        if cached is not None and cached["clean"]:
            self._replay_outcome(cached)
            if self.units is not None:
                self.units[target.text] = cached
            return
        start, models = self._mark(), ({} if self.units is not None else None)
        self._load(target, allow_no_model=allow_no_model, cached=cached["models"] if cached else {},
                   models=models)
        if self.units is not None:
            outcome = self._outcome(start)
            outcome["models"] = {} if outcome["clean"] else models  # a clean file is replayed whole
            self.units[target.text] = outcome

    def _load(self, target: "Target", *, allow_no_model: bool, cached: dict[str, Any],
              models: dict[str, Any] | None) -> None:
        """Import a target and lint its models; those in ``cached`` are answered from it.

        ``models``, where given, receives what each model that did not fail gave.
        """
        from pytest_equivariance.lint.loader import (
            NoModelFoundError,
            display_path,
            load_target,
            mentions_torch,
        )

        path = target.path
        if path is not None and target.name is None:
            if is_excluded(path, self.config):
                return self._skip(f"{display_path(path)} ({EXCLUDED})")
            # Only where a file may define no model (found in a directory, or pre-commit's
            # --allow-no-model): a file named on the command line is always imported.
            if allow_no_model and path.is_file() and not mentions_torch(path):
                return self._skip(f"{display_path(path)} (does not mention torch)")
        explicit = target.name is not None
        if self.signatures is not None and path is not None and path.is_file():
            from pytest_equivariance.fix.source import digest

            self.snapshots.setdefault(path.resolve(), digest(path.read_bytes()))
        try:
            with load_target(target, factories=self.config.factories, files=self.files) as loaded:
                for reason in loaded.skipped:
                    self._skip(f"{target.text}: {reason}")
                before, skipped = (len(self.reports), len(self.skipped))
                for source in loaded.sources:
                    outcome = cached.get(source.target)
                    if outcome is not None:
                        self._replay_outcome(outcome)
                        if self.verbose:
                            print(f"{PROG}: {source.target}: answered from the cache", file=self.stderr)
                    else:
                        start = self._mark()
                        self._lint_source(source, explicit=explicit)
                        if models is not None:
                            outcome = self._outcome(start)
                    if models is not None and outcome["clean"]:
                        models[source.target] = outcome
                if not explicit and len(self.reports) == before:
                    # Everything found was passed over: as if nothing had been found.
                    reasons = "; ".join(self.skipped[skipped:])
                    raise NoModelFoundError(
                        f"No model in {target.text} could be linted ({reasons}); give constructors "
                        f"defaults, name a zero-argument factory, or pass --input-shape."
                    )
        except NoModelFoundError as exc:
            if not allow_no_model:
                return self._fail(target.text, exc)
            self._skip(f"{target.text} ({exc})")
        except EquivarianceUsageError as exc:
            self._fail(target.text, exc)

    def _lint_source(self, source: "ModelSource", *, explicit: bool) -> None:
        from pytest_equivariance.inputs import infer_input_shape
        from pytest_equivariance.lint import lint_model
        from pytest_equivariance.lint.empty import build_empty
        from pytest_equivariance.lint.loader import NeedsArgumentsError

        self.locations[source.target] = (source.file, source.line)
        model = built = None
        try:
            built = build_empty(source.build, errors=(NeedsArgumentsError,))
            model = built.model
            shape = self.config.input_shape
            if shape is None and not explicit:
                # Found by discovery (a loss or a helper module, say): without a layer to read the
                # channels from it is not a model to lint, unless the user names it.
                try:
                    shape = infer_input_shape(model)  # what lint_model would infer: do it once
                except InputShapeError:
                    self._skip(
                        f"{source.target} (no conv or linear layer to infer an input shape from; "
                        f"name it with --input-shape to lint it)"
                    )
                    return
            report = lint_model(
                model,
                shape,
                target=source.target,
                select=self.config.select,
                ignore=self.config.ignore,
                per_module_ignores=self.config.per_module_ignores,
            )
            if self.signatures is not None:
                from pytest_equivariance.fix.signature import model_signature

                self.signatures[source.target] = model_signature(model, report.input_shape)
        except NeedsArgumentsError as exc:
            if explicit:
                return self._fail(source.target, exc)
            self._skip(f"{source.target} ({exc.__cause__ or 'needs arguments'})")
        except EquivarianceUsageError as exc:
            self._fail(source.target, exc)
        except Exception as exc:  # a bug in the linter: report it, lint the rest
            first_line = (str(exc).strip().splitlines() or [""])[0]
            error = RuntimeError(
                f"{source.target}: the linter failed with {type(exc).__name__}: {first_line}; "
                f"rerun with --verbose and report this with the traceback."
            )
            error.__cause__ = exc
            self._fail(source.target, error)
        else:
            if built is not None and built.note is not None:
                report.notes.insert(0, built.note)
            self.reports.append(report)
            if report.errors:  # the model rejected the example input, or the analysis broke off
                self.failed.append(source.target)
                for error in report.errors:
                    _error(self.stderr, f"{source.target}: {error}")
        finally:
            model = built = None  # drop the model before the next one is built

    @property
    def excluded(self) -> bool:
        """Whether a target was left out on purpose, by the settings' ``exclude``."""
        return any(note.endswith(f"({EXCLUDED})") for note in self.skipped)

    def _fail(self, target: str, exc: BaseException) -> None:
        from pytest_equivariance.lint.loader import failed_report

        self.failed.append(target)
        self.reports.append(failed_report(target, exc))
        _error(self.stderr, exc, verbose=self.verbose)

    def _skip(self, note: str) -> None:
        self.skipped.append(note)
        if self.verbose:
            print(f"{PROG}: skipped {note}", file=self.stderr)
