"""Offsets are committed only past events whose work is done.

faust acks a batch's events when the batch loop is left -- even when it is left by an exception
or a cancellation -- and commits acked offsets every second. So the worker does not rely on
acks: after a batch's outputs are delivered and its state is logged, it marks the batch's
offsets here, and faust's commit is held at the marks. An event whose outputs were never
delivered is therefore never committed past, whatever happened to the batch; a restarted worker
reads it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faust.transport.consumer import Consumer


class CommitGate:
    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = frozenset(topics)  # the topics gated; others are faust's own affair
        self._done: dict[Any, int] = {}  # TP -> the offset after the last one done

    def done(self, tp: Any, offset: int) -> None:
        """Every event of `tp` up to `offset` has its outputs delivered and its state logged."""
        if offset + 1 > self._done.get(tp, -1):
            self._done[tp] = offset + 1

    def limit(self, tp: Any) -> int | None:
        """The highest offset that may be committed for `tp` (-1: none), or None: not gated."""
        if tp.topic not in self.topics:
            return None
        return self._done.get(tp, -1)


_GATE_ATTRIBUTE = "auditor_commit_gate"
_installed = False


def install(app: Any, gate: CommitGate) -> None:
    """Hold `app`'s commits at `gate`'s marks (faust computes what to commit per partition in
    `Consumer._new_offset`, from the acked offsets; the gate hides those not done yet)."""
    global _installed
    setattr(app, _GATE_ATTRIBUTE, gate)
    if _installed:
        return
    _installed = True
    original = Consumer._new_offset

    def _new_offset(self: Any, tp: Any) -> int | None:
        gate = getattr(self.app, _GATE_ATTRIBUTE, None)
        limit = gate.limit(tp) if gate is not None else None
        if limit is None:
            return original(self, tp)
        acked = self._acked[tp]
        held = [offset for offset in acked if offset >= limit]
        if not held:
            return original(self, tp)
        # faust removes what it returns from `acked`: hide the offsets not done, then put them
        # back, so they are committed once they are done.
        acked[:] = [offset for offset in acked if offset < limit]
        try:
            return original(self, tp) if acked else None
        finally:
            acked.extend(held)
            acked.sort()

    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
