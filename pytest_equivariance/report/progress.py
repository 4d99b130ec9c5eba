"""The progress bar of a check that streams a data set: images, rate and time left, on stderr.

Drawn by :class:`pytest_equivariance.check.progress.Tracker`, which decides when a bar is wanted.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Rate(ProgressColumn):
    """Images per second, as rich measures the task's speed."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} img/s", style="progress.data.speed")


class ProgressBar:
    """A transient bar on stderr: ``description  ━━━━━  done/total images  rate  time left``."""

    def __init__(self, total: int | None, description: str) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
            _Rate(), TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )
        self._task: Any = self._progress.add_task(description, total=total)
        self._progress.start()

    def update(self, done: int) -> None:
        """Show ``done`` images done."""
        self._progress.update(self._task, completed=done)

    def stop(self) -> None:
        """Remove the bar from the terminal."""
        self._progress.stop()
