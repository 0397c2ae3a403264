"""The engine's stores backed by faust tables, one store per source partition.

faust assigns changelog partition p to the worker that owns input partition p (topics with the
same partition count are co-partitioned), so the worker keeps one join stage per input partition
and one aggregate stage per repartition-topic partition, each over the keys of its partition.
A store logs its writes to its own changelog partition, explicitly; each table value carries its
partition, so a store rebuilt from a recovered table finds its own keys again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any, Generic, NamedTuple, TypeVar

from auditor.engine.periods import DAY
from auditor.engine.state import AccountState, AggregateState
from auditor.engine.store import MemoryAccountStore, MemoryAggregateStore
from auditor.worker.records import (
    UnreadableRecord,
    read_state_value,
    read_watermark_value,
    state_value,
    watermark_value,
)

log = logging.getLogger(__name__)
S = TypeVar("S", AccountState, AggregateState)
# Told of a record that cannot be read: (what and where, the problem).
OnUnreadable = Callable[[str, str], None]


class ChangelogRecord(NamedTuple):
    table: str
    partition: int
    key: str
    value: Any  # None: a tombstone


class Changelog:
    """The changelog records of one table waiting to be sent: the caller sends them once the
    outputs they follow are delivered, and awaits them, before offsets may be committed."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.pending: list[ChangelogRecord] = []

    def write(self, partition: int, key: str, value: Any) -> None:
        self.pending.append(ChangelogRecord(self.table, partition, key, value))

    def drain(self) -> list[ChangelogRecord]:
        pending, self.pending = self.pending, []
        return pending


class Entry(Generic[S]):
    """What a state table holds: one key's state and the partition it belongs to."""

    __slots__ = ("partition", "state")

    def __init__(self, partition: int, state: S) -> None:
        self.partition = partition
        self.state: S = state

    def __json__(self) -> dict[str, Any]:  # faust's JSON codec writes the changelog with this
        return state_value(self.partition, self.state.to_dict())


def _partition_of(value: Any) -> int:
    # A value recovered from the changelog is still the plain dict until first read; one that
    # cannot be read belongs to no partition (and is reported when its key is read).
    if type(value) is dict:
        partition = value.get("p")
        return partition if type(partition) is int else -1
    return int(value.partition)


class PartitionView(MutableMapping[str, S]):
    """The keys of one partition of a state table, as a plain mapping of states.

    Writes are kept back and go to the changelog on `flush`, once per key however often it
    changed: the worker flushes after each batch of events, once its outputs are delivered.
    """

    def __init__(self, table: Any, changelog: Changelog, partition: int,
                 from_dict: Callable[[dict[str, Any]], S], on_unreadable: OnUnreadable) -> None:
        self.data = _without_changelog(table)
        self.changelog = changelog
        self.partition = partition
        self.from_dict: Callable[[dict[str, Any]], S] = from_dict
        self.on_unreadable = on_unreadable
        self.dirty: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        entry = self.data.get(key)
        if entry is None:
            return default
        if type(entry) is dict:  # recovered: decode once, keep the object, log nothing
            try:
                partition, state = read_state_value(entry)
                entry = Entry(partition, self.from_dict(state))
            except (UnreadableRecord, ValueError, TypeError, KeyError) as exc:
                # Policy: reported, and the key starts afresh rather than stopping the worker.
                self.on_unreadable(f"{self.changelog.table} state {key!r}", str(exc))
                del self.data[key]
                return default
            self.data[key] = entry
        return entry.state

    def __getitem__(self, key: str) -> S:
        state = self.get(key)
        if state is None:
            raise KeyError(key)
        return state  # type: ignore[no-any-return]

    def __setitem__(self, key: str, state: S) -> None:
        entry = self.data.get(key)
        if type(entry) is Entry and entry.state is state:
            pass  # the same object, changed in place
        else:
            self.data[key] = Entry(self.partition, state)
        self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.dirty.add(key)

    def __iter__(self) -> Iterator[str]:
        p = self.partition
        keys = [k for k, value in self.data.items() if _partition_of(value) == p]
        # Reading decodes what was recovered, and drops (reported) what cannot be read.
        return iter([k for k in keys if self.get(k) is not None])

    def __len__(self) -> int:
        p = self.partition
        return sum(1 for value in self.data.values() if _partition_of(value) == p)

    def flush(self) -> int:
        """Every changed key to the changelog; the number of keys written."""
        written = len(self.dirty)
        for key in self.dirty:
            self.changelog.write(self.partition, key, self.data.get(key))
        self.dirty.clear()
        return written


def _without_changelog(table: Any) -> Any:
    """The mapping under a faust table (its store), or a plain dict itself."""
    return getattr(table, "data", table)


class PersistedWatermark:
    """A watermark kept in a table so a restarted worker resumes with it. Written when it
    crosses a day boundary: expiry and settling work in days, and a watermark one day behind
    after a restart only delays them."""

    def __init__(self, table: Any, changelog: Changelog, partition: int, key: str,
                 on_unreadable: OnUnreadable) -> None:
        self.data = _without_changelog(table)
        self.changelog = changelog
        self.partition = partition
        self.key = key
        self.value = 0.0
        stored = self.data.get(key)
        if stored is not None:
            try:
                self.value = read_watermark_value(stored)
            except UnreadableRecord as exc:
                on_unreadable(f"watermark {key!r}", str(exc))

    def set(self, value: float) -> None:
        if int(value // DAY) != int(self.value // DAY):
            record = watermark_value(value)
            self.data[self.key] = record
            self.changelog.write(self.partition, self.key, record)
        self.value = value


class StoreContext(NamedTuple):
    """What a partition's store is built over: the tables, their changelogs, and the policy
    for records that cannot be read."""

    accounts: Any
    aggregates: Any
    watermarks: Any
    changelogs: dict[str, Changelog]
    on_unreadable: OnUnreadable


class SmallestWatermark:
    """The smallest of several watermarks, each persisted and only moving forward: 0 until every
    one has been heard from. A stage that must wait for all its sources reads this."""

    def __init__(self, context: StoreContext, partition: int, prefix: str,
                 names: Iterable[object]) -> None:
        self._marks = {
            name: PersistedWatermark(context.watermarks, context.changelogs["watermarks"],
                                     partition, f"{prefix}/{name}", context.on_unreadable)
            for name in names
        }

    def observe(self, name: object, value: float) -> None:
        mark = self._marks.get(name)  # an unknown source is not one this stage waits for
        if mark is not None and value > mark.value:
            mark.set(value)

    def __len__(self) -> int:
        return len(self._marks)

    @property
    def value(self) -> float:
        return min((m.value for m in self._marks.values()), default=0.0)


class TableAccountStore(MemoryAccountStore):
    """Its watermark is the smallest of the newest event times of each input topic seen:
    the worker reads its two topics at their own pace, and the faster one must not expire state
    that the slower one's events still need. An input topic that has not delivered anything to
    this partition yet holds it at 0 (nothing expires, nothing settles): reading all of one
    topic before the other must not drop what the other's events will join with.
    """

    def __init__(self, context: StoreContext, partition: int, aggregate_sources: int = 0,
                 inputs: tuple[str, ...] = ("deal_closed", "account_churned")) -> None:
        self._inputs = SmallestWatermark(context, partition, f"accounts/{partition}", inputs)
        # How far each aggregate stage has got (LedgerBeat): ledger entries wait for all.
        self._aggregates = SmallestWatermark(context, partition, f"ledger/{partition}/from",
                                             range(aggregate_sources))
        self.view: PartitionView[AccountState] = PartitionView(
            context.accounts, context.changelogs["accounts"], partition, AccountState.from_dict,
            context.on_unreadable)
        super().__init__(self.view)

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
        self._sources = SmallestWatermark(context, partition, f"aggregates/{partition}/from",
                                          range(sources))
        self.view: PartitionView[AggregateState] = PartitionView(
            context.aggregates, context.changelogs["aggregates"], partition,
            AggregateState.from_dict, context.on_unreadable)
        super().__init__(self.view)

    def observe(self, source: int, watermark: float) -> None:
        """A facts message from `source` said how far its join stage is."""
        self._sources.observe(source, watermark)

    @property
    def watermark(self) -> float:
        return self._sources.value

    @watermark.setter
    def watermark(self, value: float) -> None:
        pass  # derived from what `observe` saw
