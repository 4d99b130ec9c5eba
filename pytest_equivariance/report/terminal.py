"""Rich renderings of check results for the terminal: failure reports and the end-of-run summary.

Renderers read :class:`~pytest_equivariance.check.result.CheckResult` and never compute a metric.
Each function returns either a rich renderable or plain lines; :func:`render` turns a renderable
into a string with or without ANSI colour, so the pytest plugin can write it through pytest's own
terminal writer (which already decided ``--color``, ``NO_COLOR`` and the width).
"""

from __future__ import annotations

import math

import os
from collections.abc import Iterable, Mapping, Sequence
from io import StringIO
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from pytest_equivariance.report.figures import classifier_figures, classifier_verdict, set_figures, set_headline
from pytest_equivariance.report.heatmap import result_figure
from pytest_equivariance.report.text import WORST_TRIALS, num, worst_trials
from pytest_equivariance.report.profile import profile_renderable

if TYPE_CHECKING:
    from pytest_equivariance.check.result import CheckResult, Trial


def render(renderable: RenderableType, *, color: bool, width: int = 100, soft_wrap: bool = False) -> str:
    """Return ``renderable`` as text, with ANSI styles only when ``color`` is true.

    ``soft_wrap`` leaves long text lines unbroken (for commands meant to be copied into a shell).
    """
    buffer = StringIO()
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        color_system=_color_system() if color else None,
        width=width,
        highlight=False,
        emoji=False,
        legacy_windows=False,
        _environ={},  # pytest already weighed NO_COLOR, FORCE_COLOR and COLUMNS: do not re-read them
    )
    console.print(renderable, soft_wrap=soft_wrap)
    # Tables pad every cell to its column width; trailing blanks only get in the way of logs and diffs.
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _color_system() -> str:
    # Heatmaps use RGB ramps: keep them exact where the terminal says it can, else 256 colours.
    return "truecolor" if os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit") else "256"


def _tol(value: float) -> str:
    return f"{value:.0e}" if 0 < value < 1e-2 else f"{value:g}"


def _tolerance(result: "CheckResult") -> str:
    return f"atol={_tol(result.atol)} rtol={_tol(result.rtol)}"


def headline(result: "CheckResult") -> str:
    """Return one plain line saying what failed, under which transform, by how much, and the seed."""
    worst = result.worst
    if worst is None:
        return f"{result.kind} failed: no trials ran (seed {result.seed})"
    where = worst.transform + (f" at output{worst.leaf}" if worst.leaf else "")
    classifier = classifier_verdict(result)
    if classifier is not None:
        figure = classifier
    elif result.min_psnr is not None and worst.psnr is not None:
        figure = f"PSNR {worst.psnr:.1f} dB < min_psnr {result.min_psnr:g} dB"
    elif worst.matched is not None:
        figure = set_headline(worst)
    elif result.max_rel_l2 is not None:
        figure = f"rel_l2 {num(worst.rel_l2)} exceeds {num(result.max_rel_l2)} inside the disk"
    else:
        figure = f"max_abs {num(worst.max_abs)} exceeds {_tolerance(result)}"
    failed = sum(not t.passed for t in result.trials)
    return (
        f"{result.kind} failed under {where}: {figure}; "
        f"{failed}/{len(result.trials)} trials failed, seed {result.seed}"
    )


def quiet_lines(results: Iterable["CheckResult"], outcomes: Mapping[str, str] | None = None) -> list[str]:
    """Return one line per failing check whose test failed (``-q``), and a count line.

    A failing check inside a test that passed or xfailed was expected by that test (it asserted the
    failure), so it is counted but not listed.
    """
    results = list(results)
    outcomes = outcomes or {}
    failing = [r for r in results if not r.passed]
    unexpected = [r for r in failing if not _expected(r, outcomes)]
    lines = [f"EQUIV FAILED {r.test_id or '?'} - {headline(r)}" for r in unexpected]
    count = f"equivariance: {len(results)} checks, {len(failing)} failed"
    if len(unexpected) < len(failing):
        count += f" ({len(failing) - len(unexpected)} expected by their tests)"
    lines.append(count)
    return lines


def _expected(result: "CheckResult", outcomes: Mapping[str, str]) -> bool:
    """Whether a failing check's test expected the failure: it passed anyway, or xfailed."""
    return outcomes.get(result.test_id or "") in ("passed", "xfailed")


def _figures_table(result: "CheckResult", worst: "Trial") -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("figure")
    table.add_column("worst trial", justify="right")
    table.add_column("limit")
    limit = f"{_tol(result.atol)} + {_tol(result.rtol)}·|reference|"
    deciding = [n for n in ("min_consistency", "min_accuracy", "max_accuracy_drop") if getattr(result, n) is not None]
    if deciding:
        limit = f"({', '.join(deciding)} decides)"
    elif result.min_psnr is not None:
        limit = "(min_psnr decides)"
    table.add_row("max_abs", num(worst.max_abs), limit)
    table.add_row("mean_abs", num(worst.mean_abs), "")
    table.add_row("rel_l2", num(worst.rel_l2), "")
    table.add_row("cosine distance", num(worst.cosine), "")
    if worst.consistency is not None:
        against = f"min_consistency={result.min_consistency:.1%}" if result.min_consistency is not None else ""
        table.add_row("top-1 consistency", f"{worst.consistency:.1%}", against)
    if worst.prob_change is not None:
        table.add_row("mean |Δp(top class)|", num(worst.prob_change), "")
    for f in set_figures(worst)[2:]:  # detection sets: max_abs and mean_abs above are the displacement
        table.add_row(f.name, f.value, f.limit)
    if worst.psnr is not None:
        against = f"min_psnr={result.min_psnr:g} dB" if result.min_psnr is not None else ""
        table.add_row("PSNR", "∞ dB" if worst.psnr == math.inf else f"{worst.psnr:.1f} dB", against)
    return table


def _classifier_table(result: "CheckResult") -> Table | None:
    """The classifier's figures over all trials and images (accuracy, consistency), or None."""
    figures = classifier_figures(result)
    if not figures:
        return None
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("over all trials")
    table.add_column("", justify="right")
    table.add_column("limit")
    for figure in figures:
        table.add_row(figure.name, figure.value, figure.limit)
    return table


def _trials_table(result: "CheckResult") -> Table:
    trials = worst_trials(result)
    with_consistency = any(t.consistency is not None for t in trials)
    with_accuracy = any(t.accuracy is not None for t in trials)
    with_leaf = any(t.leaf for t in trials)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("transform")
    if with_leaf:
        table.add_column("output")
    for name in ("max_abs", "mean_abs", "rel_l2"):
        table.add_column(name, justify="right")
    if with_consistency:
        table.add_column("consistency", justify="right")
    if with_accuracy:
        table.add_column("accuracy", justify="right")
    table.add_column("")
    for trial in trials:
        row = [trial.transform]
        if with_leaf:
            row.append(trial.leaf or "-")
        row += [num(trial.max_abs), num(trial.mean_abs), num(trial.rel_l2)]
        if with_consistency:
            row.append("-" if trial.consistency is None else f"{trial.consistency:.1%}")
        if with_accuracy:
            row.append("-" if trial.accuracy is None else f"{trial.accuracy:.1%}")
        row.append(Text("ok", style="green") if trial.passed else Text("FAIL", style="bold red"))
        table.add_row(*row)
    return table


def failure_report(result: "CheckResult", *, reproduce: bool = True) -> RenderableType:
    """Return the report of one failing (or passing) check: worst transform, figures, trials, seed.

    With ``reproduce`` the report ends with the command that reproduces the check.
    """
    parts: list[RenderableType] = []
    status = Text("PASSED ", style="bold green") if result.passed else Text("FAILED ", style="bold red")
    # dims only when they are not simply all spatial dims of the input
    dims = "" if len(result.dims) == len(result.input_shape) - 2 else f" · dims {tuple(result.dims)}"
    title = Text.assemble(
        status,
        (result.kind, "bold"),
        f" ({result.group + ', ' if result.group else ''}{result.mode}){dims} · input {tuple(result.input_shape)} "
        f"{result.dtype} · {result.device}",
    )
    parts.append(title)
    if result.fields:
        parts.append(Text("fields: " + " · ".join(f"{where} {what}" for where, what in result.fields.items())))
    worst = result.worst
    if worst is not None:
        where = worst.transform + (f" at output{worst.leaf}" if worst.leaf else "")
        parts.append(Text.assemble("worst transform: ", (where, "bold")))
        parts.append(_figures_table(result, worst))
        classifier = _classifier_table(result)
        if classifier is not None:
            parts.append(classifier)
        failed = sum(not t.passed for t in result.trials)
        shown = min(WORST_TRIALS, len(result.trials))
        parts.append(Text(f"worst {shown} of {len(result.trials)} trials ({failed} failed):"))
        parts.append(_trials_table(result))
    if result.lattice is not None:
        parts.append(
            Text(f"note: the output grid is {tuple(result.lattice)} times coarser than the input's, "
                 f"so shifts are multiples of that stride (the lattice).", style="yellow")
        )
    for note in result.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    if result.profile is not None:
        parts.append(profile_renderable(result.profile))
    figure = result_figure(result)
    if figure is not None:
        parts.append(figure)
    seed = Text.assemble("seed: ", (str(result.seed), "bold"))
    if result.reproduce:  # under pytest the check's seed derives from the run's --equiv-seed and the test id
        seed.append(" (derived from the run seed and the test id)", style="dim")
    parts.append(seed)
    if result.reproduce and reproduce:
        parts.append(reproduce_line(result.reproduce))
    return Group(*parts)


def reproduce_line(command: str) -> Text:
    """Return the "reproduce: <command>" line; render it with ``soft_wrap`` to keep it unbroken."""
    return Text.assemble("reproduce: ", (command, "bold cyan"))


def failure_reports(results: Sequence["CheckResult"], *, reproduce: bool = True) -> RenderableType:
    """Return the reports of several failing checks, separated by a blank line."""
    parts: list[RenderableType] = []
    for i, result in enumerate(results):
        if i:
            parts.append(Text(""))
        parts.append(failure_report(result, reproduce=reproduce))
    return Group(*parts)


#: Repeated checks of one kind and mode in one test share a summary row beyond this many (a
#: hypothesis test runs a check per example); fewer are listed one by one.
MERGE_REPEATS = 3


def _rows(results: Sequence["CheckResult"]) -> list[tuple[str, str, str, list["CheckResult"]]]:
    """Return (test, kind, mode, checks) rows in first-seen order, merging long runs of repeats."""
    groups: dict[tuple[str, str, str], list[CheckResult]] = {}
    for result in results:
        mode = f"{result.group}, {result.mode}" if result.group else result.mode
        groups.setdefault((result.test_id or "-", result.kind, mode), []).append(result)
    rows = []
    for (test, kind, mode), group in groups.items():
        if len(group) > MERGE_REPEATS:
            rows.append((test, kind, mode, group))
        else:
            rows.extend((test, kind, mode, [r]) for r in group)
    return rows


def _common_file(tests: Iterable[str]) -> str | None:
    files = {test.partition("::")[0] for test in tests}
    return files.pop() if len(files) == 1 and "-" not in files else None


#: The figure columns of the summary: header, justification, fixed width.
_SUMMARY_COLUMNS = (("worst", "right", 9), ("atol/rtol", "left", 11), ("top-1", "right", 6), ("passed", "left", 8))
#: The column added when some check's inputs carried labels: accuracy under the transforms.
_ACCURACY_COLUMN = ("acc", "right", 6)


def _summary_grid(show_header: bool, accuracy: bool = False) -> Table:
    # Every block of the summary is a table of the same fixed-width figure columns that expands to
    # the console width, so the blocks line up while each test id gets a full line of its own.
    table = Table(box=box.SIMPLE_HEAD, show_header=show_header, show_edge=False,
                  pad_edge=False, expand=True)
    table.add_column("test / check (mode)", ratio=1, overflow="fold")
    columns = list(_SUMMARY_COLUMNS)
    if accuracy:
        columns.insert(3, _ACCURACY_COLUMN)
    for header, justify, width in columns:
        table.add_column(header, justify=justify, width=width, no_wrap=True)
    return table


def summary_table(results: Sequence["CheckResult"], outcomes: Mapping[str, str] | None = None) -> RenderableType:
    """Return the end-of-run table: each test's id, then one row per check with its figures.

    Each test id takes a full line, its checks (kind and mode) the rows below it, so the table reads
    well at 80 columns; when every check is in one file, the file goes to the title. More than
    ``MERGE_REPEATS`` checks of one kind and mode in one test share a row with their count and the
    worst of them. When some inputs carried labels, an ``acc`` column gives the top-1 accuracy under
    the transforms (the lowest of a merged row). ``outcomes`` maps node ids to the test's outcome, so a failing check reads
    "xfail" in an xfailed test and "expected" in a test that passed (it asserted the failure).
    """
    outcomes = outcomes or {}
    failed = sum(not r.passed for r in results)
    rows = _rows(results)
    common = _common_file(test for test, *_ in rows)
    expected = sum(not r.passed and _expected(r, outcomes) for r in results)
    title = f"{len(results)} equivariance checks, {failed} failed"
    title += (f" ({expected} expected)" if expected else "") + (f", in {common}" if common else "")
    labelled = any(r.transformed_accuracy is not None for r in results)
    parts: list[RenderableType] = [Text(title, style="bold"), _summary_grid(True, labelled)]
    block: Table | None = None
    previous_test = None
    for test, kind, mode, group in rows:
        if test != previous_test:
            parts.append(Text(test.partition("::")[2] if common else test, style="bold", overflow="fold"))
            block = _summary_grid(False, labelled)
            parts.append(block)
            previous_test = test
        worst = max(group, key=lambda r: r.worst_error)
        consistencies = [r.consistency for r in group if r.consistency is not None]
        accuracies = [r.transformed_accuracy for r in group if r.transformed_accuracy is not None]
        passed = all(r.passed for r in group)
        check = Text(f"  {kind}" + (f" ×{len(group)}" if len(group) > 1 else ""))
        check.append(f" ({mode})", style="dim")
        verdict = Text("yes", style="green") if passed else Text("no", style="bold red")
        if not passed and outcomes.get(test) == "xfailed":
            verdict = Text("xfail", style="yellow")
        elif not passed and outcomes.get(test) == "passed":
            verdict = Text("expected", style="yellow")  # the test asserted this failure
        if worst.min_consistency is not None:
            tolerance = f"top-1≥{worst.min_consistency:.0%}"
        elif worst.min_accuracy is not None:
            tolerance = f"acc≥{worst.min_accuracy:.0%}"
        else:
            tolerance = f"{_tol(worst.atol)}/{_tol(worst.rtol)}"
        figures = [num(worst.worst_error), tolerance, "-" if not consistencies else f"{min(consistencies):.1%}"]
        if labelled:
            figures.append("-" if not accuracies else f"{min(accuracies):.1%}")
        block.add_row(check, *figures, verdict)
    return Group(*parts)
