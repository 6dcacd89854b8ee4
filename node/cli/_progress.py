"""A minimal progress bar on stderr for batch jobs.

Invariants: writes only to the given stream (stderr by default), never to
stdout (which carries ``--json`` output); redraws at most ten times a second
on a terminal, and only at every tenth of the work otherwise (log-friendly).
A line shows the share done, the count, the rate since the start (``unit``
per second) and the elapsed time.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    def __init__(
        self, total: int, label: str, stream: TextIO | None = None, *, unit: str = ""
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.done = 0
        self._last_draw = 0.0
        self._last_tenth = -1

    def update(self, done: int) -> None:
        self.done = done
        now = time.perf_counter()
        if self.tty:
            if now - self._last_draw >= 0.1 or done >= self.total:
                self._last_draw = now
                self._draw("\r", "")
        else:
            tenth = 10 * done // self.total if self.total else 10
            if tenth != self._last_tenth:
                self._last_tenth = tenth
                self._draw("", "\n")

    def _draw(self, prefix: str, suffix: str) -> None:
        frac = self.done / self.total if self.total else 1.0
        width = 30
        filled = int(frac * width)
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        per = f"{self.unit}/s" if self.unit else "/s"
        self.stream.write(
            f"{prefix}{self.label} [{bar}] {frac:6.1%} {self.done:,}/{self.total:,}"
            f" {rate:,.0f} {per} {elapsed:6.1f}s{suffix}"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self._draw("\r", "\n")
