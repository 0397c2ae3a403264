"""The engine's stores backed by faust tables, one store per source partition.

faust assigns changelog partition p to the worker that owns input partition p (topics with the
same partition count are co-partitioned), so the worker keeps one join stage per input partition
and one aggregate stage per repartition-topic partition, each over the keys of its partition.
A store logs its writes to its own changelog partition, explicitly; each table value carries its
partition, so a store rebuilt from a recovered table finds its own keys again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

from auditor.engine.periods import DAY
from auditor.engine.state import AccountState, AggregateState
from auditor.engine.store import MemoryAccountStore, MemoryAggregateStore

S = TypeVar("S", AccountState, AggregateState)


class Entry(Generic[S]):
    """What a state table holds: one key's state and the partition it belongs to."""

    __slots__ = ("partition", "state")

    def __init__(self, partition: int, state: S) -> None:
        self.partition = partition
        self.state: S = state

    def __json__(self) -> dict[str, Any]:  # faust's JSON codec writes the changelog with this
        return {"p": self.partition, "s": self.state.to_dict()}


def _partition_of(value: Any) -> int:
    # A value recovered from the changelog is still the plain dict until first read.
    return int(value["p"]) if type(value) is dict else int(value.partition)


class PartitionView(MutableMapping[str, S]):
    """The keys of one partition of a state table, as a plain mapping of states.

    Writes are kept back and logged by `flush`, once per key however often it changed: the
    worker flushes after each batch of events, before their offsets can be committed. Each
    write names its changelog partition itself, so no faust event context is needed.
    """

    def __init__(self, table: Any, partition: int,
                 from_dict: Callable[[dict[str, Any]], S]) -> None:
        self.table = table
        self.data = _without_changelog(table)
        self.partition = partition
        self.from_dict: Callable[[dict[str, Any]], S] = from_dict
        self.dirty: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        entry = self.data.get(key)
        if entry is None:
            return default
        if type(entry) is dict:  # recovered: decode once, keep the object, log nothing
            entry = Entry(entry["p"], self.from_dict(entry["s"]))
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
        return iter([k for k, value in self.data.items() if _partition_of(value) == p])

    def __len__(self) -> int:
        p = self.partition
        return sum(1 for value in self.data.values() if _partition_of(value) == p)

    def flush(self) -> int:
        """Log every changed key to the changelog; the number of keys written."""
        written = len(self.dirty)
        for key in self.dirty:
            write(self.table, self.partition, key, self.data.get(key))
        self.dirty.clear()
        return written


def write(table: Any, partition: int, key: str, value: Any) -> None:
    """One changelog record (a tombstone for None) for `key`, in `partition`."""
    send = getattr(table, "send_changelog", None)
    if send is None:  # a plain dict in tests: nothing to log
        return
    if value is None:
        send(partition, key, None, value_serializer="raw")
    else:
        send(partition, key, value)


def _without_changelog(table: Any) -> Any:
    """The mapping under a faust table (its store), or a plain dict itself."""
    return getattr(table, "data", table)


class PersistedWatermark:
    """A store's watermark, kept in a table so a restarted worker resumes with it. Written when
    it crosses a day boundary: expiry works in days, and a watermark one day behind after a
    restart only delays it."""

    def __init__(self, table: Any, partition: int, key: str) -> None:
        self.table = table
        self.partition = partition
        self.key = key
        self.value = float(_without_changelog(table).get(key) or 0.0)

    def set(self, value: float) -> None:
        if int(value // DAY) != int(self.value // DAY):
            _without_changelog(self.table)[self.key] = value
            write(self.table, self.partition, self.key, value)
        self.value = value


class TableAccountStore(MemoryAccountStore):
    """Its watermark is the smallest of the newest event times of each input topic seen:
    the worker reads its two topics at their own pace, and the faster one must not expire state
    that the slower one's events still need. (An input topic that has not delivered anything
    yet does not hold it back.)"""

    def __init__(self, table: Any, watermarks: Any, partition: int,
                 inputs: tuple[str, ...] = ("deal_closed", "account_churned")) -> None:
        self._inputs = {
            name: PersistedWatermark(watermarks, partition, f"accounts/{partition}/{name}")
            for name in inputs
        }
        self.view: PartitionView[AccountState] = PartitionView(table, partition,
                                                               AccountState.from_dict)
        super().__init__(self.view)

    def observe(self, input_name: str, event_time: float) -> None:
        """Called by the worker with every event, before the join stage sees it."""
        newest = self._inputs[input_name]
        if event_time > newest.value:
            newest.set(event_time)

    @property
    def watermark(self) -> float:
        return min((w.value for w in self._inputs.values() if w.value), default=0.0)

    @watermark.setter
    def watermark(self, value: float) -> None:
        pass  # derived from what `observe` saw


class TableAggregateStore(MemoryAggregateStore):
    def __init__(self, table: Any, watermarks: Any, partition: int) -> None:
        self._watermark = PersistedWatermark(watermarks, partition, f"aggregates/{partition}")
        self.view: PartitionView[AggregateState] = PartitionView(table, partition,
                                                                 AggregateState.from_dict)
        super().__init__(self.view)

    @property
    def watermark(self) -> float:
        return self._watermark.value

    @watermark.setter
    def watermark(self, value: float) -> None:
        if value:  # the memory store's constructor starts from 0: keep the recovered one
            self._watermark.set(value)
