"""History as replay reads it: JSON Lines decoded by EventDecoder, bad lines and repeats counted.

Blank lines are skipped; an invalid line (any dead letter) is counted and skipped; a repeated
`event_id`, or a second `deal_closed` for a known `deal_id`, of the same account is counted as a
duplicate and ignored (the first stands). Amounts are in the reporting currency. Unlike replay,
nothing is ever dropped from state: the whole history is compared.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import BinaryIO

from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.events.models import Churn, Deal


@dataclass
class History:
    deals: list[Deal] = field(default_factory=list)
    lines: int = 0  # non-blank lines read
    invalid: int = 0
    duplicates: int = 0
    _churns: dict[str, list[Churn]] = field(default_factory=dict)  # by account, in time order
    _times: dict[str, list[float]] = field(default_factory=dict)
    _event_ids: dict[str, set[str]] = field(default_factory=dict)
    _deal_ids: dict[str, set[str]] = field(default_factory=dict)

    @property
    def churns(self) -> int:
        return sum(len(found) for found in self._churns.values())

    def add(self, event: Deal | Churn) -> None:
        ids = self._event_ids.setdefault(event.account_id, set())
        if event.event_id in ids:
            self.duplicates += 1
            return
        if isinstance(event, Deal):
            deal_ids = self._deal_ids.setdefault(event.account_id, set())
            if event.deal_id in deal_ids:
                self.duplicates += 1
                return
            deal_ids.add(event.deal_id)
            self.deals.append(event)
        else:
            self._churns.setdefault(event.account_id, []).append(event)
        ids.add(event.event_id)

    def finish(self) -> None:
        """Orders each account's churns by time (ties in input order)."""
        for account, churns in self._churns.items():
            churns.sort(key=lambda churn: churn.time)
            self._times[account] = [churn.time for churn in churns]

    def first_churn_after(self, deal: Deal) -> Churn | None:
        """The account's first churn at or after the deal's close."""
        times = self._times.get(deal.account_id)
        if times is None:
            return None
        index = bisect_left(times, deal.time)
        return self._churns[deal.account_id][index] if index < len(times) else None


def read_history(paths: Iterable[str], decoder: EventDecoder) -> History:
    """Every event of the files (`-` is stdin), in the order given; OSError if one is unreadable."""
    history = History()
    with ExitStack() as stack:
        for path in paths:
            if path == "-":
                _feed(history, decoder, sys.stdin.buffer, "<stdin>")
            else:
                _feed(history, decoder, stack.enter_context(open(path, "rb")), path)
    history.finish()
    return history


def _feed(history: History, decoder: EventDecoder, stream: BinaryIO, name: str) -> None:
    for lineno, raw in enumerate(stream, 1):
        line = raw.rstrip(b"\r\n")
        if not line or line.isspace():
            continue  # blank lines are not events
        history.lines += 1
        event = decoder.decode(line, f"{name}:{lineno}")
        if isinstance(event, DeadLetter):
            history.invalid += 1
        else:
            history.add(event)
