"""The engine as the worker runs it: one join stage per input partition, one aggregate stage per
repartition-topic partition, each over its own slice of the state tables.

No faust here: the tables come in as mappings, and the caller publishes what comes out. That
keeps this testable without a broker, and keeps faust to auditor/worker/app.py.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from auditor.engine.aggregate_stage import AggregateStage, LiveValue
from auditor.engine.alerts import Alert
from auditor.engine.facts import AggregateFact
from auditor.engine.join_stage import JoinStage
from auditor.events.deadletter import DeadLetter
from auditor.events.decode import EventDecoder
from auditor.metrics.counters import RunCounters
from auditor.rules.compiled import RulePack
from auditor.worker.tables import TableAccountStore, TableAggregateStore

log = logging.getLogger(__name__)


@dataclass
class Outputs:
    alerts: list[Alert] = field(default_factory=list)
    facts: list[AggregateFact] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)


@dataclass
class StateTables:
    """The worker's tables (faust tables, or dicts in tests)."""

    accounts: Any
    aggregates: Any
    watermarks: Any


class Pipeline:
    def __init__(self, rules: RulePack, counters: RunCounters, tables: StateTables,
                 lateness_days: float) -> None:
        self.counters = counters
        self.tables = tables
        self.lateness_days = lateness_days
        # By partition: a stage and the table-backed store it runs over.
        self.joins: dict[int, JoinStage] = {}
        self.aggregates: dict[int, AggregateStage] = {}
        self.account_stores: dict[int, TableAccountStore] = {}
        self.aggregate_stores: dict[int, TableAggregateStore] = {}
        self.set_rules(rules)

    def set_rules(self, rules: RulePack) -> None:
        """New rules from the next event on; the state is kept."""
        self.rules = rules
        self.decoder = EventDecoder(rules.currency)
        for join in self.joins.values():
            join.set_rules(rules)
        for aggregate in self.aggregates.values():
            aggregate.set_rules(rules)

    def forget(self) -> None:
        """At a rebalance: drop every stage. Each is rebuilt on its partition's next message
        from the tables as recovered, so a partition that moved away and back is re-indexed.
        A batch can only be waiting for its outputs' delivery here (its processing has no
        await), so its state is logged now, after those outputs, not dropped."""
        self.flush_joins()
        self.flush_aggregates()
        for stages in (self.joins, self.aggregates, self.account_stores, self.aggregate_stores):
            stages.clear()

    def on_input(self, topic: str, partition: int, offset: int, key: bytes | None,
                 value: bytes | None) -> Outputs:
        """One message of an input topic."""
        out = Outputs()
        source = f"{topic}/{partition}/{offset}"
        started = time.perf_counter()
        if not value:
            self._dead(out, DeadLetter("empty", "the message has no value", source, ""))
            return out
        event = self.decoder.decode(value, source)
        if type(event) is DeadLetter:
            self._dead(out, event)
            return out
        assert not isinstance(event, DeadLetter)
        account = key.decode("utf-8", "replace") if key is not None else None
        if account != event.account_id:
            # The key decides the partition, and so which state the event meets.
            reason, detail = (("null_key", "the message has no key; expected its account_id")
                              if account is None else
                              ("key_mismatch", f"key {account!r} is not the event's account_id "
                                               f"{event.account_id!r}"))
            text = value.decode("utf-8", "replace")
            self._dead(out, DeadLetter(reason, detail, source, text, event.event_type))
            return out
        stage, store = self._join(partition)
        store.observe(event.event_type, event.time)
        try:
            alerts, facts = stage.process(event)
        except Exception as exc:  # a bug must not stop the stream, nor lose the event
            log.exception("processing %s failed", source)
            self._dead(out, DeadLetter("internal_error", f"{type(exc).__name__}: {exc}", source,
                                       value.decode("utf-8", "replace"), event.event_type))
            return out
        for alert in alerts:
            self.counters.alert(alert)
        out.alerts = alerts
        out.facts = facts
        self.counters.processing.observe(time.perf_counter() - started)
        self.counters.lag.observe(time.time() - event.time)
        return out

    def on_facts(self, partition: int, value: bytes) -> list[Alert]:
        """One message of the repartition topic: the facts of one key from one batch (written
        by the worker itself, so trusted)."""
        stage = self._aggregate(partition)
        alerts: list[Alert] = []
        for data in json.loads(value):
            alerts.extend(stage.apply(AggregateFact.from_dict(data)))
        return alerts

    def flush_joins(self) -> int:
        """Log the account state changed since the last flush, once per key: after the
        batch's outputs are delivered (or a redelivered event would find itself in the state,
        be taken for a duplicate, and its outputs be lost), before its offsets are committed."""
        return sum(store.view.flush() for store in self.account_stores.values())

    def flush_aggregates(self) -> int:
        """The same for the aggregate periods."""
        return sum(store.view.flush() for store in self.aggregate_stores.values())

    def live_values(self) -> list[LiveValue]:
        return [v for stage in list(self.aggregates.values()) for v in stage.live_values()]

    @property
    def watermark(self) -> float:
        return max((s.store.watermark for s in list(self.joins.values())), default=0.0)

    def _dead(self, out: Outputs, letter: DeadLetter) -> None:
        self.counters.dead_letter(letter)
        out.deadletters.append(letter)

    def _join(self, partition: int) -> tuple[JoinStage, TableAccountStore]:
        stage = self.joins.get(partition)
        if stage is None:
            store = TableAccountStore(self.tables.accounts, self.tables.watermarks, partition)
            stage = JoinStage(self.rules, store, self.counters, self.lateness_days)
            self.joins[partition], self.account_stores[partition] = stage, store
        return stage, self.account_stores[partition]

    def _aggregate(self, partition: int) -> AggregateStage:
        stage = self.aggregates.get(partition)
        if stage is None:
            store = TableAggregateStore(self.tables.aggregates, self.tables.watermarks, partition)
            stage = AggregateStage(self.rules, store, self.counters, self.lateness_days)
            self.aggregates[partition], self.aggregate_stores[partition] = stage, store
        return stage


def encode_facts(facts: list[AggregateFact]) -> dict[str, bytes]:
    """Facts by repartition key, one message per key: a batch sends each key once."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for fact in facts:
        by_key.setdefault(fact.key, []).append(fact.to_dict())
    return {key: json.dumps(values, separators=(",", ":")).encode()
            for key, values in by_key.items()}
