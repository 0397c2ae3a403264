"""Progress on stderr for long inputs: a refreshing line on a terminal, a line now and then."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self.started = time.monotonic()
        self.interval = 0.5 if self.tty else 10.0
        self.last = self.started + 1.5  # small inputs finish before any progress shows
        self.shown = False

    def update(self, lines: int, source: str) -> None:
        now = time.monotonic()
        if self.quiet or now - self.last < self.interval:
            return
        self.last = now
        rate = lines / max(now - self.started, 1e-9)
        text = f"{source}: {lines:,} lines, {rate:,.0f} lines/s"
        if self.tty:
            self.stream.write("\r" + text + "\033[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()
