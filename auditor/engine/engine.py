"""The audit engine: events in, alerts and metric updates out. Pure and deterministic.

Both stages run in one process here; the worker runs the same two stages on either side of a
repartition topic.
"""

from __future__ import annotations

from datetime import datetime

from auditor.engine.aggregate_stage import AggregateStage, LiveValue
from auditor.engine.alerts import Alert
from auditor.engine.join_stage import Claim, JoinStage
from auditor.engine.sink import MetricsSink, NullSink
from auditor.engine.store import (
    AccountStore,
    AggregateStore,
    MemoryAccountStore,
    MemoryAggregateStore,
)
from auditor.events.models import Event
from auditor.rules.pack import RulePack

DEFAULT_LATENESS_DAYS = 30.0


class AuditEngine:
    """Both stages in one process, as `replay` runs them: aggregate periods are evaluated once,
    at end of input (`flush`) or as they leave the horizon."""

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
        self.aggregate = AggregateStage(rules, self.aggregates, self.sink, lateness_days,
                                        evaluate_on_settle=False)
        self.rules = rules
        self._watermark = self.accounts.watermark

    def set_rules(self, rules: RulePack) -> None:
        """Hot reload: new rules from the next event on, with the state kept."""
        self.rules = rules
        self.join.set_rules(rules)
        self.aggregate.set_rules(rules)

    def process(self, event: Event) -> list[Alert]:
        joined = self.join.process(event)
        alerts = joined.alerts
        found: list[Alert] = []
        if joined.facts:
            apply = self.aggregate.apply
            for fact in joined.facts:
                settled = apply(fact)
                if settled:  # rarely: a late fact for a period evaluated already
                    found.extend(settled)
        watermark = self.accounts.watermark
        if watermark > self._watermark:  # the aggregate stage looks only when it moved
            self._watermark = watermark
            found.extend(self.aggregate.observe(watermark))
        self.join.report(event, joined)  # all went well: count it once
        if found:
            self.claim(found)
            alerts = [*alerts, *found]
        self.join.expire()
        return alerts

    def claim(self, alerts: list[Alert]) -> None:
        """Aggregate findings' money per deal into the deals' ledgers (the join stage's), so
        totals count a deal once per class whichever rules flag it."""
        for claim in claims_of(alerts):
            self.join.claim(claim)

    def live_values(self) -> list[LiveValue]:
        return self.aggregate.live_values()

    def flush(self) -> list[Alert]:
        """End of input: evaluate every aggregate period not yet evaluated."""
        alerts = self.aggregate.flush()
        self.claim(alerts)
        return alerts


def claims_of(alerts: list[Alert]) -> list[Claim]:
    """The money of each deal in aggregate findings, for the deals' ledgers."""
    return [Claim(d["account_id"], d["deal_id"], d["class"], d["amount"], d["plan_id"],
                  d["team"], datetime.fromisoformat(d["closed_at"]).timestamp())
            for alert in alerts if alert.counts
            for d in alert.evidence.get("money_by_deal", ())]
