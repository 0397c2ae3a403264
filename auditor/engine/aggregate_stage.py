"""Stage 2 of the engine, keyed by (rule, group, period): sums deals, evaluates periods.

When a period is evaluated is the shell's choice: the worker evaluates it once it is settled --
the watermark (the smallest over the source partitions) has passed its end + the rule's settle
time + the allowed lateness -- and a late fact for a settled period re-evaluates it; replay
evaluates every period once, at end of input, or when it leaves the horizon, whichever is first
(its figures cannot change after that). A period fires at most once: its state remembers, and a
fact for a period already dropped past the horizon is ignored rather than starting it afresh.
"""

from __future__ import annotations

from typing import NamedTuple

from auditor.engine import retention
from auditor.engine.alerts import Alert, money
from auditor.engine.facts import AggregateFact, deal_of
from auditor.engine.findings import aggregate_alert, time_text
from auditor.engine.periods import DAY, quarter_of
from auditor.engine.sink import MetricsSink
from auditor.engine.state import AggregateState, Churned
from auditor.engine.store import AggregateStore
from auditor.rules.compiled import AggregateRule, RulePack

DEAL = AggregateFact.DEAL
NO_ALERTS: list[Alert] = []

# Live values are exported for these only: rep-level detail lives in the alerts.
LIVE_GROUP_BY = ("team", "plan_id")


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
        self.sink = sink
        self.lateness = lateness_days * DAY
        self.evaluate_on_settle = evaluate_on_settle
        self.set_rules(rules)

    def set_rules(self, rules: RulePack) -> None:
        self.rules = {r.meta.id: r for r in rules.aggregate_rules}
        self.currency = rules.currency.reporting
        self.horizon = rules.longest_window_days() * DAY
        self._next_check = float("-inf")  # recomputed on the next watermark
        watermark = self.store.watermark
        # Periods that ended before this are gone (or were never kept): facts for them are not
        # counted, so a period can never fire a second time.
        self._cutoff = watermark - self.horizon - self.lateness if watermark else float("-inf")

    def apply(self, fact: AggregateFact) -> list[Alert]:
        rule = self.rules.get(fact.rule)
        if rule is None:  # a rule removed by a reload while its facts were in flight
            return []
        if fact.period_end < self._cutoff:
            return []
        key = fact.key
        store = self.store
        state = store.get(key)
        if state is None:
            state = AggregateState(fact.rule, fact.group, fact.period, fact.period_end)
            # A new period may need a look before every one already known.
            check_at = self._check_at(rule, state)
            if check_at < self._next_check:
                self._next_check = check_at
        if fact.kind == DEAL:
            entry = fact.entry
            if entry is None:
                entry = (fact.deal_type, fact.amount, fact.acv, fact.paid_upfront)
            changed = state.add_entry(fact.member, entry)
        else:
            changed = state.add_churned(fact.member, Churned(
                fact.days, fact.money_class, fact.plan_id, fact.team, fact.deal_time))
        if not changed:  # re-delivered
            return NO_ALERTS
        store.put(key, state)
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
        """The value of each team and plan aggregate in the watermark's quarter, for a gauge."""
        current = quarter_of(self.store.watermark)[0]
        values = []
        for _, state in self.store.items():
            rule = self.rules.get(state.rule)
            if (rule is None or rule.group_by not in LIVE_GROUP_BY or state.period != current
                    or rule.measure == retention.MEASURE):  # its own gauge, settled or live
                continue
            value = measure(rule, state)
            if value is not None:
                values.append(LiveValue(rule.meta.id, rule.group_by, state.group, value,
                                        rule.crosses(value)))
        return values

    def retention_values(self) -> list[retention.RetentionValue]:
        """The live figure of every commission-retention period not evaluated yet."""
        values = []
        for _, state in self.store.items():
            rule = self.rules.get(state.rule)
            if rule is not None and rule.measure == retention.MEASURE and not state.settled:
                values.append(retention.retention_value(rule, state, measure(rule, state),
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
        value = measure(rule, state)
        settled = True
        if rule.measure == retention.MEASURE:  # the KPI is reported, crossing or not
            settled = self.store.watermark >= self._settles_at(rule, state)
            self.sink.retention(retention.retention_value(rule, state, value, settled))
        if state.fired:
            self.store.put(key, state)
            return
        if value is not None and rule.crosses(value):
            state.fired = True
            evidence, at_risk = explain(rule, state)
            if rule.measure == retention.MEASURE:  # live: replay's end came before its window
                evidence["status"] = "settled" if settled else "live"
            alert = aggregate_alert(rule, state, value, evidence, at_risk, self.currency)
            self.sink.alert(alert)
            alerts.append(alert)
        self.store.put(key, state)


def measure(rule: AggregateRule, state: AggregateState) -> float | None:
    """The rule's value for the period, or None when it is not evaluated (too few deals, or a
    zero denominator)."""
    totals = state.totals
    if rule.measure == "early_churn_share":
        n = len(state.deals)
        if n == 0 or n < rule.min_deals["all"]:
            return None
        return state.churned_count / n
    if rule.measure == "commission_retention":
        total = sum(t[1] for t in totals.values())
        if total == 0 or len(state.deals) < rule.min_deals["all"]:
            return None
        return (total - state.churned_amount) / total
    if rule.measure == "new_logo_commission_share":
        total = sum(t[1] for t in totals.values())
        if total == 0 or len(state.deals) < rule.min_deals["all"]:
            return None
        return totals.get("new_logo", _NONE)[1] / total
    # renewal_rate_ratio
    renewal, new_logo = totals.get("renewal", _NONE), totals.get("new_logo", _NONE)
    if renewal[0] < rule.min_deals.get("renewal", 0) or new_logo[0] < rule.min_deals.get(
        "new_logo", 0
    ):
        return None
    if renewal[2] == 0 or new_logo[2] == 0 or new_logo[1] == 0:
        return None
    return (renewal[1] / renewal[2]) / (new_logo[1] / new_logo[2])


_NONE = (0, 0.0, 0.0)


def explain(rule: AggregateRule, state: AggregateState) -> tuple[dict[str, object], float]:
    """(evidence, at_risk) of a period that fired: the numbers behind its value, and for a
    rule with an at_risk the money of each churned deal by class."""
    totals = state.totals
    if rule.measure == "early_churn_share":
        churned = [m for m in sorted(state.churned) if m in state.deals]
        evidence: dict[str, object] = {
            "deals": len(state.deals), "churned_deals": len(churned),
            "churned_deal_ids": [deal_of(m) for m in churned],
            "churned_paid_upfront": money(state.churned_upfront),
        }
        if rule.at_risk != "churned_paid_upfront":
            return evidence, 0.0
        # Each deal's amount in cents first, so the classes add up to at_risk to the cent.
        by_class: dict[str, float] = {}
        by_deal = []
        for m in churned:
            how = state.churned[m]
            money_class = how.money_class or "unclassified"
            amount = money(state.deals[m][3])
            by_class[money_class] = money(by_class.get(money_class, 0.0) + amount)
            account_id, _, deal_id = m.partition("\x1f")
            by_deal.append({"account_id": account_id, "deal_id": deal_id,
                            "class": money_class, "amount": amount,
                            "plan_id": how.plan_id, "team": how.team,
                            "closed_at": time_text(how.deal_time)})
        evidence["money"] = dict(sorted(by_class.items()))
        evidence["money_by_deal"] = by_deal
        return evidence, money(sum(by_class.values()))
    if rule.measure == retention.MEASURE:
        paid = sum(t[1] for t in totals.values())
        return {"deals": len(state.deals), "months": rule.churn_within_months,
                "commission_paid": money(paid),
                "commission_retained": money(paid - state.churned_amount),
                "churned_deals": state.churned_count,
                "churned_deal_ids": [deal_of(m) for m in sorted(state.churned)
                                     if m in state.deals]}, 0.0
    evidence = {"deals": len(state.deals)}
    for deal_type in sorted(totals):
        count, commission, acv = totals[deal_type]
        evidence[deal_type] = {"deals": int(count), "commission": money(commission),
                               "acv": money(acv)}
    return evidence, 0.0
