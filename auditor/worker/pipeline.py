"""The engine as the worker runs it: one join stage per input partition, one aggregate stage per
repartition-topic partition, each over its own slice of the state tables.

Aggregate findings' money goes back to the deals' ledgers over the claims topic: the aggregate
stage's alerts give claims (`claims_messages`), keyed and partitioned by account like the input
topics, and the input agent applies them with the account partition's join stage (`on_claims`),
so the de-duplicated totals count a deal once per class, as replay's do.

No faust here: the tables come in as mappings, and the caller sends what comes out -- alerts,
dead letters, facts messages, then changelog records -- and commits offsets after. That keeps
this testable without a broker, and keeps faust to auditor/worker/app.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditor.engine.aggregate_stage import AggregateStage, LiveValue
from auditor.engine.alerts import Alert
from auditor.engine.engine import claims_of
from auditor.engine.facts import AggregateFact
from auditor.engine.join_stage import Claim, Joined, JoinStage
from auditor.engine.periods import DAY
from auditor.engine.retention import RetentionValue
from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.events.models import Event
from auditor.intake import Intake
from auditor.metrics.counters import RunCounters
from auditor.rules.pack import RulePack
from auditor.worker.partitioning import expected_partition
from auditor.worker.records import (
    ClaimsMessage,
    EventFacts,
    FactsMessage,
    LedgerBeat,
    UnreadableRecord,
    decode_claims,
    decode_facts,
    encode_beat,
    encode_claims,
    encode_facts,
)
from auditor.worker.state_log import Changelog, ChangelogRecord
from auditor.worker.tables import StoreContext, TableAccountStore, TableAggregateStore

log = logging.getLogger(__name__)
# The tables state is logged to (the watermarks table is only read: the previous version's).
LOGGED_TABLES = ("accounts", "aggregates")
# Facts and claims messages stay well under a broker's default 1 MiB message limit.
FACTS_MAX_BYTES = 512 * 1024
CLAIMS_MAX_BYTES = 512 * 1024


@dataclass
class Outputs:
    alerts: list[Alert] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)


@dataclass
class StateTables:
    """The worker's tables (faust tables, or dicts in tests)."""

    accounts: Any
    aggregates: Any
    watermarks: Any  # read only: where the previous version kept the watermarks


class _JoinPartition:
    """One input partition's join stage, its store, and the facts it has yet to send."""

    def __init__(self, stage: JoinStage, store: TableAccountStore,
                 destination: Callable[[str], int]) -> None:
        self.stage = stage
        self.store = store
        self.destination = destination  # a fact's key -> its repartition-topic partition
        # By destination partition, each event's facts with its position, in event order.
        self.facts: dict[int, list[EventFacts]] = {}
        self.position = ("", -1)  # (topic, offset) of the event being audited
        # The watermark at the end of the last batch, whose facts are all delivered: what
        # this batch's facts messages may claim.
        self.announced = store.watermark
        self.heartbeat_day: int | None = None  # the watermark's day when last sent to all

    def audit(self, event: Event) -> Joined:
        self.store.observe(event.event_type, event.time)
        joined = self.stage.audit(event)
        if joined.facts:
            topic, offset = self.position
            by_partition: dict[int, list[AggregateFact]] = {}
            for fact in joined.facts:
                by_partition.setdefault(self.destination(fact.key), []).append(fact)
            for partition, facts in by_partition.items():
                self.facts.setdefault(partition, []).append((topic, offset, facts))
        return joined


class Pipeline:
    def __init__(self, rules: RulePack, counters: RunCounters, tables: StateTables,
                 lateness_days: float, partitions: int = 4,
                 snapshot_min_bytes: int | None = None) -> None:
        self.counters = counters
        self.tables = tables
        self.lateness_days = lateness_days
        self.partitions = partitions  # of the input topics, and of the repartition topic
        self.unreadable = 0  # records of the worker's own it could not read
        self.redelivered_facts = 0  # facts skipped as applied before (`on_facts`)
        # One set of changelogs per agent: each logs only the state its own batch changed,
        # never what a batch of the other agent changed while that one still awaits its outputs.
        self.join_changelogs = {name: Changelog(name) for name in LOGGED_TABLES}
        self.aggregate_changelogs = {name: Changelog(name) for name in LOGGED_TABLES}
        self.join_context = StoreContext(tables.accounts, tables.aggregates, tables.watermarks,
                                         self.join_changelogs, self._on_unreadable,
                                         snapshot_min_bytes)
        self.aggregate_context = StoreContext(tables.accounts, tables.aggregates,
                                              tables.watermarks, self.aggregate_changelogs,
                                              self._on_unreadable, snapshot_min_bytes)
        self.joins: dict[int, _JoinPartition] = {}
        self._ledger_beat_days: dict[int, int] = {}  # aggregate partition -> day last told
        self._destinations: dict[str, int] = {}
        self.aggregates: dict[int, tuple[AggregateStage, TableAggregateStore]] = {}
        self.set_rules(rules)

    def set_rules(self, rules: RulePack) -> None:
        """New rules from the next event on; the state is kept."""
        self.rules = rules
        self.intake = Intake(EventDecoder(rules.currency), self.counters)
        for join in self.joins.values():
            join.stage.set_rules(rules)
        for stage, _ in self.aggregates.values():
            stage.set_rules(rules)

    def forget(self) -> None:
        """At a rebalance: drop every stage. Each is rebuilt on its partition's next message
        from the tables as recovered, so a partition that moved away and back is re-indexed.
        What the stages changed stays pending in the changelogs: a batch in flight (waiting for
        its outputs' delivery) logs it after them, as ever; none in flight, nothing is pending.
        Nothing here waits: the worker waits for that batch before the tables are recovered
        (Batches.hold)."""
        for join in self.joins.values():
            join.store.log.flush()
        for _, store in self.aggregates.values():
            store.log.flush()
        self.joins.clear()
        self.aggregates.clear()

    def on_input(self, topic: str, partition: int, offset: int, key: bytes | None,
                 value: bytes | None) -> Outputs:
        """One message of an input topic. Its facts wait for `facts_messages`."""
        out = Outputs()
        source = f"{topic}/{partition}/{offset}"
        if not value:
            letter = DeadLetter("empty", "the message has no value", source, "")
            self.counters.dead_letter(letter)
            out.deadletters.append(letter)
            return out

        def placed(event: Event) -> tuple[str, str] | None:
            return self._misplaced(event, key, partition)

        join = self._join(partition)
        join.position = (topic, offset)
        result = self.intake.take(value, source, join.audit, placed)
        if type(result) is DeadLetter:
            out.deadletters.append(result)
        else:
            assert isinstance(result, Joined)
            out.alerts = result.alerts
        return out

    def _misplaced(self, event: Event, key: bytes | None,
                   partition: int) -> tuple[str, str] | None:
        """The key decides the partition, and so which state the event meets: both must be
        the ones the contract gives (key account_id, partition by murmur2 of it)."""
        account = key.decode("utf-8", "replace") if key is not None else None
        if account is None:
            return "null_key", "the message has no key; expected its account_id"
        if account != event.account_id:
            return "key_mismatch", (f"key {account!r} is not the event's account_id "
                                    f"{event.account_id!r}")
        expected = expected_partition(key or b"", self.partitions)
        if expected != partition:
            return "wrong_partition", (
                f"key {account!r} belongs on partition {expected} of {self.partitions} "
                f"(murmur2, the Java client's and kafka-python's partitioner), not {partition}: "
                f"its deals and churns would not meet; librdkafka producers must set "
                f"partitioner=murmur2_random")
        return None

    def facts_messages(self, max_bytes: int = FACTS_MAX_BYTES
                       ) -> tuple[list[FactsMessage], list[FactsMessage]]:
        """What the join stages have to tell the aggregate stages since the last call, in two
        parts to deliver one after the other:
        1. facts by the aggregate partition their key maps to (murmur2, as a keyed send would
           place them): one message per source and destination partition and batch (split if
           large, never inside an event's facts), each with its source partition, the
           watermark that source had when the batch began (every fact of earlier events is
           delivered by then, so no period settles on it before this batch's facts are in),
           and each fact's event position (topic and offset), in the events' order;
        2. heartbeats: the watermarks now of the sources whose watermark has reached a new day,
           in one message to every aggregate partition -- sent once the facts are delivered, so
           it follows them -- so a period settles there even if a source sends it no facts."""
        facts: list[FactsMessage] = []
        beats: dict[int, float] = {}
        for source, join in self.joins.items():
            for partition, events in sorted(join.facts.items()):
                facts += [FactsMessage(None, partition, value) for value in
                          encode_facts(source, join.announced, events, max_bytes)]
            join.facts = {}
            watermark = join.announced = join.store.watermark
            day = int(watermark // DAY)
            if watermark and day != join.heartbeat_day:
                join.heartbeat_day = day
                beats[source] = watermark
        if not beats:
            return facts, []
        beat = encode_beat(beats)
        return facts, [FactsMessage(None, p, beat) for p in range(self.partitions)]

    def on_facts(self, partition: int, offset: int, topic: str, value: bytes | None) -> Outputs:
        """One message of the repartition topic (written by a worker, maybe of another
        version): its facts applied, then its sources' watermarks.

        A period counts its deals (it keeps no member list), so a fact must be applied once:
        each carries its event's position, and the store keeps, per source partition and
        input topic, the offset of the last event applied, logged with the periods it changed
        (one state log record). A fact of an event at or before it is a redelivery -- the
        source's worker stopped after sending and before its offsets were committed -- and is
        skipped. A source sends its events' facts in offset order, an event's facts in one
        message, so comparing with the mark as the message found it is exact."""
        out = Outputs()
        try:
            record = decode_facts(value)
        except UnreadableRecord as exc:
            self.unreadable += 1
            letter = DeadLetter("unreadable_record", f"facts message: {exc}",
                                f"{topic}/{partition}/{offset}",
                                (value or b"").decode("utf-8", "replace"))
            self.counters.dead_letter(letter, event=False)
            out.deadletters.append(letter)
            return out
        stage, store = self._aggregate(partition)
        apply, alerts = stage.apply, out.alerts
        if record.positions is None:  # the previous form: applied as they come
            for fact in record.facts:
                alerts.extend(apply(fact))
        else:
            [source] = record.watermarks
            marks: dict[str, int] = {}  # input topic -> its mark as this message found it
            newest: dict[str, int] = {}
            skipped = 0
            for fact, (input_topic, event_offset) in zip(record.facts, record.positions,
                                                         strict=True):
                mark = marks.get(input_topic)
                if mark is None:
                    mark = marks[input_topic] = store.applied(source, input_topic)
                if event_offset > mark:
                    alerts.extend(apply(fact))
                    newest[input_topic] = event_offset
                else:  # applied before: a redelivery
                    skipped += 1
            for input_topic, event_offset in newest.items():
                store.set_applied(source, input_topic, event_offset)
            if skipped:
                # Expected after a source's restart; on every message, it would mean the
                # input topics were reset under state that remembers their old offsets.
                self.redelivered_facts += skipped
                log.info("%d facts from partition %d already applied (a redelivery): "
                         "skipped", skipped, source)
        for source, watermark in record.watermarks.items():
            store.observe(source, watermark)
        out.alerts.extend(stage.observe(store.watermark))
        return out

    def claims_messages(self, alerts: list[Alert], max_bytes: int = CLAIMS_MAX_BYTES
                        ) -> list[ClaimsMessage]:
        """The money per deal of aggregate findings (`claims_of`), one message per account
        (split if large), keyed by its account_id and sent to the partition murmur2 gives it:
        the account's partition, whose join stage keeps the deal's ledger."""
        by_account: dict[str, list[Claim]] = {}
        for claim in claims_of(alerts):
            by_account.setdefault(claim.account_id, []).append(claim)
        messages = [ClaimsMessage(account, expected_partition(account.encode(), self.partitions),
                                  value)
                    for account, claims in by_account.items()
                    for value in encode_claims(account, claims, max_bytes)]
        # Then the watermarks of the aggregate stages that reached a new day, in a LedgerBeat to
        # every join stage: after the claims, so a ledger entry is never dropped ahead of its
        # claim.
        beats: dict[int, float] = {}
        for source, (_, store) in self.aggregates.items():
            watermark = store.watermark
            day = int(watermark // DAY)
            if watermark and day != self._ledger_beat_days.get(source):
                self._ledger_beat_days[source] = day
                beats[source] = watermark
        if beats:
            beat = encode_beat(beats)
            messages += [ClaimsMessage("", p, beat) for p in range(self.partitions)]
        return messages

    def on_claims(self, topic: str, partition: int, offset: int, key: bytes | None,
                  value: bytes | None) -> Outputs:
        """One message of the claims topic (written by a worker, maybe of another version):
        each claim recorded in its deal's ledger by the join stage of the account's partition,
        which counts what it adds to the totals (nothing for a claim already applied: the
        ledger keeps the largest amount per class). Not an event: it moves no watermark and is
        not counted in the events."""
        out = Outputs()
        source = f"{topic}/{partition}/{offset}"
        text = (value or b"").decode("utf-8", "replace")
        try:
            decoded = decode_claims(value)
        except UnreadableRecord as exc:
            self.unreadable += 1
            letter = DeadLetter("unreadable_record", f"claims message: {exc}", source, text)
            self.counters.dead_letter(letter, event=False)
            out.deadletters.append(letter)
            return out
        if isinstance(decoded, LedgerBeat):
            store = self._join(partition).store
            for aggregate, watermark in decoded.watermarks.items():
                store.observe_ledger(aggregate, watermark)
            return out
        account, claims = decoded
        # The worker sends claims to the account's partition; anywhere else they would go to
        # a join stage that does not keep the account.
        problem = self._misplaced_claims(account, key, partition)
        if problem is not None:
            reason, detail = problem
            letter = DeadLetter(reason, f"claims message: {detail}", source, text)
            self.counters.dead_letter(letter, event=False)
            out.deadletters.append(letter)
            return out
        stage = self._join(partition).stage
        for claim in claims:
            stage.claim(claim)
        return out

    def _misplaced_claims(self, account: str, key: bytes | None,
                          partition: int) -> tuple[str, str] | None:
        if key != account.encode():
            return "key_mismatch", f"key {key!r} is not the claims' account_id {account!r}"
        expected = expected_partition(key, self.partitions)
        if expected != partition:
            return "wrong_partition", (f"account {account!r} belongs on partition {expected} "
                                       f"of {self.partitions} (murmur2), not {partition}")
        return None

    def state_records(self) -> list[ChangelogRecord]:
        """The state changed since the last call, once per key: to be logged after the
        outputs of the events that changed it are delivered (or a redelivered event would find
        itself in the state, be taken for a duplicate, and its outputs be lost), and before
        their offsets are committed."""
        return self.join_state_records() + self.aggregate_state_records()

    def join_state_records(self) -> list[ChangelogRecord]:
        """`state_records` of the join stages alone (events and claims), for the input agent's
        batch."""
        for join in self.joins.values():
            join.store.log.flush()
        return [r for changelog in self.join_changelogs.values() for r in changelog.drain()]

    def aggregate_state_records(self) -> list[ChangelogRecord]:
        """`state_records` of the aggregate stages alone, for the facts agent's batch."""
        for _, store in self.aggregates.values():
            store.log.flush()
        return [r for changelog in self.aggregate_changelogs.values()
                for r in changelog.drain()]

    def retention_values(self) -> list[RetentionValue]:
        return [v for stage, _ in list(self.aggregates.values())
                for v in stage.retention_values()]

    def live_values(self) -> list[LiveValue]:
        return [v for stage, _ in list(self.aggregates.values()) for v in stage.live_values()]

    @property
    def watermark(self) -> float:
        """The largest over this worker's input partitions (each the smaller of its topics')."""
        return max((j.store.watermark for j in list(self.joins.values())), default=0.0)

    def _destination(self, key: str) -> int:
        """The repartition-topic partition of a fact's key: murmur2, as a keyed send would
        place it (cached: a batch makes thousands of facts for a few hundred periods)."""
        partition = self._destinations.get(key)
        if partition is None:
            if len(self._destinations) > 100_000:  # bounded whatever the groups
                self._destinations.clear()
            partition = self._destinations[key] = expected_partition(key.encode(),
                                                                     self.partitions)
        return partition

    def _on_unreadable(self, what: str, problem: str) -> None:
        self.unreadable += 1
        log.error("cannot read %s (%s): starting it afresh", what, problem)

    def _join(self, partition: int) -> _JoinPartition:
        join = self.joins.get(partition)
        if join is None:
            store = TableAccountStore(self.join_context, partition, self.partitions)
            stage = JoinStage(self.rules, store, self.counters, self.lateness_days)
            join = self.joins[partition] = _JoinPartition(stage, store, self._destination)
        return join

    def _aggregate(self, partition: int) -> tuple[AggregateStage, TableAggregateStore]:
        found = self.aggregates.get(partition)
        if found is None:
            store = TableAggregateStore(self.aggregate_context, partition, self.partitions)
            stage = AggregateStage(self.rules, store, self.counters, self.lateness_days)
            found = self.aggregates[partition] = (stage, store)
        return found
