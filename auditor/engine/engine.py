"""The audit engine: events in, alerts and metric updates out. Pure and deterministic.

Both stages run in one process here; the worker runs the same two stages on either side of a
repartition topic.
"""

from __future__ import annotations

from auditor.engine.aggregate_stage import AggregateStage, LiveValue
from auditor.engine.alerts import Alert
from auditor.engine.join_stage import JoinStage
from auditor.engine.sink import MetricsSink, NullSink
from auditor.engine.store import (
    AccountStore,
    AggregateStore,
    MemoryAccountStore,
    MemoryAggregateStore,
)
from auditor.events.models import Event
from auditor.rules.compiled import RulePack

DEFAULT_LATENESS_DAYS = 30.0


class AuditEngine:
    def __init__(
        self,
        rules: RulePack,
        sink: MetricsSink | None = None,
        lateness_days: float = DEFAULT_LATENESS_DAYS,
        accounts: AccountStore | None = None,
        aggregates: AggregateStore | None = None,
    ) -> None:
        self.sink: MetricsSink = sink or NullSink()
        self.accounts = accounts if accounts is not None else MemoryAccountStore()
        self.aggregates = aggregates if aggregates is not None else MemoryAggregateStore()
        self.join = JoinStage(rules, self.accounts, self.sink, lateness_days)
        self.aggregate = AggregateStage(rules, self.aggregates, self.sink, lateness_days)
        self.rules = rules

    def set_rules(self, rules: RulePack) -> None:
        """Hot reload: new rules from the next event on, with the state kept."""
        self.rules = rules
        self.join.set_rules(rules)
        self.aggregate.set_rules(rules)

    def process(self, event: Event) -> list[Alert]:
        alerts, facts = self.join.process(event)
        if alerts:
            sink = self.sink
            for alert in alerts:
                sink.alert(alert)
        if facts:
            alerts = list(alerts)
            apply = self.aggregate.apply
            for fact in facts:
                alerts.extend(apply(fact))
        return alerts

    def live_values(self) -> list[LiveValue]:
        return self.aggregate.live_values()

    def flush(self) -> list[Alert]:
        """End of input: evaluate every aggregate period not yet evaluated."""
        return self.aggregate.flush()
