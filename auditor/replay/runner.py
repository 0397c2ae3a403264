"""The embedded default: JSON Lines files through the engine, in the order given.

Offsets do not exist here, but the rule of the worker holds: an event's alerts are written
before the next line is read, and a bad line is dead-lettered, never dropped.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import BinaryIO, TextIO

from auditor.engine.alerts import Alert
from auditor.engine.engine import DEFAULT_LATENESS_DAYS, AuditEngine
from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.intake import Intake
from auditor.metrics.counters import RunCounters
from auditor.replay.progress import Progress
from auditor.rules.pack import RulePack

AlertHandler = Callable[[Alert], None]
# The collector's thresholds while a run's state is frozen as it grows (`frozen_heap`).
FROZEN_HEAP_THRESHOLDS = (200_000, 50, 1000)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """For a run whose engine keeps most of what it makes: what is alive now is frozen, and
    the collector hardly ever runs; the run freezes what it makes as it goes (`gc.freeze()`).

    The engine allocates a few objects per event and keeps most of them for months of event
    time: a collector pass over that growing state, again and again, was a tenth of the run.
    A frozen object is still freed by reference counting; only cyclic garbage would wait, and
    the engine makes none (a replay with dead letters and late events leaves nothing for the
    collector)."""
    gc.freeze()
    old = gc.get_threshold()
    gc.set_threshold(*FROZEN_HEAP_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)


class Replay:
    """One replay run. `alerts` and `deadletters` receive each output as it is produced."""

    def __init__(
        self,
        rules: RulePack,
        counters: RunCounters | None = None,
        on_alert: AlertHandler | None = None,
        on_deadletter: Callable[[DeadLetter], None] | None = None,
        lateness_days: float = DEFAULT_LATENESS_DAYS,
        progress: Progress | None = None,
    ) -> None:
        self.counters = counters or RunCounters()
        self.counters.rules_reloaded(rules)
        self.engine = AuditEngine(rules, self.counters, lateness_days)
        self.decoder = EventDecoder(rules.currency)
        self.intake = Intake(self.decoder, self.counters)
        self.on_alert = on_alert or (lambda alert: None)
        self.on_deadletter = on_deadletter or (lambda letter: None)
        self.progress = progress
        self.lines = 0
        # A reloaded rule pack waiting for the feed loop to take it between two events.
        self.pending_rules: RulePack | None = None

    def set_rules(self, rules: RulePack) -> None:
        """New rules from the next event on; the engine's state is kept."""
        self.engine.set_rules(rules)
        self.decoder.set_currency(rules.currency)
        self.counters.rules_reloaded(rules)

    def run_files(self, paths: Iterable[str]) -> RunCounters:
        # `feed` freezes what is alive every few thousand lines, so a collection only ever
        # sees the objects made since.
        with frozen_heap():
            return self._run_files(paths)

    def _run_files(self, paths: Iterable[str]) -> RunCounters:
        with ExitStack() as stack:
            for path in paths:
                if path == "-":
                    self.feed(sys.stdin.buffer, "<stdin>")
                else:
                    self.feed(stack.enter_context(open(path, "rb")), path)
        return self.finish()

    def feed(self, stream: BinaryIO | Iterable[bytes], name: str) -> None:
        take, process = self.intake.take, self.engine.process
        on_alert, on_deadletter = self.on_alert, self.on_deadletter
        lineno = 0
        for lineno, raw in enumerate(stream, 1):
            if self.pending_rules is not None:
                rules, self.pending_rules = self.pending_rules, None
                self.set_rules(rules)
            line = raw.rstrip(b"\r\n")
            if not line or line.isspace():
                continue  # blank lines are not events
            result = take(line, f"{name}:{lineno}", process)
            if type(result) is DeadLetter:
                on_deadletter(result)
                continue
            for alert in result:  # type: ignore[union-attr]
                on_alert(alert)
            if lineno & 0x1FFF == 0:
                gc.freeze()
            if lineno & 0x3FFF == 0 and self.progress is not None:
                self.progress.update(self.lines + lineno, name)
        self.lines += lineno
        self.counters.watermark = self.engine.accounts.watermark

    def finish(self) -> RunCounters:
        """End of input: every aggregate period is evaluated once."""
        for alert in self.engine.flush():
            self.on_alert(alert)
        if self.progress is not None:
            self.progress.done()
        return self.counters


def write_jsonl(stream: TextIO) -> Callable[[Alert | DeadLetter], None]:
    def write(item: Alert | DeadLetter) -> None:
        stream.write(item.to_json())
        stream.write("\n")

    return write
