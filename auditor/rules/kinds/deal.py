"""Kind `deal`: fires on one deal by itself (e.g. tcv-paid-upfront)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from auditor.engine.alerts import Alert, money
from auditor.engine.findings import deal_alert, time_text
from auditor.engine.state import AccountState
from auditor.events.models import Deal
from auditor.rules.compiled import CompiledRule, Found, MoneyClass, RuleMeta
from auditor.rules.filters import Predicate
from auditor.rules.kind import CompileContext, RuleKind
from auditor.rules.kinds._money import AT_RISK, AtRisk
from auditor.rules.spec import Filter, RuleSpecBase, Severity


class DealRuleSpec(RuleSpecBase):
    """Fires on one deal by itself."""

    FILTERS: ClassVar[dict[str, str]] = {"deal": "deal"}

    kind: Literal["deal"]
    deal: Filter = Field(default_factory=dict)
    # paid_upfront >= share x commission.amount
    min_upfront_share: Annotated[float, Field(ge=0, le=1)] | None = None
    severity: Severity
    at_risk: Literal["none", "paid_upfront", "commission_amount", "upfront_beyond_first_year"]


@dataclass(frozen=True, slots=True, eq=False)
class DealRule(CompiledRule):
    ORDER: ClassVar[int] = 0

    meta: RuleMeta
    deal: Predicate | None
    min_upfront_share: float | None
    severity: str
    at_risk: AtRisk
    money: MoneyClass | None
    # What the at_risk amount is, for the sentence (the at_risk key of the rule file).
    at_risk_name: str = "none"

    def on_deal(self, deal: Deal, state: AccountState, found: Found) -> None:
        if (self.deal is None or self.deal(deal)) and (
            self.min_upfront_share is None
            or deal.paid_upfront >= self.min_upfront_share * deal.amount
        ):
            found.alerts.append(self._alert(deal, found.currency))

    def severities(self) -> tuple[str, ...]:
        return (self.severity,)

    def _alert(self, deal: Deal, currency: str) -> Alert:
        at_risk = self.at_risk(deal, None)
        share = deal.paid_upfront / deal.amount if deal.amount else 0.0
        money_class = self.money.otherwise if self.money is not None else None
        summary = (
            f"Deal {deal.deal_id} ({deal.term_months} months, commission on {deal.basis}) paid "
            f"{share:.0%} of its {money(deal.amount):,.2f} {currency} commission upfront; "
        )
        if self.at_risk_name == "upfront_beyond_first_year":
            summary += (f"{money(at_risk):,.2f} {currency} is for years after the first, paid "
                        f"ahead of revenue not yet earned.")
        else:  # the rule's own words, and the money it names
            summary += self.meta.description.rstrip(".") + (
                f"; {money(at_risk):,.2f} {currency} {money_class}." if money_class else ".")
        closed_at = time_text(deal.time)
        evidence: dict[str, object] = {
            "deal_event_id": deal.event_id, "closed_at": closed_at,
            "term_months": deal.term_months, "basis": deal.basis,
            "commission_amount": money(deal.amount), "paid_upfront": money(deal.paid_upfront),
            "upfront_share": round(share, 4),
        }
        return deal_alert(self.meta, (deal.account_id, deal.deal_id), self.severity, closed_at,
                          summary, at_risk, money_class, currency, deal, evidence)


def _compile(spec: DealRuleSpec, ctx: CompileContext) -> DealRule:
    return DealRule(ctx.meta, ctx.filter(spec.deal), spec.min_upfront_share, spec.severity,
                    AT_RISK[spec.at_risk], ctx.money(spec), spec.at_risk)


KIND = RuleKind(DealRuleSpec, _compile)
