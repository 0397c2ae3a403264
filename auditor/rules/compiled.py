"""Rules as the engine runs them: frozen, checked, their conditions already compiled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from auditor.engine.periods import DAY, add_months
from auditor.events.currency import CurrencyTable
from auditor.rules.filters import Predicate

if TYPE_CHECKING:  # the registry's loader reads rule files too: no import cycle at run time
    from auditor.plans.registry import PlanRegistry


@dataclass(frozen=True, slots=True)
class RuleMeta:
    id: str
    kind: str
    description: str
    runbook: str
    labels: dict[str, str]
    source: str  # file:line where the rule is defined


@dataclass(frozen=True, slots=True)
class MoneyClass:
    """Which money a finding's amount is (unrecovered, recoverable, exposure, overpaid): fixed,
    or `clawback_covers` for a deal whose clawback window (> 0 days) reaches the churn day."""

    otherwise: str
    clawback_covers: str | None = None

    def of(self, clawback_days: int, days: float) -> str:
        if self.clawback_covers is not None and clawback_days > 0 and days <= clawback_days:
            return self.clawback_covers
        return self.otherwise


@dataclass(frozen=True, slots=True, eq=False)
class DealRule:
    meta: RuleMeta
    deal: Predicate | None
    min_upfront_share: float | None
    severity: str
    at_risk: str
    money: MoneyClass | None = None


@dataclass(frozen=True, slots=True, eq=False)
class JoinRule:
    meta: RuleMeta
    deal_after_churn: bool  # False: churn-after-deal
    deal: Predicate | None
    churn: Predicate | None
    within_days: float
    unless_clawback_covers: bool
    severity: str | None  # fixed severity, or None when tiered
    severity_tiers: tuple[tuple[float, str], ...]  # (max_days, severity), first match wins
    severity_otherwise: str
    at_risk: str
    money: MoneyClass | None = None

    def severity_for(self, days: float) -> str:
        if self.severity is not None:
            return self.severity
        for max_days, severity in self.severity_tiers:
            if days <= max_days:
                return severity
        return self.severity_otherwise


@dataclass(frozen=True, slots=True, eq=False)
class AggregateRule:
    meta: RuleMeta
    measure: str
    group_by: str
    deal: Predicate | None
    churn: Predicate | None
    churn_within_days: float
    min_deals: dict[str, int]  # by deal_type, or {"all": n}
    threshold_op: str  # above, below, at_least, at_most
    threshold: float
    settle_days: float
    severity: str
    at_risk: str
    money: MoneyClass | None = None
    churn_within_months: int = 0  # commission_retention: the window in calendar months

    @property
    def counts_churn(self) -> bool:
        """Its deals are counted as churned when their account churns soon enough."""
        return self.measure in ("early_churn_share", "commission_retention")

    def churned_in_window(self, deal_time: float, churn_time: float) -> bool:
        """The churn falls in the rule's window after the deal: 0..churn_within_days days, or
        (close, close + churn_within_months calendar months]."""
        if self.churn_within_months:
            return deal_time < churn_time <= add_months(deal_time, self.churn_within_months)
        return 0 <= (churn_time - deal_time) / DAY <= self.churn_within_days

    def settles_after(self, end: float) -> float:
        """When a period ending at `end` settles, before the allowed lateness."""
        if self.churn_within_months:
            end = add_months(end, self.churn_within_months)
        return end + self.settle_days * DAY

    def crosses(self, value: float) -> bool:
        op, limit = self.threshold_op, self.threshold
        if op == "above":
            return value > limit
        if op == "below":
            return value < limit
        if op == "at_least":
            return value >= limit
        return value <= limit


@dataclass(frozen=True, slots=True)
class RulePack:
    deal_rules: tuple[DealRule, ...] = ()
    join_rules: tuple[JoinRule, ...] = ()
    aggregate_rules: tuple[AggregateRule, ...] = ()
    currency: CurrencyTable = field(default_factory=CurrencyTable)
    sources: tuple[str, ...] = ()  # the files it was loaded from
    plans: PlanRegistry | None = None  # rules/plans.yaml: deals are checked against it
    disabled_ids: tuple[str, ...] = ()  # rules written with `enabled: false`, not run

    @property
    def rule_count(self) -> int:
        return len(self.deal_rules) + len(self.join_rules) + len(self.aggregate_rules)

    def longest_window_days(self) -> float:
        """How far back in event time any rule looks: join windows and aggregate settle times."""
        spans: list[float] = [r.within_days for r in self.join_rules]
        for r in self.aggregate_rules:
            spans.append(max(r.settle_days, r.churn_within_days)
                         + r.churn_within_months * 31)  # a month is at most 31 days
        return max(spans, default=0.0)

    def by_id(self) -> dict[str, Any]:
        rules: list[Any] = [*self.deal_rules, *self.join_rules, *self.aggregate_rules]
        return {r.meta.id: r for r in rules}
