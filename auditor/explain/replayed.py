"""What a replay of the file did about one deal and one rule: the engine itself, through
`Replay`, with its alerts collected, its findings an exception of the rule kept from being
alerts beside them, and, for an aggregate rule, the deal's period looked at as the aggregate
stage evaluates it (value or not, crossed or not)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from auditor.engine.aggregate_stage import AggregateStage
from auditor.engine.alerts import Alert
from auditor.engine.engine import DEFAULT_LATENESS_DAYS
from auditor.engine.facts import DEAL, AggregateFact, member
from auditor.engine.periods import DAY
from auditor.engine.state import AggregateState
from auditor.events.models import Deal
from auditor.metrics.counters import RunCounters
from auditor.replay.runner import Replay
from auditor.rules.exceptions import RuleException
from auditor.rules.kinds.aggregate import AggregateRule
from auditor.rules.measures import QuantityParts
from auditor.rules.pack import RulePack


@dataclass(frozen=True, slots=True)
class PeriodSeen:
    """An aggregate period as it was when the replay evaluated it."""

    value: float | None  # None: not evaluated (too few deals, or nothing to divide by)
    deals: int
    counted: bool  # the deal is one of them
    churned: bool  # the deal is one of them, counted as churned
    sums: tuple[float, ...]  # the measure's sums over the deals
    churned_sums: tuple[float, ...]  # ... over those counted as churned
    numerator: QuantityParts  # the measure's quantities, as its value read them
    denominator: QuantityParts


@dataclass(frozen=True, slots=True)
class Excepted:
    """A finding of the rule the replay made but did not emit: the exception that matched it."""

    alert: Alert
    exception: RuleException


@dataclass
class Replayed:
    alerts: list[Alert] = field(default_factory=list)  # of the rule, about the deal or period
    # Of the rule, about another deal of the account, the deal named in their evidence.
    naming: list[Alert] = field(default_factory=list)
    # The rule's findings an exception kept from being alerts, chosen as `alerts` and `naming`
    # are (both kinds together: each alert says which deal it is about).
    excepted: list[Excepted] = field(default_factory=list)
    period: PeriodSeen | None = None  # aggregate rules: None when never evaluated


class _Counters(RunCounters):
    """The run's counters, also handing each excepted finding to `on_excepted`."""

    def __init__(self, on_excepted: Callable[[Alert, str], None]) -> None:
        super().__init__()
        self.on_excepted = on_excepted

    def excepted(self, alert: Alert, exception: str) -> None:
        super().excepted(alert, exception)
        self.on_excepted(alert, exception)


class _Watched(AggregateStage):
    """The replay's aggregate stage, remembering one period as it is evaluated."""

    def __init__(self, rules: RulePack, base: AggregateStage, key: str, deal_key: str) -> None:
        super().__init__(rules, base.store, base.sink, base.lateness / DAY,
                         evaluate_on_settle=base.evaluate_on_settle)
        self.key = key
        self.deal_key = deal_key
        self.seen: PeriodSeen | None = None
        self.counted = False  # the deal's fact reached the period (a period keeps counts)

    def apply(self, fact: AggregateFact) -> list[Alert]:
        if not (fact.kind == DEAL and fact.key == self.key and fact.member == self.deal_key):
            return super().apply(fact)
        before = self._count()
        alerts = super().apply(fact)
        self.counted = self._count() > before
        return alerts

    def _count(self) -> int:
        state = self.store.get(self.key)
        return state.count if state is not None else 0

    def _evaluate(self, rule: AggregateRule, state: AggregateState, key: str,
                  alerts: list[Alert]) -> None:
        if key == self.key:
            counted = self.counted
            numerator, denominator = rule.measure.parts(state.sums, state.churned_sums)
            self.seen = PeriodSeen(
                rule.value(state), state.count, counted,
                counted and self.deal_key in state.churned, tuple(state.sums),
                tuple(state.churned_sums), numerator, denominator)
        super()._evaluate(rule, state, key, alerts)


def replay_for(pack: RulePack, path: str, rule_id: str, deal: Deal,
               group: str | None = None, period: str | None = None,
               named_as: str | None = None) -> Replayed:
    """Replay `path` under `pack`; keep the rule's alerts about `deal` or, with `group` and
    `period` (an aggregate rule), about that period of the deal's group. With `named_as` (an
    evidence key, e.g. `first_deal_id`), also keep in `naming` the rule's alerts about other
    deals of the account whose evidence names the deal under that key. The rule's findings an
    exception kept from being alerts are kept in `excepted`, chosen the same way."""
    found = Replayed()
    rule = pack.by_id().get(rule_id)
    exceptions = {e.name: e for e in rule.meta.exceptions} if rule is not None else {}

    def about(alert: Alert) -> list[Alert] | None:
        """Where an alert of this selection goes: `alerts`, `naming`, or None (not kept)."""
        if alert.rule != rule_id:
            return None
        if period is None:
            if alert.account_id != deal.account_id:
                return None
            if alert.deal_id == deal.deal_id:
                return found.alerts
            if named_as is not None and alert.evidence.get(named_as) == deal.deal_id:
                return found.naming
            return None
        return found.alerts if alert.group == group and alert.period == period else None

    def keep(alert: Alert) -> None:
        kept = about(alert)
        if kept is not None:
            kept.append(alert)

    def keep_excepted(alert: Alert, name: str) -> None:
        exception = exceptions.get(name)
        if exception is not None and about(alert) is not None:
            found.excepted.append(Excepted(alert, exception))

    replay = Replay(pack, _Counters(keep_excepted), on_alert=keep,
                    lateness_days=DEFAULT_LATENESS_DAYS)
    watched: _Watched | None = None
    if period is not None and group is not None:
        watched = _Watched(pack, replay.engine.aggregate, f"{rule_id}\x1f{group}\x1f{period}",
                           member(deal.account_id, deal.deal_id))
        replay.engine.aggregate = watched
    replay.run_files([path])
    if watched is not None:
        found.period = watched.seen
    return found
