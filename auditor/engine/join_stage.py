"""Stage 1 of the engine, keyed by account: deal rules, deal/churn joins, aggregate facts out.

Joins are symmetric in arrival order: each (deal, churn) pair is examined exactly once, when the
second of the two arrives, so no per-pair memory is needed to fire once per pair.
"""

from __future__ import annotations

from typing import NamedTuple

from auditor.engine.alerts import Alert
from auditor.engine.facts import AggregateFact
from auditor.engine.periods import DAY
from auditor.engine.sink import MetricsSink
from auditor.engine.state import AccountState
from auditor.engine.store import AccountStore
from auditor.events.models import Churn, Deal, Event
from auditor.rules.compiled import CompiledRule, Found
from auditor.rules.exceptions import RuleException, excepted_by
from auditor.rules.pack import RulePack

NO_ALERTS: list[Alert] = []
NO_FACTS: list[AggregateFact] = []


# (class, plan_id, team, the deal's time, amount added to the class's total)
Flag = tuple[str, str, str, float, float]
# A finding an exception of its rule kept from being an alert, and the exception's name.
Excepted = tuple[Alert, str]


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
    excepted: tuple[Excepted, ...] = ()


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
        run = rules.account_rules
        self.exceptions = {r.meta.id: r.meta.exceptions for r in run if r.meta.exceptions}
        # Only the rules whose kind reacts to each event type: the others cost nothing.
        self.on_deal = tuple(r.on_deal for r in run
                             if type(r).on_deal is not CompiledRule.on_deal)
        self.on_churn = tuple(r.on_churn for r in run
                              if type(r).on_churn is not CompiledRule.on_churn)

    def process(self, event: Event) -> Joined:
        store = self.store
        state = store.get(event.account_id)
        if state is None:
            state = AccountState()
        elif (type(event) is Deal and state.deal(event.deal_id) is not None) or state.has_event(
                event.event_id):
            return DUPLICATE
        time = event.time
        watermark = store.watermark
        if time > watermark:
            store.watermark = time
        # Read back: a store may hold the watermark behind (the worker's, at its slowest input).
        now = store.watermark
        outcome = "late" if time < now - self.lateness else "processed"

        found = Found(self.currency)
        if type(event) is Deal:
            for on_deal in self.on_deal:
                on_deal(event, state, found)
            state.add_deal(event)
        else:
            assert type(event) is Churn
            for on_churn in self.on_churn:
                on_churn(event, state, found)
            state.add_churn(event)
        alerts, facts = found.alerts, found.facts
        excepted: tuple[Excepted, ...] = ()
        if alerts and self.exceptions:
            alerts, excepted = _except(self.exceptions, state, alerts)
        flagged = _flag(state, alerts) if alerts else []
        store.put(event.account_id, state, time)
        return Joined(outcome, alerts, facts, flagged, excepted)

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
        for alert, exception in joined.excepted:
            sink.excepted(alert, exception)

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


def _except(exceptions: dict[str, tuple[RuleException, ...]], state: AccountState,
            alerts: list[Alert]) -> tuple[list[Alert], tuple[Excepted, ...]]:
    """The alerts no exception of their rule applies to, and the others with the exception that
    applies. The state holds the event by now: a finding's deal is in it, for deal filters."""
    kept: list[Alert] = []
    excepted: list[Excepted] = []
    for alert in alerts:
        rule_exceptions = exceptions.get(alert.rule)
        exception = None
        if rule_exceptions is not None:
            deal = state.deal(alert.deal_id) if alert.deal_id is not None else None
            exception = excepted_by(rule_exceptions, alert, deal)
        if exception is None:
            kept.append(alert)
        else:
            excepted.append((alert, exception.name))
    return kept, tuple(excepted)


def _flag(state: AccountState, alerts: list[Alert]) -> list[Flag]:
    """Record the money of per-deal alerts in their deals' ledger entries."""
    flagged: list[Flag] = []
    for alert in alerts:
        money = alert.evidence.get("money")
        if not money or alert.deal_id is None or not alert.counts:
            continue
        deal = state.deal(alert.deal_id)
        if deal is None:
            continue
        entry = state.flag(deal.deal_id, deal.plan_id, deal.team, deal.time)
        for money_class, amount in money.items():
            added = entry.flag(money_class, amount)
            if added:
                flagged.append((money_class, entry.plan_id, entry.team, entry.time, added))
    return flagged
