"""What the kinds joining a deal with a churn of its account share: the spec's keys, severity
by days, and the evidence of a pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from auditor.engine.alerts import money
from auditor.engine.findings import time_text
from auditor.events.models import Churn, Deal
from auditor.rules.compiled import CompiledRule, MoneyClass, RuleMeta
from auditor.rules.filters import Predicate
from auditor.rules.kind import CompileContext
from auditor.rules.kinds._money import AT_RISK, AtRisk, churn_share
from auditor.rules.spec import Days, Filter, RuleSpecBase, Severity, SeverityByDays


class JoinSpec(RuleSpecBase):
    """Fires on a deal and a churn of the same account within a window, in either arrival
    order."""

    FILTERS: ClassVar[dict[str, str]] = {"deal": "deal", "churn": "churn"}

    deal: Filter = Field(default_factory=dict)
    churn: Filter = Field(default_factory=dict)
    within_days: Days
    severity: Severity | SeverityByDays
    at_risk: Literal[
        "none", "paid_upfront", "paid_upfront_x_churn_share", "commission_amount"
    ]


@dataclass(frozen=True, slots=True)
class ByDays:
    """A fixed severity, or tiers by the days between the joined events."""

    tiers: tuple[tuple[float, str], ...]  # (max_days, severity), first match wins
    otherwise: str

    @classmethod
    def of(cls, severity: str | SeverityByDays) -> ByDays:
        if isinstance(severity, str):
            return cls((), severity)
        return cls(tuple((t.max_days, t.severity) for t in severity.tiers), severity.otherwise)

    def at(self, days: float) -> str:
        for max_days, severity in self.tiers:
            if days <= max_days:
                return severity
        return self.otherwise

    def all(self) -> tuple[str, ...]:
        return tuple(sorted({*(s for _, s in self.tiers), self.otherwise}))


@dataclass(frozen=True, slots=True, eq=False)
class JoinRule(CompiledRule):
    meta: RuleMeta
    deal: Predicate | None
    churn: Predicate | None
    within_days: float
    severity: ByDays
    at_risk: AtRisk
    money: MoneyClass | None

    def window_days(self) -> float:
        return self.within_days

    def severities(self) -> tuple[str, ...]:
        return self.severity.all()


def join_parts(spec: JoinSpec, ctx: CompileContext
               ) -> tuple[RuleMeta, Predicate | None, Predicate | None, float, ByDays, AtRisk,
                          MoneyClass | None]:
    """The JoinRule fields of `spec`, for a kind's own compile."""
    return (ctx.meta, ctx.filter(spec.deal), ctx.filter(spec.churn, "churn"), spec.within_days,
            ByDays.of(spec.severity), AT_RISK[spec.at_risk], ctx.money(spec))


def pair_evidence(deal: Deal, churn: Churn, days: float) -> dict[str, object]:
    return {
        "deal_event_id": deal.event_id, "churn_event_id": churn.event_id,
        "closed_at": time_text(deal.time), "churned_at": time_text(churn.time),
        "days": round(days, 3), "deal_type": deal.deal_type, "churn_type": churn.churn_type,
        "acv": money(deal.acv), "arr_lost": money(churn.arr_lost),
        "churn_share": round(churn_share(deal, churn), 4), "discount_pct": deal.discount_pct,
        "clawback_days": deal.clawback_days, "commission_amount": money(deal.amount),
        "paid_upfront": money(deal.paid_upfront),
    }
