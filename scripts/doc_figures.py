"""Rewrite the figures marked in README.md and docs/ from the commands that produce them.

A figure in the docs is marked where it stands, so the reader sees only the value::

    | circular CNN @32 | plain | <!-- figure: polyphase.circular-cnn.plain.circular -->3.42e-02<!-- /figure --> |

and every marked name belongs to one *source* below: the command the docs name beside the figure,
run here the same way (or, where no command prints the figure, the function that measures it),
with the tolerance within which a fresh run counts as the same figure. As ``gen_rule_docs.py`` does
for the rule pages, this script writes the figures and ``--check`` fails when the docs differ:

    python scripts/doc_figures.py                # rewrite the fast sources' figures
    python scripts/doc_figures.py --all          # also the slow ones (training, large models)
    python scripts/doc_figures.py --check        # exit 1 when a fast figure differs from a fresh run
    python scripts/doc_figures.py --list         # every source: its command, speed and tolerance

A source that needs a package this machine lacks (escnn) is skipped, saying so. Timings are not
marked: they change with the machine's load, and the docs state them as ratios with the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: ``<!-- figure: NAME -->VALUE<!-- /figure -->`` on one line; VALUE is what the reader sees.
MARK = re.compile(r"<!-- figure: (?P<name>[\w.-]+) -->(?P<value>.*?)<!-- /figure -->")
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


@dataclass(frozen=True)
class Tolerance:
    """How far a fresh figure may be from the docs' and still be the same figure.

    ``rel``: the relative difference allowed between the numbers (0: the text must match exactly);
    ``floor``: numbers both below it are equal (float rounding of an exact result).
    """

    rel: float = 0.0
    floor: float = 0.0

    def agree(self, documented: str, fresh: str) -> bool:
        if documented == fresh:
            return True
        if self.rel == 0.0 and self.floor == 0.0:
            return False
        a, b = NUMBER.findall(documented), NUMBER.findall(fresh)
        if len(a) != len(b) or NUMBER.sub("#", documented) != NUMBER.sub("#", fresh):
            return False
        return all(_close(float(x), float(y), self) for x, y in zip(a, b))

    def __str__(self) -> str:
        if self.rel == 0.0 and self.floor == 0.0:
            return "exact"
        parts = [f"±{self.rel:.0%}"] if self.rel else []
        return ", ".join(parts + ([f"equal below {self.floor:g}"] if self.floor else []))


def _close(x: float, y: float, tolerance: Tolerance) -> bool:
    if abs(x) < tolerance.floor and abs(y) < tolerance.floor:
        return True
    return math.isclose(x, y, rel_tol=tolerance.rel, abs_tol=0.0)


@dataclass(frozen=True)
class Source:
    """A command that produces some of the docs' figures, and how to read them from it."""

    name: str  # every figure it produces is named ``<name>.<...>``
    command: str  # as the docs show it beside the figures
    measure: Callable[[], dict[str, str]]  # figure name (without the prefix) -> value as the docs print it
    fast: bool  # part of --check (seconds, deterministic); slow ones run with --all
    tolerance: Tolerance = Tolerance()
    requires: tuple[str, ...] = ()  # modules it needs beyond the project's own

    def missing(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def figures(self) -> dict[str, str]:
        return {f"{self.name}.{key}": value for key, value in self.measure().items()}


# -- the sources ----------------------------------------------------------------------------------


def _benchmark(name: str) -> Any:
    """Import ``benchmarks/<name>.py`` (its directory on sys.path, as when run as a script)."""
    directory = str(ROOT / "benchmarks")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _polyphase(model: str, key: str) -> Callable[[], dict[str, str]]:
    def measure() -> dict[str, str]:
        bench = _benchmark("polyphase_cost")
        size = bench.MODELS[model][1]
        out = {}
        for fix, module in bench.variants(model, seed=0).items():
            for mode, error in zip(bench.MODES, bench.shift_errors(module, size, seed=0)):
                out[".".join(filter(None, (key, fix, mode)))] = f"{error:.2e}"
        return out

    return measure


def _plain_group_claims() -> dict[str, str]:
    """The worst relative L2 error of plain convolutions claimed to be group-equivariant (docs/groups.md):
    the architecture of ``tests/groups/test_libraries.py`` with ``nn.Conv2d`` filters, as its tests build it."""
    from torch import nn

    import pytest_equivariance as pe
    from pytest_equivariance.seeding import seeded

    def worst(channels: int, **kwargs: Any) -> str:
        with seeded(0):
            model = nn.Sequential(nn.Conv2d(1, channels, 5, padding=2), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 5, padding=2)).eval()
        result = pe.check_rotation_equivariant(model, input_shape=(4, 1, 33, 33), localize=False, **kwargs)
        return f"{max(t.rel_l2 for t in result.trials):.2f}"

    out = {name.lower(): worst(2 * order, group=name, output_fields="regular")
           for name, order in (("C4", 4), ("D4", 8), ("C8", 8), ("C16", 16))}
    out["so2"] = worst(10, group="SO2", output_fields=["irrep(0)", "irrep(1)", "irrep(2)"] * 2)
    return out


def _shapes_training() -> dict[str, str]:
    import subprocess

    command = [sys.executable, "examples/shapes/train.py", "--epochs", "4", "--train", "3000", "--seed", "0",
               "--threads", "2"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    out = {}
    for key, label in (("baseline", "baseline"), ("antialias", "antialias(model)")):
        row = re.search(rf"^{re.escape(label)}\s+([\d.]+)%\s+([\d.]+)%", done.stdout, re.MULTILINE)
        assert row, f"no {label!r} row in the output of {' '.join(command)}"
        out[f"{key}.accuracy"], out[f"{key}.consistency"] = f"{row[1]} %", f"{row[2]} %"
    return out


SOURCES = [
    Source("polyphase", "python benchmarks/polyphase_cost.py --device cpu --batch 8 --rounds 10 --seed 0 "
           "(the circular CNN's rows)", _polyphase("circular CNN @32", "circular-cnn"), fast=True,
           tolerance=Tolerance(rel=0.02, floor=1e-6)),
    Source("polyphase-resnet18", "python benchmarks/polyphase_cost.py --device cpu --batch 8 --rounds 10 "
           "--seed 0 (resnet18's rows)", _polyphase("resnet18 circular @64", ""), fast=False,
           tolerance=Tolerance(rel=0.02, floor=1e-4), requires=("torchvision",)),
    Source("groups-plain", "check_rotation_equivariant of tests/groups/test_libraries.py's plain_net "
           "(4 images of 33², CPU)", _plain_group_claims, fast=True, tolerance=Tolerance(rel=0.02)),
    Source("shapes", "python examples/shapes/train.py --epochs 4 --train 3000 --seed 0 --threads 2",
           _shapes_training, fast=False),
]


# -- reading and writing the docs -----------------------------------------------------------------


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def marks(root: Path = ROOT) -> Iterator[tuple[Path, int, str, str]]:
    """Yield ``(file, line, name, value)`` for every marked figure under ``root``."""
    for path in documents(root):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in MARK.finditer(line):
                if not _in_code(match):
                    yield path, number, match["name"], match["value"]


def _in_code(match: re.Match[str]) -> bool:
    """Whether the mark stands in a code span (an example of the syntax, shown as text)."""
    line_start = match.string.rfind("\n", 0, match.start()) + 1
    return match.string.count("`", line_start, match.start()) % 2 == 1


def chosen(every: bool, names: list[str] | None = None) -> list[Source]:
    return [s for s in SOURCES if (names is None or s.name in names) and (every or s.fast)]


def check(root: Path = ROOT, sources: list[Source] | None = None, out: Any = sys.stdout) -> list[str]:
    """Return one line per problem: a marked figure a fresh run disagrees with, a marked name no source
    produces, a figure of a source run here that is marked nowhere."""
    sources = chosen(False) if sources is None else sources
    known = {s.name for s in SOURCES}
    problems, seen = [], set()
    found = list(marks(root))
    for path, line, name, _ in found:
        if name.split(".")[0] not in known:
            problems.append(f"{_where(path, line, root)}: figure {name} is produced by no source in {Path(__file__).name}")
    for source in sources:
        if source.missing():
            print(f"skipped {source.name}: needs {', '.join(source.missing())}", file=out)
            continue
        fresh = source.figures()
        for path, line, name, value in found:
            if name in fresh:
                seen.add(name)
                if not source.tolerance.agree(value, fresh[name]):
                    problems.append(f"{_where(path, line, root)}: figure {name} reads {value!r}; "
                                    f"`{source.command}` gives {fresh[name]!r} (tolerance {source.tolerance})")
        problems += [f"figure {name} of `{source.command}` is marked in no document" for name in fresh if name not in seen]
    return problems


def write(root: Path = ROOT, sources: list[Source] | None = None, out: Any = sys.stdout) -> list[str]:
    """Rewrite every marked figure of ``sources`` that a fresh run changes beyond its tolerance; return
    ``file:line name`` of each rewritten one."""
    fresh: dict[str, tuple[str, Tolerance]] = {}
    for source in chosen(False) if sources is None else sources:
        if source.missing():
            print(f"skipped {source.name}: needs {', '.join(source.missing())}", file=out)
            continue
        fresh.update({name: (value, source.tolerance) for name, value in source.figures().items()})
    written = []
    for path in documents(root):
        text = path.read_text(encoding="utf-8")

        def replace(match: re.Match[str]) -> str:
            new = fresh.get(match["name"])
            if new is None or _in_code(match) or new[1].agree(match["value"], new[0]):
                return match.group(0)
            line = text.count("\n", 0, match.start()) + 1
            written.append(f"{_where(path, line, root)}: {match['name']} {match['value']} -> {new[0]}")
            return f"<!-- figure: {match['name']} -->{new[0]}<!-- /figure -->"

        new_text = MARK.sub(replace, text)
        if new_text != text:
            path.write_text(new_text, encoding="utf-8")
    return written


def _where(path: Path, line: int, root: Path) -> str:
    return f"{path.relative_to(root)}:{line}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a figure differs")
    parser.add_argument("--all", action="store_true", help="also run the slow sources")
    parser.add_argument("--source", action="append", help="run only this source (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the sources and exit")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)  # a copy of the docs, in tests
    args = parser.parse_args(argv)
    if args.list:
        for s in SOURCES:
            print(f"{s.name:20} {'fast' if s.fast else 'slow'}  {s.tolerance}  {s.command}")
        return 0
    unknown = set(args.source or ()) - {s.name for s in SOURCES}
    if unknown:
        parser.error(f"no source named {', '.join(sorted(unknown))}; --list shows them")
    sources = chosen(args.all or bool(args.source), args.source)
    if args.check:
        problems = check(args.root, sources)
        for line in problems:
            print(line)
        print(f"{len(problems)} figure(s) out of date; run python scripts/doc_figures.py" if problems
              else f"figures of {', '.join(s.name for s in sources)} agree with a fresh run")
        return 1 if problems else 0
    for line in write(args.root, sources):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
