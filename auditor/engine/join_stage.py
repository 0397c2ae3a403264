"""Stage 1 of the engine, keyed by account: deal rules, deal/churn joins, aggregate facts out.

Joins are symmetric in arrival order: each (deal, churn) pair is examined exactly once, when the
second of the two arrives, so no per-pair memory is needed to fire once per pair.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import NamedTuple

from auditor.engine.alerts import Alert
from auditor.engine.facts import AggregateFact, member
from auditor.engine.findings import deal_alert, join_alert
from auditor.engine.periods import DAY, quarter_of
from auditor.engine.plan_check import plan_alert
from auditor.engine.sink import MetricsSink
from auditor.engine.state import AccountState
from auditor.engine.store import AccountStore
from auditor.events.models import Churn, Deal, Event
from auditor.rules.compiled import AggregateRule, JoinRule, RulePack

NO_ALERTS: list[Alert] = []
NO_FACTS: list[AggregateFact] = []
DEAL, CHURNED = AggregateFact.DEAL, AggregateFact.CHURNED
# An aggregate rule as a deal meets it: (rule, its id, the deal's group, counts churns?).
_Aggregate = tuple[AggregateRule, str, Callable[[Deal], str], bool]


# (class, plan_id, team, the deal's time, amount added to the class's total)
Flag = tuple[str, str, str, float, float]


class Claim(NamedTuple):
    """An aggregate finding's money on one of its deals, for that deal's ledger."""

    account_id: str
    deal_id: str
    money_class: str
    amount: float
    plan_id: str
    team: str
    time: float  # the deal's


class Joined(NamedTuple):
    """What one event did at the join stage: its outcome for the events counter, the alerts it
    raised and the facts it sends on. Reported (`JoinStage.report`) only once the caller has
    handled all of it, so an event that fails half-way is counted once, as invalid."""

    outcome: str  # processed, late or duplicate
    alerts: list[Alert]
    facts: list[AggregateFact]
    # What the alerts added to the de-duplicated totals.
    flagged: list[Flag]


DUPLICATE = Joined("duplicate", NO_ALERTS, NO_FACTS, [])


class JoinStage:
    def __init__(self, rules: RulePack, store: AccountStore, sink: MetricsSink,
                 lateness_days: float) -> None:
        self.store = store
        self.sink = sink
        self.set_rules(rules)
        self.lateness = lateness_days * DAY

    def set_rules(self, rules: RulePack) -> None:
        """Swap the rule pack; state is kept (hot reload)."""
        self.rules = rules
        self.currency = rules.currency.reporting
        self.horizon = rules.longest_window_days() * DAY
        self.churn_aggregates = tuple(
            r for r in rules.aggregate_rules if r.counts_churn
        )
        self._aggregates: tuple[_Aggregate, ...] = tuple(
            (r, r.meta.id, attrgetter(r.group_by), r.counts_churn)
            for r in rules.aggregate_rules
        )

    def process(self, event: Event) -> Joined:
        store = self.store
        state = store.get(event.account_id)
        if state is None:
            state = AccountState()
        elif event.event_id in state.event_ids or (
            type(event) is Deal and event.deal_id in state.deals
        ):
            return DUPLICATE
        time = event.time
        watermark = store.watermark
        if time > watermark:
            store.watermark = time
        # Read back: a store may hold the watermark behind (the worker's, at its slowest input).
        now = store.watermark
        outcome = "late" if time < now - self.lateness else "processed"

        if type(event) is Deal:
            alerts, facts = self._on_deal(event, state)
            state.deals[event.deal_id] = event
        else:
            assert type(event) is Churn
            alerts, facts = self._on_churn(event, state)
            state.churns.append(event)
        state.event_ids.add(event.event_id)
        flagged = _flag(state, alerts) if alerts else []
        store.put(event.account_id, state, time)
        return Joined(outcome, alerts, facts, flagged)

    def expire(self) -> None:
        """Forget what is past the horizon (the store works in whole days, so this is cheap
        but for once a day). Called after an event's work is done -- in replay, after the
        aggregate findings it settled have claimed their money in the deals' ledgers, so a
        jump in event time cannot drop a ledger entry before its last claim."""
        store = self.store
        span = self.horizon + self.lateness
        store.expire(store.watermark - span, store.ledger_watermark - span)

    def audit(self, event: Event) -> Joined:
        """`process`, `report` and `expire`: the whole of an event's work when this stage is
        alone."""
        joined = self.process(event)
        self.report(event, joined)
        self.expire()
        return joined

    def report(self, event: Event, joined: Joined) -> None:
        """Count the event, the commission a deal paid, its alerts and what they flagged, once
        its outputs are in hand."""
        sink = self.sink
        sink.event(event.event_type, joined.outcome)
        if type(event) is Deal and joined.outcome != "duplicate":
            sink.commission_paid(event.plan_id, event.team, event.time, event.amount)
        for alert in joined.alerts:
            sink.alert(alert)
        for flag in joined.flagged:
            sink.commission_flagged(*flag)

    def claim(self, claim: Claim) -> Flag | None:
        """An aggregate finding's money on one deal of this stage's account: recorded in the
        deal's ledger; what it adds to the class's total, if anything."""
        state = self.store.get(claim.account_id)
        if state is None:
            state = AccountState()
        entry = state.flag(claim.deal_id, claim.plan_id, claim.team, claim.time)
        added = entry.flag(claim.money_class, claim.amount)
        if not added:  # a redelivered claim, or less than a finding already gave the deal
            return None
        self.store.put(claim.account_id, state, entry.time)
        flag = (claim.money_class, entry.plan_id, entry.team, entry.time, added)
        self.sink.commission_flagged(*flag)
        return flag

    def _on_deal(self, deal: Deal, state: AccountState) -> tuple[list[Alert], list[AggregateFact]]:
        alerts: list[Alert] = []
        for rule in self.rules.deal_rules:
            if (rule.deal is None or rule.deal(deal)) and (
                rule.min_upfront_share is None
                or deal.paid_upfront >= rule.min_upfront_share * deal.amount
            ):
                alerts.append(deal_alert(rule, deal, self.currency))
        if self.rules.plans is not None:
            contradiction = plan_alert(self.rules.plans, deal, self.currency)
            if contradiction is not None:
                alerts.append(contradiction)
        if state.churns:
            for join in self.rules.join_rules:
                if join.deal is None or join.deal(deal):
                    self._join_deal(join, deal, state, alerts)
        facts: list[AggregateFact] = []
        period, end = quarter_of(deal.time)
        account_id, deal_id, churns = deal.account_id, deal.deal_id, state.churns
        deal_type, amount, acv, upfront = deal.deal_type, deal.amount, deal.acv, deal.paid_upfront
        # One tuple of the deal's figures, shared by its facts and the periods that keep them.
        entry = (deal_type, amount, acv, upfront)
        key = member(account_id, deal_id)
        for agg, rule_id, group_of, churn_share in self._aggregates:
            if agg.deal is None or agg.deal(deal):
                group = group_of(deal)
                facts.append(AggregateFact(DEAL, rule_id, group, period, end, account_id, deal_id,
                                           deal_type, amount, acv, upfront, entry, key))
                if churn_share and churns:
                    days = self._earliest_churn(agg, deal, churns)
                    if days is not None:
                        facts.append(AggregateFact(
                            CHURNED, rule_id, group, period, end, account_id, deal_id,
                            deal_type, amount, acv, upfront, member_key=key, days=days,
                            money_class=_money_class(agg, deal, days), plan_id=deal.plan_id,
                            team=deal.team, deal_time=deal.time))
        return alerts, facts

    def _join_deal(self, join: JoinRule, deal: Deal, state: AccountState,
                   alerts: list[Alert]) -> None:
        within = join.within_days
        if join.deal_after_churn:
            best: tuple[float, Churn] | None = None
            for churn in state.churns:
                days = (deal.time - churn.time) / DAY
                if 0 <= days <= within and (join.churn is None or join.churn(churn)) and (
                    best is None or days < best[0]
                ):
                    best = (days, churn)  # the most recent qualifying churn is the evidence
            if best is not None:
                state.mark_fired(f"{join.meta.id}\x1f{deal.deal_id}")
                alerts.append(join_alert(join, deal, best[1], best[0], self.currency))
            return
        for churn in state.churns:
            days = (churn.time - deal.time) / DAY
            if (0 <= days <= within and (join.churn is None or join.churn(churn))
                    and not _recovered(join, deal, days)):
                alerts.append(join_alert(join, deal, churn, days, self.currency))

    def _on_churn(self, churn: Churn, state: AccountState
                  ) -> tuple[list[Alert], list[AggregateFact]]:
        if not state.deals:
            return NO_ALERTS, NO_FACTS
        alerts: list[Alert] = []
        for join in self.rules.join_rules:
            if join.churn is not None and not join.churn(churn):
                continue
            within = join.within_days
            for deal in state.deals.values():
                if join.deal is not None and not join.deal(deal):
                    continue
                if join.deal_after_churn:
                    days = (deal.time - churn.time) / DAY
                    key = f"{join.meta.id}\x1f{deal.deal_id}"
                    if 0 <= days <= within and key not in state.fired:
                        state.mark_fired(key)
                        alerts.append(join_alert(join, deal, churn, days, self.currency))
                else:
                    days = (churn.time - deal.time) / DAY
                    if 0 <= days <= within and not _recovered(join, deal, days):
                        alerts.append(join_alert(join, deal, churn, days, self.currency))
        facts: list[AggregateFact] = []
        for agg in self.churn_aggregates:
            if agg.churn is not None and not agg.churn(churn):
                continue
            for deal in state.deals.values():
                if (agg.deal is None or agg.deal(deal)) and self._churned_early(agg, deal, churn):
                    period, end = quarter_of(deal.time)
                    group = getattr(deal, agg.group_by)
                    days = (churn.time - deal.time) / DAY
                    facts.append(AggregateFact(CHURNED, agg.meta.id, group, period, end,
                                               deal.account_id, deal.deal_id, deal.deal_type,
                                               deal.amount, deal.acv, deal.paid_upfront,
                                               days=days,
                                               money_class=_money_class(agg, deal, days),
                                               plan_id=deal.plan_id, team=deal.team,
                                               deal_time=deal.time))
        return alerts, facts

    @classmethod
    def _earliest_churn(cls, agg: AggregateRule, deal: Deal, churns: list[Churn]
                        ) -> float | None:
        """Days to the earliest churn that counts the deal as churned early, if any."""
        days = [(c.time - deal.time) / DAY for c in churns if cls._churned_early(agg, deal, c)]
        return min(days) if days else None

    @staticmethod
    def _churned_early(agg: AggregateRule, deal: Deal, churn: Churn) -> bool:
        return agg.churned_in_window(deal.time, churn.time) and (
            agg.churn is None or agg.churn(churn))


def _flag(state: AccountState, alerts: list[Alert]) -> list[Flag]:
    """Record the money of per-deal alerts in their deals' ledger entries."""
    flagged: list[Flag] = []
    for alert in alerts:
        money = alert.evidence.get("money")
        if not money or alert.deal_id is None:
            continue
        deal = state.deals.get(alert.deal_id)
        if deal is None:
            continue
        entry = state.flag(deal.deal_id, deal.plan_id, deal.team, deal.time)
        for money_class, amount in money.items():
            added = entry.flag(money_class, amount)
            if added:
                flagged.append((money_class, entry.plan_id, entry.team, entry.time, added))
    return flagged


def _money_class(agg: AggregateRule, deal: Deal, days: float) -> str | None:
    return agg.money.of(deal.clawback_days, days) if agg.money is not None else None


def _recovered(join: JoinRule, deal: Deal, days: float) -> bool:
    """A clawback window (clawback_days > 0) that reaches the churn day recovers the commission."""
    return join.unless_clawback_covers and deal.clawback_days > 0 and days <= deal.clawback_days
