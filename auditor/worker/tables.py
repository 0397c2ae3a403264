"""The engine's stores backed by faust tables, one store per source partition.

A faust table writes each change to the changelog partition of the event being processed, so a
store only ever touches keys of its own partition: the worker keeps one join stage per input
partition and one aggregate stage per repartition-topic partition. Each table value carries its
partition, so a store recovered from the changelog finds its own keys again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

from faust.serializers import codecs

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


class StateCodec(codecs.Codec):
    """Table values as JSON: {"p": partition, "s": state.to_dict()}."""

    def __init__(self, from_dict: Callable[[dict[str, Any]], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.from_dict = from_dict

    def _dumps(self, obj: Any) -> bytes:
        return json.dumps({"p": obj.partition, "s": obj.state.to_dict()},
                          separators=(",", ":")).encode()

    def _loads(self, s: bytes) -> Any:
        data = json.loads(s)
        return Entry(data["p"], self.from_dict(data["s"]))


ACCOUNT_CODEC = "auditor_account_state"
AGGREGATE_CODEC = "auditor_aggregate_state"
codecs.register(ACCOUNT_CODEC, StateCodec(AccountState.from_dict))
codecs.register(AGGREGATE_CODEC, StateCodec(AggregateState.from_dict))


class PartitionView(MutableMapping[str, S]):
    """The keys of one partition of a state table, as a plain mapping of states."""

    def __init__(self, table: Any, partition: int) -> None:
        self.table = table
        self.partition = partition

    def get(self, key: str, default: Any = None) -> Any:
        entry = self.table.get(key)
        return default if entry is None else entry.state

    def __getitem__(self, key: str) -> S:
        entry = self.table.get(key)
        if entry is None:
            raise KeyError(key)
        state: S = entry.state
        return state

    def __setitem__(self, key: str, state: S) -> None:
        self.table[key] = Entry(self.partition, state)  # logged to the changelog

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __iter__(self) -> Iterator[str]:
        p = self.partition
        return iter([k for k, entry in self.table.items() if entry.partition == p])

    def __len__(self) -> int:
        p = self.partition
        return sum(1 for entry in self.table.values() if entry.partition == p)


class PersistedWatermark:
    """A store's watermark, kept in a table so a restarted worker resumes with it. Written when
    it crosses a day boundary: expiry works in days, and a watermark one day behind after a
    restart only delays it."""

    def __init__(self, table: Any, key: str) -> None:
        self.table = table
        self.key = key
        self.value = float(table.get(key) or 0.0)

    def set(self, value: float) -> None:
        if int(value // DAY) != int(self.value // DAY):
            self.table[self.key] = value
        self.value = value


class TableAccountStore(MemoryAccountStore):
    """Its watermark is the smallest of the newest event times of each input topic seen:
    the worker reads its two topics at their own pace, and the faster one must not expire state
    that the slower one's events still need. (An input topic that has not delivered anything
    yet does not hold it back.)"""

    def __init__(self, table: Any, watermarks: Any, partition: int,
                 inputs: tuple[str, ...] = ("deal_closed", "account_churned")) -> None:
        self._inputs = {name: PersistedWatermark(watermarks, f"accounts/{partition}/{name}")
                        for name in inputs}
        super().__init__(PartitionView(table, partition))

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
        self._watermark = PersistedWatermark(watermarks, f"aggregates/{partition}")
        super().__init__(PartitionView(table, partition))

    @property
    def watermark(self) -> float:
        return self._watermark.value

    @watermark.setter
    def watermark(self, value: float) -> None:
        if value:  # the memory store's constructor starts from 0: keep the recovered one
            self._watermark.set(value)
