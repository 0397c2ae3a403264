"""Stage 2 of the engine, keyed by (rule, group, period): sums deals, evaluates periods.

When a period is evaluated is the shell's choice: the worker evaluates it once it is settled --
the watermark (the smallest over the source partitions) has passed its end + the rule's settle
time + the allowed lateness -- and a late fact for a settled period re-evaluates it; replay
evaluates every period once, at end of input, or when it leaves the horizon, whichever is first
(its figures cannot change after that). A period fires at most once: its state remembers, and a
fact for a period already dropped past the horizon is ignored rather than starting it afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from auditor.engine import retention
from auditor.engine.alerts import Alert
from auditor.engine.facts import DEAL, AggregateFact
from auditor.engine.periods import DAY
from auditor.engine.sink import MetricsSink
from auditor.engine.state import ZERO_VALUES, AggregateState, Churned
from auditor.engine.store import AggregateStore
from auditor.rules.exceptions import excepted_by
from auditor.rules.kinds.aggregate import AggregateRule
from auditor.rules.pack import RulePack

NO_ALERTS: list[Alert] = []


def _values_of_format_1(rule: AggregateRule, state: AggregateState,
                        fact: AggregateFact) -> Sequence[float]:
    """The contributions of a fact of format 1 (sent without them), from what it has of the
    deal. A measure over other fields cannot be known: the period keeps the deal's entry the
    way a period of format 1 does, which leaves it unevaluated (AggregateRule.value)."""
    try:
        return rule.entry_contributions(fact.entry)
    except LookupError:
        if state.legacy is None:
            state.legacy = {}
        state.legacy[fact.member] = fact.entry
        return ZERO_VALUES


class LiveValue(NamedTuple):
    rule: str
    group_by: str
    group: str
    value: float
    breached: bool


class AggregateStage:
    def __init__(self, rules: RulePack, store: AggregateStore, sink: MetricsSink,
                 lateness_days: float, evaluate_on_settle: bool = True) -> None:
        self.store = store
        self._get, self._put = store.get, store.put  # bound once: called per fact
        self.sink = sink
        self.lateness = lateness_days * DAY
        self.evaluate_on_settle = evaluate_on_settle
        self.set_rules(rules)

    def set_rules(self, rules: RulePack) -> None:
        self.rules = {r.meta.id: r for r in rules.aggregate_rules}
        # Live values are exported for these only: rep-level detail lives in the alerts.
        self.bounded = frozenset(rules.bounded_dimensions)
        self.currency = rules.currency.reporting
        self.horizon = rules.longest_window_days() * DAY
        self._next_check = float("-inf")  # recomputed on the next watermark
        watermark = self.store.watermark
        # Periods that ended before this are gone (or were never kept): facts for them are not
        # counted, so a period can never fire a second time.
        self._cutoff = watermark - self.horizon - self.lateness if watermark else float("-inf")

    def apply(self, fact: AggregateFact) -> list[Alert]:
        # Once per deal and rule: the hottest path of the engine, so its reads are few.
        rule = self.rules.get(fact.rule)
        if rule is None or fact.period_end < self._cutoff:
            # A rule removed by a reload while its facts were in flight, or a period gone.
            return NO_ALERTS
        key = fact.key
        state = self._get(key)
        if state is None:
            state = AggregateState(fact.rule, fact.group, fact.period, fact.period_end)
            # A new period may need a look before every one already known.
            check_at = self._check_at(rule, state)
            if check_at < self._next_check:
                self._next_check = check_at
        values = fact.values or _values_of_format_1(rule, state, fact)
        if fact.kind == DEAL:
            state.add_deal(fact.deal_type, fact.amount, fact.acv, values)
        elif not state.add_churned(fact.member, Churned(
                fact.days, fact.money_class, fact.plan_id, fact.team, fact.deal_time,
                fact.amount, fact.paid_upfront), values):
            return NO_ALERTS  # counted with a churn as early already
        self._put(key, state)
        if not state.settled:
            return NO_ALERTS
        alerts: list[Alert] = []
        self._evaluate(rule, state, key, alerts)  # a late fact for a settled period
        return alerts

    def observe(self, watermark: float) -> list[Alert]:
        """The watermark moved: evaluate what settled, drop what left the horizon."""
        store = self.store
        if watermark > store.watermark:
            store.watermark = watermark
        watermark = store.watermark  # read back: a store may derive its own
        if watermark < self._next_check:
            return NO_ALERTS
        alerts: list[Alert] = []
        self.advance(watermark, alerts)
        return alerts

    def advance(self, watermark: float, alerts: list[Alert]) -> None:
        """Evaluate periods that settled by `watermark`, forget those past the horizon."""
        next_check = float("inf")
        self._cutoff = cutoff = watermark - self.horizon - self.lateness
        for key, state in self.store.items():
            rule = self.rules.get(state.rule)
            if rule is None:
                self.store.delete(key)
                continue
            if state.end < cutoff:
                if not state.settled:  # never dropped unevaluated
                    state.settled = True
                    self._evaluate(rule, state, key, alerts)
                self.store.delete(key)
                continue
            if (self.evaluate_on_settle and not state.settled
                    and watermark >= self._settles_at(rule, state)):
                state.settled = True
                self._evaluate(rule, state, key, alerts)
            next_check = min(next_check, self._check_at(rule, state))
        self._next_check = next_check

    def _settles_at(self, rule: AggregateRule, state: AggregateState) -> float:
        return rule.settles_after(state.end) + self.lateness

    def _check_at(self, rule: AggregateRule, state: AggregateState) -> float:
        """The watermark at which this period next needs a look: it settles, or leaves."""
        if self.evaluate_on_settle and not state.settled:
            return self._settles_at(rule, state)
        return state.end + self.horizon + self.lateness

    def live_values(self) -> list[LiveValue]:
        """The value of each aggregate grouped by a bounded dimension in the watermark's
        period, for a gauge."""
        watermark = self.store.watermark
        values = []
        for _, state in self.store.items():
            rule = self.rules.get(state.rule)
            if (rule is None or rule.group_by not in self.bounded
                    or rule.measure.kpi  # its own gauge, settled or live
                    or state.period != rule.period_of(watermark)[0]):
                continue
            value = rule.value(state)
            if value is not None:
                values.append(LiveValue(rule.meta.id, rule.group_by, state.group, value,
                                        rule.crosses(value)))
        return values

    def retention_values(self) -> list[retention.RetentionValue]:
        """The live figure of every commission-retention period not evaluated yet."""
        values = []
        for _, state in self.store.items():
            rule = self.rules.get(state.rule)
            if rule is not None and rule.measure.kpi and not state.settled:
                values.append(retention.retention_value(rule, state, rule.value(state),
                                                        settled=False))
        return values

    def flush(self) -> list[Alert]:
        """End of input (replay): evaluate every period not yet evaluated, settled or not."""
        alerts: list[Alert] = []
        for key, state in self.store.items():
            rule = self.rules.get(state.rule)
            if rule is not None and not state.settled:
                state.settled = True
                self._evaluate(rule, state, key, alerts)
        return alerts

    def _evaluate(self, rule: AggregateRule, state: AggregateState, key: str,
                  alerts: list[Alert]) -> None:
        value = rule.value(state)
        settled = True
        if rule.measure.kpi:  # a key figure is reported, crossing or not
            settled = self.store.watermark >= self._settles_at(rule, state)
            self.sink.retention(retention.retention_value(rule, state, value, settled))
        if state.fired:
            self.store.put(key, state)
            return
        if value is not None and rule.crosses(value):
            state.fired = True
            evidence, at_risk = rule.explain(state)
            if rule.measure.kpi:  # live: replay's end came before its window
                evidence["status"] = "settled" if settled else "live"
            alert = rule.alert(state, value, evidence, at_risk, self.currency)
            # Excepted, it stays fired: the period never fires again, even once it expires.
            exception = (excepted_by(rule.meta.exceptions, alert, None)
                         if rule.meta.exceptions else None)
            if exception is not None:
                self.sink.excepted(alert, exception.name)
            else:
                self.sink.alert(alert)
                alerts.append(alert)
        self.store.put(key, state)

