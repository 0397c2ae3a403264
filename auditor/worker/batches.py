"""A batch of messages, from input to committable offsets, in the order that keeps at-least-once.

For each batch, of either agent:
1. the pipeline audits every message (no await in between: a batch is processed whole); the
   input agent's batch holds events and money claims (applied to the deals' ledgers);
2. its outputs -- alerts, dead letters, facts messages -- are delivered to the broker, and
   then the heartbeats that tell the aggregate stages how far the batch's sources are (input
   agent), or the money claims of the batch's alerts, for the deals' ledgers (facts agent);
3. then the state it changed is logged to the changelogs, one record per partition (a
   PartitionLog's), and delivered (each agent logs only its own stages' state: the other
   agent's batch may await its outputs);
4. only then are its offsets marked done, so faust may commit them (commit_gate.py).
A crash or stop anywhere before 4 leaves the offsets uncommitted: the restarted worker reads the
batch again, recreates the same alerts (same alert_id) and finds in its state only events whose
outputs were delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from auditor.events.deadletter import DEADLETTER_MAX_BYTES, DeadLetter
from auditor.worker.commit_gate import CommitGate
from auditor.worker.delivery import Delivery, Outgoing
from auditor.worker.pipeline import Outputs, Pipeline
from auditor.worker.records import ClaimsMessage, FactsMessage
from auditor.worker.state_log import ChangelogRecord

# A dead letter refused as too large is tried again at these bounds, then given up.
SMALLER_DEADLETTERS = (64 * 1024, 4096)


class OutputTopics(NamedTuple):
    alerts: Any
    deadletters: Any
    facts: Any
    tables: dict[str, Any]  # table name -> faust table, whose changelog topic state goes to
    claims: Any = None  # the money claims topic (read by the input agent too)


class Batches:
    def __init__(self, pipeline: Pipeline, topics: OutputTopics, gate: CommitGate,
                 deadletter_max_bytes: int = DEADLETTER_MAX_BYTES) -> None:
        self.pipeline = pipeline
        self.topics = topics
        self.gate = gate
        self.deadletter_max_bytes = deadletter_max_bytes
        self.delivery = Delivery(self._divert)
        get_name = getattr(topics.claims, "get_topic_name", None)
        self.claims_topic: str | None = None if get_name is None else str(get_name())
        # Set while no batch runs: a clean stop, and a rebalance, wait for it.
        self.idle = asyncio.Event()
        self.idle.set()
        self._running = 0
        self._held = False  # a rebalance is under way: see `hold`

    async def events(self, messages: Iterable[Any]) -> None:
        """A batch of the input topics' messages (faust Message objects). Each agent runs one
        batch at a time (concurrency 1)."""
        if self._held:
            return
        with self._running_batch():
            await self._events_batch(list(messages))

    async def facts(self, messages: Iterable[Any]) -> None:
        """A batch of the repartition topic's messages."""
        if self._held:
            return
        with self._running_batch():
            await self._facts_batch(list(messages))

    def hold(self) -> None:
        """A rebalance starts: until `release`, batches are dropped unprocessed.

        The tables are about to be recovered from their changelogs, and recovery writes every
        logged record over the table in memory: a change a batch made but had not logged yet
        would be put back to its older value, and the stages rebuilt from the table would go on
        without it (a deal gone, its churn's alert never raised). So no batch may change state
        until the tables are recovered. A dropped batch's offsets are not marked done (the
        commit gate holds the commits below them) and faust seeks to the committed offsets
        after the rebalance, so its messages are read again."""
        self._held = True

    def release(self) -> None:
        """The tables are recovered: batches run again."""
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    @property
    def running(self) -> int:
        """Batches in flight (one per agent at most)."""
        return self._running

    @contextmanager
    def _running_batch(self) -> Iterator[None]:
        self._running += 1
        self.idle.clear()
        try:
            yield
        finally:
            self._running -= 1
            if not self._running:
                self.idle.set()

    async def _events_batch(self, messages: list[Any]) -> None:
        out = Outputs()
        pipeline, claims = self.pipeline, self.claims_topic
        for m in messages:  # 1
            if m.topic == claims:
                one = pipeline.on_claims(m.topic, m.partition, m.offset, m.key, m.value)
            else:
                one = pipeline.on_input(m.topic, m.partition, m.offset, m.key, m.value)
            out.alerts += one.alerts
            out.deadletters += one.deadletters
        facts, heartbeats = pipeline.facts_messages()
        await self.delivery.deliver([*self._outputs(out), *self._facts(facts)])  # 2
        await self.delivery.deliver(self._facts(heartbeats))  # 2b: after the facts
        await self._log_state(pipeline.join_state_records())  # 3
        self._done(messages)  # 4
        self.pipeline.counters.watermark = self.pipeline.watermark

    async def _facts_batch(self, messages: list[Any]) -> None:
        out = Outputs()
        for m in messages:  # 1
            one = self.pipeline.on_facts(m.partition, m.offset, m.topic, m.value)
            out.alerts += one.alerts
            out.deadletters += one.deadletters
        await self.delivery.deliver(self._outputs(out))  # 2
        # 2b: the money of the alerts, now delivered, to the deals' accounts' ledgers.
        await self.delivery.deliver(self._claims(self.pipeline.claims_messages(out.alerts)))
        await self._log_state(self.pipeline.aggregate_state_records())  # 3
        self._done(messages)  # 4

    def rebalance(self) -> None:
        """Partitions move: drop the stages (rebuilt from the recovered tables on their next
        message). A batch in flight still logs the state it changed after its outputs
        (Pipeline.forget); the worker waits for it before the tables are recovered (`hold`).
        The commit gate keeps its marks: they only say which offsets' work was delivered, which
        stays true (and a stop revokes the partitions before its final commit, which needs
        them)."""
        self.pipeline.forget()

    def _facts(self, messages: list[FactsMessage]) -> list[Outgoing]:
        return [Outgoing("facts", None, self.topics.facts,
                         None if m.key is None else m.key.encode(), m.value, m.partition)
                for m in messages]

    def _claims(self, messages: list[ClaimsMessage]) -> list[Outgoing]:
        if messages:
            assert self.topics.claims is not None, "no claims topic to send claims to"
        return [Outgoing("claims", None, self.topics.claims, m.key.encode(), m.value,
                         m.partition) for m in messages]

    def _outputs(self, out: Outputs) -> list[Outgoing]:
        alerts = [Outgoing("alerts", a, self.topics.alerts, a.alert_id.encode(),
                           a.to_json().encode()) for a in out.alerts]
        letters = [self._deadletter(d, self.deadletter_max_bytes) for d in out.deadletters]
        return alerts + letters

    def _deadletter(self, letter: DeadLetter, max_bytes: int) -> Outgoing:
        return Outgoing("deadletters", letter, self.topics.deadletters, letter.source.encode(),
                        letter.to_bytes(max_bytes))

    async def _log_state(self, records: list[ChangelogRecord]) -> None:
        dropped = self.delivery.failures["state", "dropped"]
        await self.delivery.deliver([self._state(r) for r in records if not r.cleanup])
        # Tombstones of the records a snapshot replaces go only once it is delivered whole;
        # one of its parts refused leaves them (and the older records stay readable).
        if self.delivery.failures["state", "dropped"] == dropped:
            await self.delivery.deliver([self._state(r) for r in records if r.cleanup])

    def _state(self, record: ChangelogRecord) -> Outgoing:
        table = self.topics.tables[record.table]
        topic = getattr(table, "changelog_topic", table)
        # The value is JSON already (or None, a tombstone); the key goes as the table's keys.
        return Outgoing("state", record, topic, record.key, record.value, record.partition,
                        getattr(table, "key_serializer", None), "raw")

    def _done(self, messages: list[Any]) -> None:
        for m in messages:
            self.gate.done(m.tp, m.offset)

    def _divert(self, record: Outgoing, exc: BaseException) -> Outgoing | None:
        """What is sent instead of a record too large for the broker."""
        if record.output == "deadletters":
            size = len(record.value)
            smaller = next((b for b in SMALLER_DEADLETTERS if b < size), None)
            return None if smaller is None else self._deadletter(record.item, smaller)
        if record.output == "state":
            # The state stays right in memory; only a recovery would miss this part's changes.
            return None
        # An alert, a facts or a claims message: a dead letter says what it was, bounded.
        text = record.value.decode("utf-8", "replace") if isinstance(record.value, bytes) else (
            str(record.value))
        where = f"{record.output}:{record.key.decode('utf-8', 'replace') if record.key else ''}"
        letter = DeadLetter("undeliverable_output",
                            f"{record.output} record of {len(text)} characters refused: {exc}",
                            where, text)
        self.pipeline.counters.dead_letter(letter, event=False)
        return self._deadletter(letter, SMALLER_DEADLETTERS[0])
