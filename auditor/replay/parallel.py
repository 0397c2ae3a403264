"""`auditor replay --jobs N`: the engine's dataflow across N processes, with the output of one.

The shape is the worker's. N shards, child processes, each run a join stage over the accounts it
owns and an aggregate stage over the periods it owns (by a hash of the account, and of the
period's key). The parent reads the input in blocks and sends every block to every shard, which
keeps its own accounts' lines. A shard's join stage sends each fact to the shard owning its
period, through the parent (as bytes it does not read); the money of an aggregate finding goes
back as claims to the shards holding the deals' ledgers. The parent writes the alerts and dead
letters in input order, and makes every update the shards' stages make to the run's counters
at its event's turn: the outputs are `Replay`'s (one process) byte for byte, in the same order,
and the counters hold the same numbers -- sums of floats included, added up in the same order
(only the timing histograms differ, as they do from run to run).

Everything one process decides from the watermark -- the newest time of the valid, non-duplicate
events so far: an event is late, state expires, a period leaves the horizon -- is decided here
from the same global watermark, never a shard's own. Whether a line moves the watermark is known
only once it is decoded (an invalid event does not) and looked up in its account's state (a
duplicate does not), so each block goes in steps:

1. Decode: each shard decodes its lines and says each one's event time (none for a dead letter)
   and which ones may be duplicates (their id is in the account's state already, or on a line
   before in the block).
2. Join: the parent, which now knows the watermark before and after every line, sends each
   shard the watermark to audit each of its lines at and where its state expires (the join
   stage expires in whole days: each crossing, with its exact cutoff, falls between two given
   lines). Each shard answers with its lines' metric updates and sends its facts on.
3. Aggregate: each shard applies the facts of its periods in input order, and evaluates what
   leaves the horizon at exactly the lines where one process's aggregate stage would look
   (`AggregateStage.observe`: where the watermark passes the end of the earliest period held,
   + the horizon and the allowed lateness). The parent knows them from the ends of the periods
   held, which the shards report. A period's place in a shard's store is its place in one
   process's store (both in order of the fact that opened it), so what an evaluation yields,
   merged across the shards in that order, comes out as from one process.

A possible duplicate newer than the watermark ends the join step there: its shard tells the
watermark after it. Claims must be applied where one process applies them: after their event's
join work and before its expiry or any later event, so the join step also ends at every line
where an evaluation may find something; the shards wait there for the claims. A line so late
that a period it opens could be evaluated before the parent knows of it (older than the horizon
and the allowed lateness) ends the join step too. None of these is frequent: a period leaves the
horizon once, and duplicates repeat old events.

Blocks are pipelined: while the shards join one block, the parent writes the outputs of the one
before; the shards then decode the next block and aggregate the one they joined, while the
parent plans the next.

The shards are forked: they inherit the compiled rules (which cannot be pickled) and start at
once. The parent forks them before it starts any thread of its own (a sender per shard), and
`auditor replay` runs in one process whenever a thread of its own may be running (a serving
replay that reloads its rules), so no lock of another thread is ever copied held. Hot reload is
not supported across processes.
"""

from __future__ import annotations

import gc
import logging
import marshal
import math
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from operator import itemgetter
from typing import Any, BinaryIO

from auditor.engine.aggregate_stage import AggregateStage, LiveValue
from auditor.engine.alerts import Alert
from auditor.engine.engine import DEFAULT_LATENESS_DAYS, AuditEngine, claims_of
from auditor.engine.facts import AggregateFact, fact_of
from auditor.engine.join_stage import Claim, JoinStage
from auditor.engine.periods import DAY
from auditor.engine.retention import RetentionValue
from auditor.engine.state import AggregateState
from auditor.engine.store import MemoryAccountStore, MemoryAggregateStore
from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.events.models import Deal, Event
from auditor.intake import internal_error
from auditor.metrics.counters import LAG_BUCKETS, PROCESSING_BUCKETS, Histogram, RunCounters
from auditor.replay.progress import Progress
from auditor.replay.runner import FROZEN_HEAP_THRESHOLDS, AlertHandler, Replay, frozen_heap
from auditor.rules.pack import RulePack

log = logging.getLogger(__name__)

# Bytes of input per block: about a thousand lines, few enough that what a step makes is still
# in the caches for the next, enough that the messages between processes are few.
BLOCK_BYTES = 512 * 1024
# Under this much input the default is one process: forking the others, and the steps' round
# trips, cost about what they save.
MIN_PARALLEL_BYTES = 16 * 1024 * 1024
MAX_JOBS = 64

_NAN = math.nan
_INF = math.inf
_IDX_BITS = 32  # a fact's order: its line's position << _IDX_BITS | its index among the line's
_LAST = -1  # the position of end-of-input evaluations (flush)

# Messages to a shard.
_LINES, _JOIN, _AGGREGATE, _FLUSH, _FINISH = range(5)
# Metric updates made in a shard, made by the parent into the run's counters in input order.
_EVENT, _PAID, _ALERT, _FLAGGED, _EXCEPTED, _RETENTION = range(6)

Op = tuple[Any, ...]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def default_jobs(paths: Iterable[str]) -> int:
    """The usable cores; 1 for stdin (a live pipe wants each output as its line comes) and for
    inputs under MIN_PARALLEL_BYTES (start-up costs about what the other processes save). On
    two free cores two processes run the benchmark stream 1.47x faster than one (README,
    Performance); on cores busy with other work they are slower: `--jobs 1` then."""
    paths = list(paths)
    if "-" in paths or not can_fork():
        return 1
    size = 0
    for path in paths:
        with suppress(OSError):  # the replay says so, when it gets to it
            size += os.path.getsize(path)
    cores = usable_cores()
    return cores if size >= MIN_PARALLEL_BYTES else 1


def resolve_jobs(requested: int | None, paths: Iterable[str]) -> int:
    """`--jobs` as given (at most MAX_JOBS), or its default; 1 where processes cannot be
    forked."""
    if requested is None:
        return default_jobs(paths)
    return max(1, min(requested, MAX_JOBS)) if can_fork() else 1


def make_replay(rules: RulePack, jobs: int = 1, counters: RunCounters | None = None,
                on_alert: AlertHandler | None = None,
                on_deadletter: Callable[[DeadLetter], None] | None = None,
                lateness_days: float = DEFAULT_LATENESS_DAYS,
                progress: Progress | None = None) -> Replay | ParallelReplay:
    """A `Replay`, or with more than one job a `ParallelReplay`: the same outputs either way."""
    if jobs > 1:
        return ParallelReplay(rules, counters, on_alert, on_deadletter, lateness_days, progress,
                              jobs=jobs)
    return Replay(rules, counters, on_alert, on_deadletter, lateness_days, progress)


# ---------------------------------------------------------------------------- routing

_KEY = b'"account_id"'
_KEY_LEN = len(_KEY)
_BLANK = frozenset(b" \t\r\n")  # JSON's whitespace


def account_key(line: bytes) -> bytes | None:
    """The account_id of a line, as its bytes, when a scan tells it for sure; None when only the
    decoder can. b"" for a line that cannot be an event (no account_id key at all).

    Sure means: the key occurs once and the line has no backslash, so no quote is escaped and
    every `"` opens or closes a string; `"account_id"`, a colon and a string are then the key and
    its value -- or the line is not valid JSON, or the key is not at the top level, and the line
    is a dead letter whichever shard decodes it.
    """
    at = line.find(_KEY)
    slash = b"\\" in line
    if at < 0:
        return None if slash else b""
    if slash or line.find(_KEY, at + _KEY_LEN) >= 0:
        return None
    i = at + _KEY_LEN
    n = len(line)
    while i < n and line[i] in _BLANK:
        i += 1
    if i == n or line[i] != 0x3A:  # :
        return None
    i += 1
    while i < n and line[i] in _BLANK:
        i += 1
    if i == n or line[i] != 0x22:  # "
        return None
    end = line.find(b'"', i + 1)
    return None if end < 0 else line[i + 1:end]


def owner_of(key: bytes, jobs: int) -> int:
    """The shard of an account (its id in UTF-8) or of an aggregate period (its key)."""
    return zlib.crc32(key) % jobs


def owner_of_account(account_id: str, jobs: int) -> int:
    return owner_of(account_id.encode("utf-8", "surrogatepass"), jobs)


def split_lines(block: bytes, first_lineno: int) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a block's lines, as `Replay.feed` reads a file: blank ones
    skipped, the line ends stripped."""
    parts = block.split(b"\n")
    if parts[-1] == b"":
        parts.pop()  # the block's last newline
    for offset, raw in enumerate(parts):
        line = raw.rstrip(b"\r\n")
        if line and not line.isspace():
            yield first_lineno + offset, line


# ---------------------------------------------------------------------------- the parent


@dataclass(eq=False, slots=True)
class _Block:
    """A block of one file's lines, by position (its non-blank lines, in order), with what the
    shards said of them."""

    name: str
    first_lineno: int
    data: bytes
    base: int  # the global position of its first line
    size: int = 0
    shard_of: bytearray = field(default_factory=bytearray)
    times: list[float] = field(default_factory=list)  # an event's time; NaN: a dead letter
    maybe: set[int] = field(default_factory=set)  # possible duplicates
    after: list[float] = field(default_factory=list)  # the watermark after each line
    before: float = 0.0  # the watermark before its first line

    def line(self, position: int) -> tuple[str, bytes]:
        """The source and bytes of a line (to dead-letter it: rarely)."""
        for index, (lineno, line) in enumerate(split_lines(self.data, self.first_lineno)):
            if index == position:
                return f"{self.name}:{lineno}", line
        raise IndexError(position)


@dataclass(eq=False, slots=True)
class _Segment:
    """Lines [start, end) of a block, planned and sent to the join step."""

    block: _Block
    start: int
    end: int
    stop: bool  # the parent applies it before it plans on
    uncertain: bool  # its last line may be a duplicate newer than the watermark
    joined: list[Any] = field(default_factory=list)  # each shard's answer to the join step

    def earliest(self) -> float:
        """The earliest event time of its lines (inf if none)."""
        return min((t for t in self.block.times[self.start:self.end] if t == t), default=_INF)


class ShardFailed(RuntimeError):
    """A shard process failed or exited; the message has its traceback."""


class _Engine(AuditEngine):
    """The parent's engine: its rules, and the live values the shards' aggregate stages had at
    the end of input. Its own stages are not used (retention_values is empty after a run, as
    an engine's is once flushed)."""

    shard_live: list[LiveValue]

    def live_values(self) -> list[LiveValue]:
        return self.shard_live


class ParallelReplay:
    """`Replay` across `jobs` shard processes: the same constructor (plus `jobs`), attributes
    and outputs."""

    def __init__(
        self,
        rules: RulePack,
        counters: RunCounters | None = None,
        on_alert: AlertHandler | None = None,
        on_deadletter: Callable[[DeadLetter], None] | None = None,
        lateness_days: float = DEFAULT_LATENESS_DAYS,
        progress: Progress | None = None,
        jobs: int = 2,
        block_bytes: int = BLOCK_BYTES,
    ) -> None:
        if not 1 <= jobs <= MAX_JOBS:
            raise ValueError(f"jobs must be 1 to {MAX_JOBS}, not {jobs}")
        self.counters = counters or RunCounters()
        self.counters.rules_reloaded(rules)
        self.engine = _Engine(rules, self.counters, lateness_days)
        self.engine.shard_live = []
        self.rules = rules
        self.lateness_days = lateness_days
        self.on_alert = on_alert or (lambda alert: None)
        self.on_deadletter = on_deadletter or (lambda letter: None)
        self.progress = progress
        self.jobs = jobs
        self.block_bytes = block_bytes
        self.lines = 0
        self.pending_rules: RulePack | None = None  # no hot reload: always None
        self._running = False
        # The plan: the global watermark after the last line planned, and the last day the
        # shards' account stores have expired through (JoinStage.expire, MemoryAccountStore).
        self._watermark = 0.0
        self._expired_through = -(2**62)
        self._span = self.engine.join.horizon + self.engine.join.lateness
        aggregate = self.engine.aggregate
        self._horizon, self._lateness = aggregate.horizon, aggregate.lateness
        # The ends of the periods the shards hold, with how many end there (the evaluations
        # planned so far taken out), and whether the aggregate stage has looked yet.
        self._ends: dict[float, int] = {}
        self._earliest_end = _INF
        self._looked = False
        self._sweeps_due: list[float] = []  # expiry at the last stop, after its claims
        self._claims_due: list[Claim] = []
        # The last segment joined but not aggregated yet: its outputs are written once the
        # next block's join step is under way.
        self._pending: _Segment | None = None
        self._positions = 0  # lines read so far

    def set_rules(self, rules: RulePack) -> None:
        """New rules after a run (a serving replay's reload); not during one."""
        if self._running:
            raise RuntimeError("rules cannot be reloaded while a parallel replay runs")
        self.rules = rules
        self.engine.set_rules(rules)
        self.counters.rules_reloaded(rules)

    def run_files(self, paths: Iterable[str]) -> RunCounters:
        # As Replay.run_files: the shards inherit the frozen heap and freeze theirs after every
        # step.
        with frozen_heap():
            return self._run_pool(paths)

    def _run_pool(self, paths: Iterable[str]) -> RunCounters:
        self._running = True
        try:
            pool = _Pool(self.rules, self.lateness_days, self.jobs)
            done = False
            try:
                self._feed(pool, self._blocks(paths))
                self._finish(pool)
                done = True
            finally:
                pool.close(done)
        finally:
            self._running = False
        return self.counters

    # Reading.
    def _blocks(self, paths: Iterable[str]) -> Iterator[_Block]:
        with ExitStack() as stack:
            for path in paths:
                stream: BinaryIO
                if path == "-":
                    stream, name = sys.stdin.buffer, "<stdin>"
                else:
                    stream, name = stack.enter_context(open(path, "rb")), path
                lineno = 1
                while True:
                    data = stream.read(self.block_bytes)
                    if not data:
                        break
                    if not data.endswith(b"\n"):
                        data += stream.readline()
                    yield _Block(name, lineno, data, self._positions)
                    lineno += data.count(b"\n")
                self.lines += lineno - 1

    # The steps.
    def _feed(self, pool: _Pool, blocks: Iterator[_Block]) -> None:
        # A file that cannot be read ends the input there, as for Replay: what was read before
        # is audited and written out (but not flushed), then the error is raised.
        unreadable: OSError | None = None
        block = next(blocks, None)
        if block is not None:
            self._send_lines(pool, block)
            self._decoded(pool, block)
        while block is not None:
            start, segment = 0, None
            while start < block.size:
                segment = self._join(pool, block, start)
                if not segment.stop:
                    break
                self._aggregate(pool, segment)
                start = segment.end
            try:
                following = next(blocks, None)
            except OSError as exc:
                following, unreadable = None, exc
            if following is not None:  # the shards decode it once they have joined this one
                self._send_lines(pool, following)
            if segment is not None and not segment.stop:
                self._finish_pending(pool)  # meanwhile, the outputs of the segment before
                self._joined(pool, segment)
                self._plan_aggregate(pool, segment)
                self._pending = segment
            if self.progress is not None:
                self.progress.update(self._positions, block.name)
            if following is not None:
                self._decoded(pool, following)
            block = following
        self._finish_pending(pool)
        if unreadable is not None:
            raise unreadable

    def _send_lines(self, pool: _Pool, block: _Block) -> None:
        for shard in range(self.jobs):
            pool.send(shard, (_LINES, block.name, block.first_lineno, block.data))

    def _decoded(self, pool: _Pool, block: _Block) -> None:
        """Step 1's answers: every shard's lines, times and possible duplicates."""
        answers = [pool.recv(shard) for shard in range(self.jobs)]
        size = answers[0][0]
        shard_of = bytearray(size)
        times: list[float] = [_NAN] * size
        for shard, (_, positions, shard_times, maybe) in enumerate(answers):
            for position, t in zip(positions, shard_times, strict=True):
                shard_of[position] = shard
                times[position] = t
            block.maybe.update(positions[i] for i in maybe)
        block.size, block.shard_of, block.times = size, shard_of, times
        block.after = [_NAN] * size
        self._positions += size

    def _join(self, pool: _Pool, block: _Block, start: int) -> _Segment:
        """Plans step 2 from line `start` on and sends it: to the end of the block, or to a
        stop."""
        jobs = self.jobs
        marks: list[array[float]] = [array("d") for _ in range(jobs)]
        sweeps: list[list[tuple[int, float]]] = [[] for _ in range(jobs)]
        for cutoff in self._sweeps_due:  # at the last stop, after its claims
            for shard_sweeps in sweeps:
                shard_sweeps.append((0, cutoff))
        self._sweeps_due = []
        claims: list[list[tuple[int, Claim]]] = [[] for _ in range(jobs)]
        for k, claim in enumerate(self._claims_due):
            claims[owner_of_account(claim.account_id, jobs)].append((k, claim))
        self._claims_due = []
        # The earliest time of a line whose facts the parent has not heard of (a period it
        # opens ends after it).
        unheard = self._pending.earliest() if self._pending is not None else _INF
        horizon, lateness, span = self._horizon, self._lateness, self._span
        watermark, expired = self._watermark, self._expired_through
        if start == 0:
            block.before = watermark
        times, shard_of, maybe, after = block.times, block.shard_of, block.maybe, block.after
        end = block.size
        stop = uncertain = False
        position = start
        while position < end:
            i = position
            t = times[i]
            if t != t:  # a dead letter: the engine never sees it
                marks[shard_of[i]].append(watermark)
                after[i] = watermark
                position += 1
                continue
            if t > watermark:
                if unheard < t - horizon - lateness + DAY:  # (a day to spare)
                    # Evaluations here could reach a period the parent has not heard of yet.
                    if i > start:
                        stop = True
                        break
                    self._finish_pending(pool)  # hear of it now
                    unheard = _INF
                if i in maybe:  # a duplicate does not move it: the shard will say
                    marks[shard_of[i]].append(watermark)
                    position += 1
                    stop = uncertain = True
                    break
                marks[shard_of[i]].append(watermark)
                position += 1
                after[i] = watermark = t
                # Whether the aggregate stage may evaluate periods after this line.
                evaluates = self._earliest_end < watermark - horizon - lateness
                cutoff = watermark - span  # JoinStage.expire
                day = int(cutoff // DAY) - 1
                if day > expired:  # the account stores expire through a new day
                    expired = day
                    if evaluates:
                        self._sweeps_due.append(cutoff)
                    else:
                        for shard, shard_sweeps in enumerate(sweeps):
                            shard_sweeps.append((len(marks[shard]), cutoff))
                if evaluates:
                    stop = True
                    break
            else:
                marks[shard_of[i]].append(watermark)
                after[i] = watermark
                position += 1
            if t < unheard:
                unheard = t
        self._watermark, self._expired_through = watermark, expired
        for shard in range(jobs):
            pool.send(shard, (_JOIN, claims[shard], sweeps[shard], marks[shard]))
        return _Segment(block, start, position, stop, uncertain)

    def _joined(self, pool: _Pool, segment: _Segment) -> None:
        """Step 2's answers; the watermark after a possible duplicate, as its shard found it."""
        segment.joined = [pool.recv(shard) for shard in range(self.jobs)]
        if segment.uncertain:
            block, last = segment.block, segment.end - 1
            watermark = segment.joined[block.shard_of[last]][2]
            if watermark > self._watermark:
                self._watermark = watermark
                cutoff = watermark - self._span
                day = int(cutoff // DAY) - 1
                if day > self._expired_through:
                    self._expired_through = day
                    self._sweeps_due.append(cutoff)
            block.after[last] = self._watermark

    def _plan_aggregate(self, pool: _Pool, segment: _Segment) -> None:
        """Plans step 3 and sends it, with each shard's facts: the lines where the watermark
        moves and the aggregate stage looks (AuditEngine.process, AggregateStage.observe)."""
        block = segment.block
        after, base = block.after, block.base
        watermark = after[segment.start - 1] if segment.start else block.before
        horizon, lateness = self._horizon, self._lateness
        looks: list[tuple[int, float]] = []
        for i in range(segment.start, segment.end):
            moved = after[i]
            if moved <= watermark:
                continue
            watermark = moved
            if self._looked and moved < self._earliest_end + horizon + lateness:
                continue
            self._looked = True
            looks.append((base + i, moved))
            cutoff = moved - horizon - lateness  # AggregateStage.advance drops what ends before
            if self._earliest_end < cutoff:
                for gone in [end for end in self._ends if end < cutoff]:
                    del self._ends[gone]
                self._earliest_end = min(self._ends, default=_INF)
        jobs = self.jobs
        for shard in range(jobs):
            facts = [answer[3][shard] for source, answer in enumerate(segment.joined)
                     if source != shard and answer[3][shard] is not None]
            pool.send(shard, (_AGGREGATE, looks, facts))

    def _aggregate(self, pool: _Pool, segment: _Segment) -> None:
        """Steps 2 and 3 of a stop, at once: the plan goes on once its outputs are in."""
        self._finish_pending(pool)
        self._joined(pool, segment)
        self._plan_aggregate(pool, segment)
        self._pending = segment
        self._finish_pending(pool)

    def _finish_pending(self, pool: _Pool) -> None:
        if self._pending is not None:
            segment, self._pending = self._pending, None
            self._write(segment, [pool.recv(shard) for shard in range(self.jobs)])

    def _heard(self, answers: list[Any]) -> list[tuple[int, int, Op]]:
        """The ends of the periods opened, and the aggregate updates by (position, rank)."""
        ops: list[tuple[int, int, Op]] = []
        for answer in answers:
            for end in answer[1]:
                self._ends[end] = self._ends.get(end, 0) + 1
                if end < self._earliest_end:
                    self._earliest_end = end
            ops.extend(answer[0])
        ops.sort(key=_by_place)
        return ops

    def _write(self, segment: _Segment, answers: list[Any]) -> None:
        """A segment's outputs and counter updates, in input order."""
        aggregate_ops = self._heard(answers)
        failed: dict[int, str] = {}
        for answer in answers:
            for position, detail in answer[2]:
                failed.setdefault(position, detail)
        block = segment.block
        self._replay_claims(segment.joined)
        counters, on_alert, replay = self.counters, self.on_alert, self._replay
        records = [iter(answer[1]) for answer in segment.joined]
        shard_of, base = block.shard_of, block.base
        at, count = 0, len(aggregate_ops)
        after = block.after
        watermark = after[segment.start - 1] if segment.start else block.before
        last = segment.end - 1
        # Only the last line of an uncertain segment may be a duplicate newer than the
        # watermark: the plan took any other such line as moving it.
        unsure = last if segment.uncertain else -1
        for i in range(segment.start, segment.end):
            record = next(records[shard_of[i]])
            position = base + i
            found: list[Alert] = []
            while at < count and aggregate_ops[at][0] == position:
                op = aggregate_ops[at][2]
                at += 1
                if op[0] == _ALERT:
                    counters.alert(op[1])
                    found.append(op[1])
                else:
                    replay(op)
            moved, watermark = after[i] > watermark, after[i]
            if type(record) is DeadLetter:
                self._dead(record)
            elif position in failed:  # the aggregate stage failed on one of its facts
                source, line = block.line(i)
                self._dead(DeadLetter("internal_error", failed[position], source,
                                      line.decode("utf-8", "replace"), record[0]))
            else:
                ops = record[1]
                if moved and i != unsure and ops[0] == (_EVENT, record[0], "duplicate"):
                    raise RuntimeError(f"{block.line(i)[0]}: a duplicate the plan took as "
                                       "moving the watermark")
                for op in ops:
                    replay(op)
            if found:
                for alert in found:
                    on_alert(alert)
                claims = claims_of(found)
                if claims:
                    if not (segment.stop and i == last):
                        raise RuntimeError(f"{block.line(i)[0]}: an evaluation the plan did "
                                           "not stop for")
                    self._claims_due = claims

    def _replay_claims(self, joined: list[Any]) -> None:
        ops = [op for answer in joined for op in answer[0]]
        ops.sort(key=itemgetter(0))
        for _, op in ops:
            self._replay(op)

    def _replay(self, op: Op) -> None:
        code, counters = op[0], self.counters
        if code == _FLAGGED:
            counters.commission_flagged(op[1], op[2], op[3], op[4], op[5])
        elif code == _PAID:
            counters.commission_paid(op[1], op[2], op[3], op[4])
        elif code == _EVENT:
            counters.event(op[1], op[2])
        elif code == _ALERT:
            counters.alert(op[1])
            self.on_alert(op[1])
        elif code == _EXCEPTED:
            counters.excepted(op[1], op[2])
        else:
            counters.retention(op[1])

    def _dead(self, letter: DeadLetter) -> None:
        self.counters.dead_letter(letter)
        self.on_deadletter(letter)

    def _claims_only(self, pool: _Pool) -> None:
        """Claims and expiry due with no line to go before: after the last line, or after the
        end-of-input evaluations."""
        segment = self._join(pool, _Block("", 1, b"", self._positions), 0)
        self._joined(pool, segment)
        self._plan_aggregate(pool, segment)
        self._pending = segment
        self._finish_pending(pool)

    def _finish(self, pool: _Pool) -> None:
        """End of input: every period not evaluated yet is, and its claims applied."""
        if self._claims_due or self._sweeps_due:
            self._claims_only(pool)
        for shard in range(self.jobs):
            pool.send(shard, (_FLUSH, self._watermark))
        ops = [op for shard in range(self.jobs) for op in pool.recv(shard)]
        ops.sort(key=_by_place)
        found: list[Alert] = []
        for _, _, op in ops:
            if op[0] == _ALERT:
                self.counters.alert(op[1])
                found.append(op[1])
            else:
                self._replay(op)
        self._claims_due = claims_of(found)
        if self._claims_due:
            self._claims_only(pool)
        for alert in found:
            self.on_alert(alert)
        for shard in range(self.jobs):
            pool.send(shard, (_FINISH,))
        counters = self.counters
        for shard in range(self.jobs):
            timings, live = pool.recv(shard)
            for mine, (counts, total) in zip((counters.processing, counters.lag), timings,
                                             strict=True):
                for bucket, n in enumerate(counts):
                    mine.counts[bucket] += n
                mine.total += total
            self.engine.shard_live.extend(live)
        counters.watermark = self.engine.accounts.watermark = self._watermark
        if self.progress is not None:
            self.progress.done()


def _by_place(op: tuple[int, int, Op]) -> tuple[int, int]:
    return op[0], op[1]


# ---------------------------------------------------------------------------- processes


class _Pool:
    """The shard processes, and a thread per shard that sends to it: the parent never blocks
    on a full pipe while a shard blocks on its own; it only ever waits to receive."""

    def __init__(self, rules: RulePack, lateness_days: float, jobs: int) -> None:
        context = multiprocessing.get_context("fork")
        self.connections: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for index in range(jobs):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_shard_main, name=f"auditor-shard-{index}", daemon=True,
                args=(theirs, [*self.connections, mine], rules, lateness_days, index, jobs))
            process.start()
            theirs.close()
            self.connections.append(mine)
            self.processes.append(process)
        self.outboxes: list[queue.SimpleQueue[bytes | None]] = [
            queue.SimpleQueue() for _ in range(jobs)]
        self.senders = [threading.Thread(target=_send_all, args=(connection, outbox),
                                         name=f"auditor-shard-{index}-send", daemon=True)
                        for index, (connection, outbox)
                        in enumerate(zip(self.connections, self.outboxes, strict=True))]
        for sender in self.senders:
            sender.start()

    def send(self, shard: int, message: tuple[Any, ...]) -> None:
        self.outboxes[shard].put(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    def recv(self, shard: int) -> Any:
        try:
            ok, payload = pickle.loads(self.connections[shard].recv_bytes())
        except (EOFError, OSError):  # closed, or reset with messages unread
            self.processes[shard].join(5)
            raise ShardFailed(f"shard {shard} exited "
                              f"({self.processes[shard].exitcode})") from None
        if not ok:
            raise ShardFailed(f"shard {shard} failed:\n{payload}")
        return payload

    def close(self, finished: bool) -> None:
        for process in self.processes:
            if not finished:
                process.terminate()
        for process in self.processes:
            process.join(10 if finished else 5)
            if process.is_alive():
                process.kill()
                process.join()
        for outbox in self.outboxes:
            outbox.put(None)
        for connection in self.connections:
            connection.close()
        for sender in self.senders:
            sender.join(5)


def _send_all(connection: Connection, outbox: queue.SimpleQueue[bytes | None]) -> None:
    while (data := outbox.get()) is not None:
        try:
            connection.send_bytes(data)
        except OSError:  # the shard is gone: receiving from it says so
            return


def _shard_main(connection: Connection, inherited: list[Connection], rules: RulePack,
                lateness_days: float, index: int, jobs: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for other in inherited:  # the parent's ends: each side then sees the other exit
        other.close()
    gc.set_threshold(*FROZEN_HEAP_THRESHOLDS)
    dumps, loads, protocol = pickle.dumps, pickle.loads, pickle.HIGHEST_PROTOCOL
    try:
        shard = _Shard(rules, lateness_days, index, jobs)
        while True:
            message = loads(connection.recv_bytes())
            kind = message[0]
            reply: Any
            if kind == _LINES:
                reply = shard.decode(message[1], message[2], message[3])
            elif kind == _JOIN:
                reply = shard.join(message[1], message[2], message[3])
            elif kind == _AGGREGATE:
                reply = shard.aggregate(message[1], message[2])
            elif kind == _FLUSH:
                reply = shard.flush(message[1])
            else:
                connection.send_bytes(dumps((True, shard.finish()), protocol))
                return
            connection.send_bytes(dumps((True, reply), protocol))
            # As Replay.feed: what a step made lives on (events, facts, periods), so it is
            # frozen and a collection only ever sees what the next step makes.
            gc.freeze()
    except EOFError:  # the parent is gone
        return
    except BaseException:
        with suppress(OSError):
            connection.send_bytes(dumps((False, traceback.format_exc())))


class _JoinRecorder:
    """A shard's join stage's MetricsSink: the updates of one event, kept in order for the
    parent to make at the event's turn."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def event(self, event_type: str, outcome: str) -> None:
        self.ops.append((_EVENT, event_type, outcome))

    def alert(self, alert: Alert) -> None:
        self.ops.append((_ALERT, alert))

    def commission_paid(self, plan_id: str, team: str, time: float, amount: float) -> None:
        self.ops.append((_PAID, plan_id, team, time, amount))

    def commission_flagged(self, money_class: str, plan_id: str, team: str, time: float,
                           amount: float) -> None:
        self.ops.append((_FLAGGED, money_class, plan_id, team, time, amount))

    def retention(self, value: RetentionValue) -> None:
        self.ops.append((_RETENTION, value))

    def excepted(self, alert: Alert, exception: str) -> None:
        self.ops.append((_EXCEPTED, alert, exception))


class _RankedStore(MemoryAggregateStore):
    """A shard's periods, each with its rank: the order of the fact that opened it, so its
    place among all shards' periods is its place in one process's store. Iterating tells which
    period the stage is at (`current`), for the updates its evaluation makes."""

    def __init__(self) -> None:
        self.states: dict[str, AggregateState] = {}
        super().__init__(self.states)
        self.ranks: dict[str, int] = {}  # set by the shard as it applies facts
        self.current = 0  # the rank of the period being iterated over

    def delete(self, key: str) -> None:
        self.ranks.pop(key, None)
        super().delete(key)

    def items(self) -> Iterator[tuple[str, AggregateState]]:
        ranks = self.ranks
        for key, state in super().items():
            self.current = ranks.get(key, 0)
            yield key, state


class _AggregateRecorder:
    """A shard's aggregate stage's MetricsSink: each update with the place it has in one
    process's run: (position of the line where the stage looked, rank of the period)."""

    __slots__ = ("ops", "position", "store")

    def __init__(self, store: _RankedStore) -> None:
        self.store = store
        self.position = 0
        self.ops: list[tuple[int, int, Op]] = []

    def _add(self, op: Op) -> None:
        self.ops.append((self.position, self.store.current, op))

    def event(self, event_type: str, outcome: str) -> None:
        self._add((_EVENT, event_type, outcome))

    def alert(self, alert: Alert) -> None:
        self._add((_ALERT, alert))

    def commission_paid(self, plan_id: str, team: str, time: float, amount: float) -> None:
        self._add((_PAID, plan_id, team, time, amount))

    def commission_flagged(self, money_class: str, plan_id: str, team: str, time: float,
                           amount: float) -> None:
        self._add((_FLAGGED, money_class, plan_id, team, time, amount))

    def retention(self, value: RetentionValue) -> None:
        self._add((_RETENTION, value))

    def excepted(self, alert: Alert, exception: str) -> None:
        self._add((_EXCEPTED, alert, exception))


# (the event or its dead letter, the line, its source, seconds spent decoding it)
_Decoded = tuple[Event | DeadLetter, bytes, str, float]


class _Shard:
    """One shard: its accounts' join stage and its periods' aggregate stage, run step by step
    as the parent plans."""

    def __init__(self, rules: RulePack, lateness_days: float, index: int, jobs: int) -> None:
        self.index, self.jobs = index, jobs
        self.recorder = _JoinRecorder()
        self.accounts = MemoryAccountStore()
        self.join_stage = JoinStage(rules, self.accounts, self.recorder, lateness_days)
        self.periods = _RankedStore()
        self.sink = _AggregateRecorder(self.periods)
        self.aggregate_stage = AggregateStage(rules, self.periods, self.sink, lateness_days,
                                              evaluate_on_settle=False)
        self.decoder = EventDecoder(rules.currency)
        self.positions = 0  # lines read before the current block
        self.decoded: deque[tuple[int, _Decoded]] = deque()  # (position, line) not joined yet
        # Facts of own periods, by order, from each join step, for the aggregate step.
        self.facts: deque[list[tuple[int, AggregateFact]]] = deque()
        self.owners: dict[str, int] = {}  # period key -> its shard
        self.processing = Histogram(PROCESSING_BUCKETS)
        self.lag = Histogram(LAG_BUCKETS)
        self._wall = time.time() - time.perf_counter()  # as Intake

    def decode(self, name: str, first_lineno: int, data: bytes
               ) -> tuple[int, array[int], array[float], list[int]]:
        """Step 1: the block's own lines (positions), their event times (NaN: a dead letter),
        and which may be duplicates: their event id (or a deal's deal id) is in the account's
        state now, or on a line before in the block (expiry before they are joined can only
        make fewer)."""
        index, jobs, base = self.index, self.jobs, self.positions
        decode, get, decoded = self.decoder.decode, self.accounts.get, self.decoded
        perf = time.perf_counter
        positions: array[int] = array("q")
        times: array[float] = array("d")
        maybe: list[int] = []
        seen: set[tuple[str, str, bool]] = set()
        position = -1
        for position, (lineno, line) in enumerate(split_lines(data, first_lineno)):
            key = account_key(line)
            if key:
                if zlib.crc32(key) % jobs != index:
                    continue
            elif key is not None and index:
                continue  # no account: a dead letter, the first shard's to write
            source = f"{name}:{lineno}"
            started = perf()
            event = decode(line, source)
            if key is None:  # routed by what the decoder read
                owner = (0 if isinstance(event, DeadLetter)
                         else owner_of_account(event.account_id, jobs))
                if owner != index:
                    continue
            positions.append(position)
            if isinstance(event, DeadLetter):
                times.append(_NAN)
                decoded.append((base + position, (event, line, source, 0.0)))
                continue
            account, event_id = event.account_id, event.event_id
            by_event = (account, event_id, False)
            deal_id = event.deal_id if isinstance(event, Deal) else None
            by_deal = (account, deal_id, True) if deal_id is not None else None
            state = get(account)
            if (by_event in seen or (by_deal is not None and by_deal in seen)
                    or (state is not None and ((deal_id is not None
                                                and state.deal(deal_id) is not None)
                                               or state.has_event(event_id)))):
                maybe.append(len(times))
            seen.add(by_event)
            if by_deal is not None:
                seen.add(by_deal)
            times.append(event.time)
            decoded.append((base + position, (event, line, source, perf() - started)))
        size = position + 1
        self.positions += size
        return size, positions, times, maybe

    def join(self, claims: list[tuple[int, Claim]], sweeps: list[tuple[int, float]],
             marks: array[float]) -> tuple[list[tuple[int, Op]], list[Any], float,
                                           list[bytes | None]]:
        """Step 2: the claims due, then the planned lines, each after the expiry due before it
        and audited at the watermark the parent gives it. The claims' updates (by claim); per
        line its dead letter or (event type, updates); the watermark after the last line; the
        facts for each other shard."""
        stage, store, recorder, decoded = (self.join_stage, self.accounts, self.recorder,
                                           self.decoded)
        claim_ops: list[tuple[int, Op]] = []
        for k, claim in claims:
            recorder.ops = []
            stage.claim(claim)
            claim_ops.extend((k, op) for op in recorder.ops)
        records: list[Any] = []
        jobs, index, owners = self.jobs, self.index, self.owners
        mine: list[tuple[int, AggregateFact]] = []
        theirs: list[list[tuple[int, tuple[Any, ...]]]] = [[] for _ in range(jobs)]
        perf = time.perf_counter
        process, report = stage.process, stage.report
        processing, lag, wall = self.processing, self.lag, self._wall
        next_sweep, sweep_count = 0, len(sweeps)
        due = sweeps[0][0] if sweeps else len(marks) + 1
        for x, watermark in enumerate(marks):
            while due <= x:
                cutoff = sweeps[next_sweep][1]
                store.expire(cutoff, cutoff)
                next_sweep += 1
                due = sweeps[next_sweep][0] if next_sweep < sweep_count else len(marks) + 1
            position, (event, raw, source, decoding) = decoded.popleft()
            if type(event) is DeadLetter:
                records.append(event)
                continue
            assert not isinstance(event, DeadLetter)
            store.watermark = watermark
            ops: list[Op] = []
            recorder.ops = ops
            started = perf()
            try:
                joined = process(event)
                report(event, joined)
            except Exception as exc:
                records.append(internal_error(exc, raw, source, event.event_type))
                continue
            ended = perf()
            processing.observe(decoding + ended - started)
            lag.observe(wall + ended - event.time)
            records.append((event.event_type, ops))
            order = position << _IDX_BITS
            for fact in joined.facts:
                key = fact.key
                owner = owners.get(key)
                if owner is None:
                    owner = owners[key] = owner_of(key.encode(), jobs)
                if owner == index:
                    mine.append((order, fact))
                else:
                    theirs[owner].append((order, fact.to_row()))
                order += 1
        for _, cutoff in sweeps[next_sweep:]:
            store.expire(cutoff, cutoff)
        self.facts.append(mine)
        blobs = [marshal.dumps(facts) if facts else None for facts in theirs]
        return claim_ops, records, store.watermark, blobs

    def aggregate(self, looks: list[tuple[int, float]], blobs: list[bytes]
                  ) -> tuple[list[tuple[int, int, Op]], list[float], list[tuple[int, str]]]:
        """Step 3: the facts of own periods in input order, the stage looking where planned.
        The updates by place, the ends of the periods opened (and still held), and the lines
        whose facts the stage failed on."""
        facts: list[tuple[int, Any]] = self.facts.popleft()
        for blob in blobs:
            facts.extend(marshal.loads(blob))
        if blobs:
            facts.sort(key=itemgetter(0))
        store, sink, stage = self.periods, self.sink, self.aggregate_stage
        states, ranks = store.states, store.ranks
        apply = stage.apply
        sink.ops = []
        opened: list[str] = []
        failed: list[tuple[int, str]] = []
        looking = iter(looks)
        look = next(looking, None)
        for order, args in facts:
            position = order >> _IDX_BITS
            while look is not None and look[0] < position:
                self._look(*look)
                look = next(looking, None)
            fact = args if type(args) is AggregateFact else fact_of(args)
            held = len(states)
            try:
                apply(fact)
            except Exception as exc:
                log.exception("aggregating a fact of line %d failed", position)
                failed.append((position, f"{type(exc).__name__}: {exc}"))
            if len(states) != held:  # it opened its period
                ranks[fact.key] = order
                opened.append(fact.key)
        while look is not None:
            self._look(*look)
            look = next(looking, None)
        ends = [state.end for state in map(states.get, opened) if state is not None]
        return sink.ops, ends, failed

    def _look(self, position: int, watermark: float) -> None:
        """AggregateStage.observe, at a line where one process's stage looks: evaluate what
        left the horizon."""
        periods = self.periods
        if watermark > periods.watermark:
            periods.watermark = watermark
        self.sink.position = position
        self.aggregate_stage.advance(watermark, [])

    def flush(self, watermark: float) -> list[tuple[int, int, Op]]:
        """End of input: every period not evaluated yet is (AggregateStage.flush)."""
        periods = self.periods
        if watermark > periods.watermark:
            periods.watermark = watermark
        self.sink.ops = []
        self.sink.position = _LAST
        self.aggregate_stage.flush()
        return self.sink.ops

    def finish(self) -> tuple[tuple[tuple[list[int], float], tuple[list[int], float]],
                              list[LiveValue]]:
        timings = ((self.processing.counts, self.processing.total),
                   (self.lag.counts, self.lag.total))
        return timings, self.aggregate_stage.live_values()

