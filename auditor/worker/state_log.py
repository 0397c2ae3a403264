"""One partition's state as a log of batches: one changelog record per batch, not per key.

A faust table logs a record per key changed; the worker's batches change hundreds of keys each,
and every record costs faust a send (most of the worker's time went there). A `PartitionLog`
holds the states of one partition of a table and its watermarks (`marks`), and `flush` logs
what a batch changed as one record (in parts below the broker's message limit), keyed
`~log/<partition>/<seq>/<part>`; a state that can say what it gained (an aggregate period)
as that patch; a state larger than a part in pieces over several parts (`_pieces`). When the
records logged since the last snapshot outgrow it, the next flush logs every state instead (a
snapshot), then tombstones every older record of the partition: the log stays within about
three times the state, and compaction on the broker drops the rest.

Rebuilt from the table as recovered: the newest snapshot whose parts are all there, then the
deltas after it in order, each only if all its parts are there. Tombstones go only after the
snapshot is delivered (`cleanup`), so a crash between the two leaves the older snapshot and its
deltas to rebuild from. Per-key records of the previous format (`read_state_value`) are read
as a base under the log and tombstoned at its first snapshot, which a partition that has them
takes at its first flush.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, ItemsView, Iterator, MutableMapping
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, cast

import orjson

from auditor.engine.state import AccountState, AggregateState
from auditor.worker.records import (
    LogRecord,
    UnreadableRecord,
    encode_log_record,
    read_log_record,
    read_state_value,
)

S = TypeVar("S", AccountState, AggregateState)
# Told of a record that cannot be read: (what and where, the problem).
OnUnreadable = Callable[[str, str], None]
# A record's parts stay well under a broker's default 1 MiB message limit.
PART_MAX_BYTES = 512 * 1024
# A snapshot is taken when the records logged since the last one are SNAPSHOT_AFTER times as
# large as it was, and at least MIN_BYTES_BETWEEN_SNAPSHOTS (a small partition does not
# snapshot at every batch): the log holds at most about three times the state, and a
# snapshot's cost (its parts, and a tombstone for every older record) is spread over twice its
# bytes of changes.
SNAPSHOT_AFTER = 2
MIN_BYTES_BETWEEN_SNAPSHOTS = 1024 * 1024


class ChangelogRecord(NamedTuple):
    table: str
    partition: int
    key: str
    value: bytes | None  # None: a tombstone
    cleanup: bool = False  # sent only once the batch's other records are delivered


class Changelog:
    """The changelog records of one table waiting to be sent: the caller sends them once the
    outputs they follow are delivered, and awaits them, before offsets may be committed."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.pending: list[ChangelogRecord] = []

    def write(self, partition: int, key: str, value: bytes | None,
              cleanup: bool = False) -> None:
        self.pending.append(ChangelogRecord(self.table, partition, key, value, cleanup))

    def drain(self) -> list[ChangelogRecord]:
        pending, self.pending = self.pending, []
        return pending


def _encoded(key: str, state: AccountState | AggregateState | dict[str, Any] | None) -> bytes:
    value = state if state is None or isinstance(state, dict) else state.to_dict()
    return b"%b:%b" % (orjson.dumps(key), orjson.dumps(value))


def _parts(members: list[bytes], max_bytes: int) -> list[list[bytes]]:
    """Members grouped in order, each group's bytes under `max_bytes` (no member is larger:
    `_pieces`)."""
    parts: list[list[bytes]] = [[]]
    size = 0
    for member in members:
        if parts[-1] and size + len(member) + 1 > max_bytes:
            parts.append([])
            size = 0
        parts[-1].append(member)
        size += len(member) + 1
    return parts


class _Tracked(Protocol):
    """A state that can say what changed in it (AggregateState): logged as a patch."""

    def track_changes(self) -> None: ...

    def take_changes(self) -> dict[str, Any] | None: ...


# Merges a patch into a state's dict form (the state class's `merge_changes`).
Merge = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


class PartitionLog(MutableMapping[str, S], Generic[S]):
    """The states of one partition of a table, as a plain mapping, and its watermarks.

    With `merge`, a state changed in place is logged as the patch its `take_changes` gives
    (`{"+": patch}`), not whole: an aggregate period can hold thousands of churned deals and
    gains a few per batch. A state new to the log, or replaced by another object, is logged
    whole."""

    def __init__(self, table: Any, changelog: Changelog, partition: int,
                 from_dict: Callable[[dict[str, Any]], S], on_unreadable: OnUnreadable,
                 max_bytes: int = PART_MAX_BYTES, merge: Merge | None = None,
                 min_snapshot_bytes: int | None = None) -> None:
        self.data = getattr(table, "data", table)  # a faust table's store, or a dict
        self.changelog = changelog
        self.partition = partition
        self.from_dict: Callable[[dict[str, Any]], S] = from_dict
        self.on_unreadable = on_unreadable
        self.max_bytes = max_bytes
        self.min_snapshot_bytes = (MIN_BYTES_BETWEEN_SNAPSHOTS if min_snapshot_bytes is None
                                   else min_snapshot_bytes)
        self.prefix = f"~log/{partition}/"
        # A state as recovered stays the plain dict until first read.
        self.states: dict[str, S | dict[str, Any]] = {}
        self.marks: dict[str, float] = {}
        self.merge = merge
        self.dirty: set[str] = set()
        self.whole: set[str] = set()  # dirty keys to log whole (new, or a new object)
        self.marks_changed = False
        self.seq = 0  # the next record's
        self.logged: list[str] = []  # this partition's records in the table, to tombstone
        self.legacy: list[str] = []  # its per-key records of the previous format
        self.bytes_since_snapshot = 0
        self.snapshot_bytes = 0
        self._rebuild()

    # -- the mapping the engine's store works on

    def get(self, key: str, default: Any = None) -> Any:
        state = self.states.get(key)
        if state is None:
            return default
        if type(state) is dict:
            try:
                state = self.states[key] = self.from_dict(state)
                if self.merge is not None:
                    cast(_Tracked, state).track_changes()
            except (ValueError, TypeError, KeyError) as exc:
                self._afresh(key, str(exc))
                self.dirty.add(key)
                return default
        return state

    def __getitem__(self, key: str) -> S:
        state = self.get(key)
        if state is None:
            raise KeyError(key)
        return state  # type: ignore[no-any-return]

    def __setitem__(self, key: str, state: S) -> None:
        if self.states.get(key) is not state:
            self.whole.add(key)
            if self.merge is not None:
                cast(_Tracked, state).track_changes()
        self.states[key] = state
        self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        del self.states[key]
        self.dirty.add(key)

    def __iter__(self) -> Iterator[str]:
        # Reading decodes what was recovered, and drops (reported) what cannot be read.
        return iter([k for k in list(self.states) if self.get(k) is not None])

    def __len__(self) -> int:
        return len(self.states)

    def items(self) -> ItemsView[str, S]:
        # The stages walk every state at each settle check and metrics scrape: the dict's own
        # view, once what was recovered is decoded, not a lookup per key.
        for key in [k for k, state in self.states.items() if type(state) is dict]:
            self.get(key)
        return self.states.items()  # type: ignore[return-value]

    # -- watermarks

    def mark(self, name: str) -> float | None:
        return self.marks.get(name)

    def set_mark(self, name: str, value: float) -> None:
        if self.marks.get(name) != value:
            self.marks[name] = value
            self.marks_changed = True

    # -- the log

    def flush(self) -> int:
        """What changed since the last flush, as one record (in parts), or a snapshot; the
        number of keys logged."""
        if not self.dirty and not self.marks_changed:
            return 0
        seq, self.seq = self.seq, self.seq + 1
        snapshot = bool(self.legacy) or self.bytes_since_snapshot >= max(
            SNAPSHOT_AFTER * self.snapshot_bytes, self.min_snapshot_bytes)
        keys = list(self.states) if snapshot else sorted(self.dirty)
        members = [piece for k in keys
                   for piece in _pieces(k, self._member(k, snapshot), self.max_bytes)]
        parts = _parts(members, self.max_bytes)
        written, size = [], 0
        for i, part in enumerate(parts):
            key = f"{self.prefix}{seq}/{i}"
            value = encode_log_record(seq, snapshot, i, len(parts), self.marks, part)
            self.data[key] = value
            self.changelog.write(self.partition, key, value)
            written.append(key)
            size += len(value)
        if snapshot:
            for key in self.logged + self.legacy:
                self.data.pop(key, None)
                self.changelog.write(self.partition, key, None, cleanup=True)
            self.logged, self.legacy = written, []
            self.snapshot_bytes, self.bytes_since_snapshot = size, 0
        else:
            self.logged += written
            self.bytes_since_snapshot += size
        self.dirty.clear()
        self.whole.clear()
        self.marks_changed = False
        return len(keys)

    def _member(self, key: str, snapshot: bool) -> bytes:
        state = self.states.get(key)
        if self.merge is None or state is None or type(state) is dict:
            return _encoded(key, state)
        patch = cast(_Tracked, state).take_changes()  # taken in any case: logged now
        if snapshot or key in self.whole or patch is None:
            return _encoded(key, state)
        return b'%b:{"+":%b}' % (orjson.dumps(key), orjson.dumps(patch))

    def _rebuild(self) -> None:
        """The partition's states and marks from the table's records."""
        records: list[tuple[str, LogRecord]] = []
        sizes: dict[str, int] = {}
        legacy: dict[str, dict[str, Any]] = {}
        for key, value in list(self.data.items()):
            if not isinstance(key, str):
                continue
            if key.startswith(self.prefix):
                self.logged.append(key)
                try:
                    records.append((key, read_log_record(value)))
                    sizes[key] = len(value if isinstance(value, bytes) else orjson.dumps(value))
                except UnreadableRecord as exc:
                    self.on_unreadable(f"{self.changelog.table} log record {key!r}", str(exc))
            elif not key.startswith("~log/") and _legacy_partition(value) == self.partition:
                try:
                    legacy[key] = read_state_value(value)[1]
                except UnreadableRecord as exc:
                    self.on_unreadable(f"{self.changelog.table} state {key!r}", str(exc))
                self.legacy.append(key)
        records.sort(key=lambda item: (item[1].seq, item[1].part))
        self.seq = max((r.seq for _, r in records), default=-1) + 1
        parts: dict[int, set[int]] = {}
        for _, r in records:
            parts.setdefault(r.seq, set()).add(r.part)
        whole = {r.seq for _, r in records if len(parts[r.seq]) == r.parts}
        base = max((r.seq for _, r in records if r.snapshot and r.seq in whole), default=-1)
        if base < 0:
            self.states.update(legacy)
        pieces = _Pieces()
        for record_key, r in records:
            if r.seq < base or (r.seq == base) != r.snapshot or r.seq not in whole:
                # Older than the snapshot, or a record cut short (by a crash between its
                # parts' sends): a batch's changes apply whole or not at all, as its marks
                # say (the aggregate stage's marks tell which facts it applied).
                continue
            self.marks.update(r.marks)
            if r.seq > base:
                self.bytes_since_snapshot += sizes[record_key]
            else:
                self.snapshot_bytes += sizes[record_key]
            for key, state in r.states.items():
                if state is not None and PIECE in state:  # a piece of a state too large
                    try:
                        state = pieces.add(r.seq, key, state)
                    except (ValueError, TypeError, KeyError, IndexError) as exc:
                        self._afresh(key, str(exc))
                        continue
                    if state is None:
                        continue  # its other pieces are in the record's other parts
                if state is None:
                    self.states.pop(key, None)
                elif "+" in state:  # a patch of the state logged before it
                    self._patch(key, state["+"])
                else:
                    self.states[key] = state
        for key in pieces.unfinished():
            self._afresh(key, "pieces missing")

    def _patch(self, key: str, patch: Any) -> None:
        base = self.states.get(key)
        try:
            if self.merge is None or type(base) is not dict or type(patch) is not dict:
                raise ValueError("a patch without a logged state to apply it to")
            self.states[key] = self.merge(base, patch)
        except (ValueError, TypeError, KeyError) as exc:
            self._afresh(key, str(exc))

    def _afresh(self, key: str, problem: str) -> None:
        # Policy: a state that cannot be read is reported, and its key starts afresh rather
        # than stopping the worker.
        self.on_unreadable(f"{self.changelog.table} state {key!r}", problem)
        self.states.pop(key, None)


# A state whose JSON is larger than a part is logged as pieces (`_pieces`), each
# `{PIECE: [index, count], "b64": <base64 of a slice of the JSON>}`, in the parts of one
# record; rebuilt from all of them (`_Pieces`).
PIECE = "~piece"


def _pieces(key: str, member: bytes, max_bytes: int) -> list[bytes]:
    """`member` (`"key":value`), or its value in pieces that each fit a part."""
    if len(member) <= max_bytes:
        return [member]
    name = orjson.dumps(key)
    value = member[len(name) + 1:]
    size = max(1, (max_bytes - len(name) - 64) * 3 // 4)  # base64 grows 4/3
    count = -(-len(value) // size)
    return [b'%b:{"%b":[%d,%d],"b64":"%b"}' % (name, PIECE.encode(), i, count,
                                               base64.b64encode(value[i * size:(i + 1) * size]))
            for i in range(count)]


class _Pieces:
    """The pieces of states too large for a part, as a rebuild meets them."""

    def __init__(self) -> None:
        self.held: dict[tuple[int, str], list[bytes | None]] = {}

    def add(self, seq: int, key: str, piece: dict[str, Any]) -> dict[str, Any] | None:
        """The state, once this was its last piece; None until then. ValueError, TypeError or
        KeyError for a piece that is not one."""
        index, count = piece[PIECE]
        held = self.held.setdefault((seq, key), [None] * count)
        held[index] = base64.b64decode(piece["b64"])
        if any(p is None for p in held):
            return None
        del self.held[seq, key]
        state = orjson.loads(b"".join(p for p in held if p is not None))
        if state is not None and type(state) is not dict:
            raise TypeError("a state is neither an object nor null")
        return state

    def unfinished(self) -> list[str]:
        return sorted({key for _, key in self.held})


def _legacy_partition(value: Any) -> int | None:
    # A previous-format value carries its partition; anything else is not one.
    if type(value) is dict:
        partition = value.get("p")
        return partition if type(partition) is int else None
    return None
