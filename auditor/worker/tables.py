"""The engine's stores backed by faust tables, one store per source partition.

faust assigns changelog partition p to the worker that owns input partition p (topics with the
same partition count are co-partitioned), so the worker keeps one join stage per input partition
and one aggregate stage per repartition-topic partition, each over its own partition of the
state tables, held and logged as a `PartitionLog` (auditor/worker/state_log.py): one changelog
record per batch, with the partition's watermarks in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from auditor.engine.state import AccountState, AggregateState
from auditor.engine.store import MemoryAccountStore, MemoryAggregateStore
from auditor.worker.records import UnreadableRecord, read_watermark_value
from auditor.worker.state_log import Changelog, OnUnreadable, PartitionLog


class StoreContext(NamedTuple):
    """What a partition's store is built over: the tables, their changelogs, and the policy
    for records that cannot be read."""

    accounts: Any
    aggregates: Any
    watermarks: Any
    changelogs: dict[str, Changelog]
    on_unreadable: OnUnreadable
    snapshot_min_bytes: int | None = None  # None: the state log's default


class SmallestWatermark:
    """The smallest of several watermarks, each kept in a partition's log and only moving
    forward: 0 until every one has been heard from. A stage that must wait for all its sources
    reads this. A mark the log does not have yet is read from the watermarks table, where the
    previous format kept it."""

    def __init__(self, context: StoreContext, log: PartitionLog[Any], prefix: str,
                 names: Iterable[object]) -> None:
        self._log = log
        self._names = {name: f"{prefix}/{name}" for name in names}
        watermarks = getattr(context.watermarks, "data", context.watermarks)
        for mark in self._names.values():
            stored = watermarks.get(mark)
            if log.mark(mark) is None and stored is not None:
                try:
                    log.set_mark(mark, read_watermark_value(stored))
                except UnreadableRecord as exc:
                    context.on_unreadable(f"watermark {mark!r}", str(exc))

        self._value = self._smallest()

    def observe(self, name: object, value: float) -> None:
        mark = self._names.get(name)  # an unknown source is not one this stage waits for
        if mark is None:
            return
        before = self._log.mark(mark) or 0.0
        if value > before:
            self._log.set_mark(mark, value)
            if before <= self._value:  # it was the smallest: the smallest may have moved
                self._value = self._smallest()

    def __len__(self) -> int:
        return len(self._names)

    def _smallest(self) -> float:
        return min((self._log.mark(m) or 0.0 for m in self._names.values()), default=0.0)

    @property
    def value(self) -> float:
        return self._value  # read for every event: kept, not recomputed


class TableAccountStore(MemoryAccountStore):
    """Its watermark is the smallest of the newest event times of each input topic seen:
    the worker reads its two topics at their own pace, and the faster one must not expire state
    that the slower one's events still need. An input topic that has not delivered anything to
    this partition yet holds it at 0 (nothing expires, nothing settles): reading all of one
    topic before the other must not drop what the other's events will join with.
    """

    def __init__(self, context: StoreContext, partition: int, aggregate_sources: int = 0,
                 inputs: tuple[str, ...] = ("deal_closed", "account_churned")) -> None:
        self.log: PartitionLog[AccountState] = PartitionLog(
            context.accounts, context.changelogs["accounts"], partition, AccountState.from_dict,
            context.on_unreadable, min_snapshot_bytes=context.snapshot_min_bytes)
        self._inputs = SmallestWatermark(context, self.log, f"accounts/{partition}", inputs)
        # How far each aggregate stage has got (LedgerBeat): ledger entries wait for all.
        self._aggregates = SmallestWatermark(context, self.log, f"ledger/{partition}/from",
                                             range(aggregate_sources))
        super().__init__(self.log)

    def observe(self, input_name: str, event_time: float) -> None:
        """Called by the worker with every event, before the join stage sees it."""
        self._inputs.observe(input_name, event_time)

    def observe_ledger(self, source: int, watermark: float) -> None:
        self._aggregates.observe(source, watermark)

    @property
    def ledger_watermark(self) -> float:
        """The smallest over the aggregate stages: a deal's ledger entry is kept until every
        one is past it (a claim can come from any of them, and late: they settle periods by
        the slowest input partition, which this one may be far ahead of)."""
        return self._aggregates.value if len(self._aggregates) else self.watermark

    @property
    def watermark(self) -> float:
        return self._inputs.value

    @watermark.setter
    def watermark(self, value: float) -> None:
        pass  # derived from what `observe` saw


class TableAggregateStore(MemoryAggregateStore):
    """Its watermark is the smallest over the `sources` input partitions whose join stages send
    it facts: a period is settled only when every one of them has passed it, so the fastest
    partition cannot settle a period the others are still filling. A source not heard from yet
    holds it at 0."""

    def __init__(self, context: StoreContext, partition: int, sources: int) -> None:
        self.log: PartitionLog[AggregateState] = PartitionLog(
            context.aggregates, context.changelogs["aggregates"], partition,
            AggregateState.from_dict, context.on_unreadable, merge=AggregateState.merge_changes,
            min_snapshot_bytes=context.snapshot_min_bytes)
        self._sources = SmallestWatermark(context, self.log, f"aggregates/{partition}/from",
                                          range(sources))
        self._applied = f"aggregates/{partition}/applied"
        super().__init__(self.log)

    def observe(self, source: int, watermark: float) -> None:
        """A facts message from `source` said how far its join stage is."""
        self._sources.observe(source, watermark)

    def applied(self, source: int, topic: str) -> int:
        """The offset, in `topic`'s partition `source`, of the last event whose facts were
        applied here (-1: none yet)."""
        mark = self.log.mark(f"{self._applied}/{source}/{topic}")
        return -1 if mark is None else int(mark)

    def set_applied(self, source: int, topic: str, offset: int) -> None:
        # Logged in the partition's next record, with the periods these facts changed.
        self.log.set_mark(f"{self._applied}/{source}/{topic}", offset)

    @property
    def watermark(self) -> float:
        return self._sources.value

    @watermark.setter
    def watermark(self, value: float) -> None:
        pass  # derived from what `observe` saw
