"""Plain-text report of a check result: the message of a failing ``assert_*`` call.

No colour and no rich: it must read well in any log, in an AssertionError, and in a CI annotation.
Renderers never compute metrics; every figure here is read off the :class:`CheckResult`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_equivariance.report.colormap import format_error
from pytest_equivariance.report.figures import classifier_figures, set_figures

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult, Profile, Trial

#: How many trials the report lists, worst first.
WORST_TRIALS = 5

_KIND_TITLES = {
    "shift_equivariant": "shift equivariance",
    "shift_invariant": "shift invariance",
    "rotation_equivariant": "rotation equivariance",
    "rotation_invariant": "rotation invariance",
    "custom": "custom equivariance",
}


def num(value: float | None) -> str:
    """Return a figure in the reports' one short form (``-`` when absent)."""
    return "-" if value is None else format_error(value)


def headline(result: "CheckResult") -> str:
    """Return the one-line verdict: what was checked, pass or fail, on how many trials."""
    title = _KIND_TITLES.get(result.kind, result.kind.replace("_", " "))
    failed = sum(not t.passed for t in result.trials)
    verdict = "passed" if result.passed else "FAILED"
    counts = f"{failed} of {len(result.trials)} trials failed" if failed else f"{len(result.trials)} trials"
    where = f"{result.mode}, dims {tuple(result.dims)}, {result.dtype}, {result.device}"
    if result.group:
        where = f"group {result.group}, {where}"
    return f"{title} {verdict}: {counts} ({where})"


def tolerance(result: "CheckResult") -> str:
    """Return the pass rule as the report states it."""
    rules = []
    if result.min_consistency is not None:
        rules.append(f"mean top-1 consistency >= {num(result.min_consistency)}")
    if result.min_accuracy is not None:
        rules.append(f"mean accuracy under the transforms >= {num(result.min_accuracy)}")
    if result.max_accuracy_drop is not None:
        rules.append(f"accuracy drop under the transforms <= {num(result.max_accuracy_drop)}")
    if rules:
        return " and ".join(rules)
    if result.max_rel_l2 is not None:
        return f"relative L2 error <= {num(result.max_rel_l2)} inside the disk"
    return f"|a - b| <= {num(result.atol)} + {num(result.rtol)}·|b|"


def worst_trials(result: "CheckResult", count: int = WORST_TRIALS) -> list["Trial"]:
    """Return up to ``count`` trials, failing before passing, larger error first."""
    return sorted(result.trials, key=lambda t: (t.passed, -t.max_abs))[:count]


def format_result(result: "CheckResult", *, trials: int = WORST_TRIALS) -> str:
    """Return the plain-text report: verdict, worst transform against the tolerance, worst trials, seed, notes."""
    lines = [headline(result)]
    shown = worst_trials(result, trials)
    worst = result.worst
    if worst is not None:
        leaf = f" at output{worst.leaf}" if worst.leaf else ""
        lines.append(f"worst transform: {worst.transform}{leaf}")
        lines.append(
            f"  max abs {num(worst.max_abs)}   mean abs {num(worst.mean_abs)}   "
            f"rel L2 {num(worst.rel_l2)}   cosine {num(worst.cosine)}"
        )
        sets = set_figures(worst)
        if sets:
            lines.append("  " + "   ".join(f"{f.name} {f.value}" for f in sets[2:]))
        if worst.consistency is not None:
            lines.append(
                f"  top-1 consistency {num(worst.consistency)}   "
                f"top-class probability change {num(worst.prob_change)}"
            )
        lines.append(f"  tolerance: {tolerance(result)}")
    figures = classifier_figures(result)
    if figures:
        lines.append("over all trials: " + ", ".join(
            f"{f.name} {f.value}" + (f" ({f.limit})" if f.limit else "") for f in figures))
    if len(result.trials) > 1 and shown:
        lines.append(f"worst {len(shown)} of {len(result.trials)} trials:")
        lines.extend("  " + row for row in _table(shown))
    lines.append(f"input shape {tuple(result.input_shape)}, seed {result.seed}")
    if result.lattice is not None:
        lines.append(f"stride lattice {tuple(result.lattice)}")
    if result.reproduce:
        lines.append(f"reproduce: {result.reproduce}")
    for note in result.notes:
        lines.append(f"note: {note}")
    if result.profile is not None:
        lines.extend(_profile_lines(result.profile))
    return "\n".join(lines)


def _table(trials: list["Trial"]) -> list[str]:
    consistency = any(t.consistency is not None for t in trials)
    leaves = any(t.leaf for t in trials)
    matched = any(t.matched is not None for t in trials)
    head = ["transform", "max abs", "mean abs", "rel L2", "cosine"] + (["top-1"] if consistency else [])
    head += ["matched", "appeared", "vanished"] if matched else []
    head += (["leaf"] if leaves else []) + [""]
    rows = [head]
    for t in trials:
        row = [t.transform, num(t.max_abs), num(t.mean_abs), num(t.rel_l2), num(t.cosine)]
        if consistency:
            row.append(num(t.consistency))
        if matched:
            row += [str(v) if v is not None else "-" for v in (t.matched, t.appeared, t.vanished)]
        if leaves:
            row.append(t.leaf or "-")
        row.append("ok" if t.passed else "FAIL")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def _profile_lines(profile: "Profile") -> list[str]:
    """The per-layer chart and the culprit with its lint fix, as plain text."""
    from pytest_equivariance.report.profile import profile_text

    return profile_text(profile).splitlines()
