"""Raw input through the engine, with the one error policy every shell shares.

Bytes in; out either what the engine made of the event or a dead letter, counted once: as
invalid when the input is not a valid event, when the shell's own check refuses it (a Kafka
message on the wrong partition, say), or when the engine fails on it (`internal_error`: a bug
must neither stop the stream nor lose the event).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.events.models import Event
from auditor.metrics.counters import RunCounters

log = logging.getLogger(__name__)

R = TypeVar("R")
# A shell's check of a valid event against where it came from: (reason, detail) to refuse it.
Check = Callable[[Event], tuple[str, str] | None]


class Intake:
    def __init__(self, decoder: EventDecoder, counters: RunCounters) -> None:
        self.decoder = decoder
        self.counters = counters
        # Wall-clock time from the performance counter read for the processing time anyway:
        # one clock call an event, not two (the lag histogram's buckets start at a second).
        self._wall = time.time() - time.perf_counter()

    def take(self, raw: bytes, source: str, process: Callable[[Event], R],
             check: Check | None = None) -> R | DeadLetter:
        """`process` is the engine (replay) or a partition's join stage (worker)."""
        counters = self.counters
        started = time.perf_counter()
        event = self.decoder.decode(raw, source)
        if type(event) is DeadLetter:
            counters.dead_letter(event)
            return event
        assert not isinstance(event, DeadLetter)
        refused = check(event) if check is not None else None
        if refused is not None:
            return self._dead(DeadLetter(refused[0], refused[1], source, _text(raw),
                                         event.event_type))
        try:
            result = process(event)
        except Exception as exc:
            return self._dead(internal_error(exc, raw, source, event.event_type))
        ended = time.perf_counter()
        counters.processing.observe(ended - started)
        counters.lag.observe(self._wall + ended - event.time)
        return result

    def _dead(self, letter: DeadLetter) -> DeadLetter:
        self.counters.dead_letter(letter)
        return letter


def internal_error(exc: Exception, raw: bytes, source: str, event_type: str) -> DeadLetter:
    """The dead letter of a valid event the engine failed on (logged with its traceback)."""
    log.exception("auditing %s failed", source)
    return DeadLetter("internal_error", f"{type(exc).__name__}: {exc}", source, _text(raw),
                      event_type)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
