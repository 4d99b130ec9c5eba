"""Progress of a check that streams a data set: a bar on stderr while it runs, nowhere else.

The bar (images done, rate, time left) appears only once the work has run for :data:`DELAY`
seconds, and only where a person watches: stderr is a terminal, not pytest's capture (which
replaces stderr), not an xdist worker, not a CI log (``CI`` set) and not a dumb terminal. It is
transient: it leaves nothing behind when the check ends. ``progress=False`` turns it off.

The core decides whether to show it; drawing it is the renderer's (``report.progress``), imported
only when a bar is shown, like the notebook display hooks of the result types.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

#: Seconds a check runs before its bar appears: shorter work shows nothing.
DELAY = 2.0


def wanted(progress: bool) -> bool:
    """Whether a bar may be shown: asked for, and stderr is a terminal a person watches."""
    if not progress:
        return False
    if os.environ.get("CI") or os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("TERM") == "dumb":
        return False
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class Tracker:
    """Counts images as a check streams them; draws a bar once the work has taken :data:`DELAY` seconds."""

    def __init__(self, total: int | None, description: str, *, enabled: bool) -> None:
        self.total = total
        self.description = description
        self.enabled = enabled
        self.done = 0
        self._start = time.monotonic()
        self._bar: Any = None

    def advance(self, images: int) -> None:
        """Record ``images`` more images done."""
        self.done += images
        if not self.enabled:
            return
        if self._bar is None:
            if time.monotonic() - self._start < DELAY:
                return
            from pytest_equivariance.report.progress import ProgressBar

            self._bar = ProgressBar(self.total, self.description)
        self._bar.update(self.done)

    def close(self) -> None:
        """Remove the bar, if one was drawn."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
