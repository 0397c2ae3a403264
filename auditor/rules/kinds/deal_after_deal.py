"""Kind `deal-after-deal`: a second deal of an account closed 0..N days after a first deal of
it (e.g. renewal-discount-after-new-logo).

Each side has its own deal filter (`first:`, `second:`); `same_rep: true` also asks that both
deals were closed by the same rep. Days are (second closed_at - first closed_at) in days, a
real number; the window 0..N includes both ends. A deal never pairs with itself.

Symmetric in arrival order: a pair of deals is examined once, when the later-arriving of the two
arrives (the other is then in the account's state, it is not), and each of its two orders is
tried, so no per-pair memory is needed. One alert per (account, second deal, first deal), about
the second deal. Two deals closed at the same instant are 0 days apart both ways: each order
whose filters hold gives its own alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from auditor.engine.alerts import Alert, money
from auditor.engine.findings import deal_alert, time_text
from auditor.engine.periods import DAY
from auditor.engine.state import AccountState
from auditor.events.models import Deal
from auditor.rules.compiled import CompiledRule, Found, MoneyClass, RuleMeta
from auditor.rules.filters import Predicate
from auditor.rules.kind import CompileContext, RuleKind
from auditor.rules.kinds._join import ByDays
from auditor.rules.spec import Days, Filter, RuleSpecBase, Severity, SeverityByDays

# What a finding puts at risk, from (first deal, second deal).
PairAtRisk = Callable[[Deal, Deal], float]


def _none(first: Deal, second: Deal) -> float:
    return 0.0


def _second_commission_amount(first: Deal, second: Deal) -> float:
    return second.amount


def _second_paid_upfront(first: Deal, second: Deal) -> float:
    return second.paid_upfront


def _first_paid_upfront(first: Deal, second: Deal) -> float:
    return first.paid_upfront


AT_RISK: dict[str, PairAtRisk] = {
    "none": _none,
    "second_commission_amount": _second_commission_amount,
    "second_paid_upfront": _second_paid_upfront,
    "first_paid_upfront": _first_paid_upfront,
}

# How a summary names each amount, from (first deal id, second deal id).
_AT_RISK_TEXT: dict[str, Callable[[str, str], str]] = {
    "second_commission_amount": lambda first, second: f"commission on deal {second}",
    "second_paid_upfront": lambda first, second: f"commission paid upfront on deal {second}",
    "first_paid_upfront": lambda first, second: f"commission paid upfront on deal {first}",
}


class DealAfterDealSpec(RuleSpecBase):
    """Fires on two deals of the same account, the second 0..within_days after the first, in
    either arrival order."""

    FILTERS: ClassVar[dict[str, str]] = {"first": "deal", "second": "deal"}

    kind: Literal["deal-after-deal"]
    first: Filter = Field(default_factory=dict)
    second: Filter = Field(default_factory=dict)
    within_days: Days
    same_rep: bool = False  # the second deal's rep_id equals the first's
    severity: Severity | SeverityByDays
    at_risk: Literal["none", "second_commission_amount", "second_paid_upfront",
                     "first_paid_upfront"]


@dataclass(frozen=True, slots=True, eq=False)
class DealAfterDeal(CompiledRule):
    meta: RuleMeta
    first: Predicate | None
    second: Predicate | None
    within_days: float
    same_rep: bool
    severity: ByDays
    at_risk_name: str
    at_risk: PairAtRisk
    money: MoneyClass | None

    def on_deal(self, deal: Deal, state: AccountState, found: Found) -> None:
        deals = state.deals
        if not deals:
            return
        as_first = self.first is None or self.first(deal)
        as_second = self.second is None or self.second(deal)
        if not (as_first or as_second):
            return
        first_filter, second_filter = self.first, self.second
        for other in deals:
            if other.deal_id == deal.deal_id or (self.same_rep and other.rep_id != deal.rep_id):
                continue
            if as_second and (first_filter is None or first_filter(other)):
                self._pair(other, deal, found)
            if as_first and (second_filter is None or second_filter(other)):
                self._pair(deal, other, found)

    def _pair(self, first: Deal, second: Deal, found: Found) -> None:
        days = (second.time - first.time) / DAY
        if 0 <= days <= self.within_days:
            found.alerts.append(self._alert(first, second, days, found.currency))

    def window_days(self) -> float:
        return self.within_days

    def severities(self) -> tuple[str, ...]:
        return self.severity.all()

    def _alert(self, first: Deal, second: Deal, days: float, currency: str) -> Alert:
        at_risk = self.at_risk(first, second)
        money_class = self.money.otherwise if self.money is not None else None
        rep = f", both by rep {second.rep_id}" if self.same_rep else ""
        summary = (
            f"Account {second.account_id} closed {second.deal_type} deal {second.deal_id} "
            f"({second.discount_pct:.0%} discount, ACV {money(second.acv):,.2f} {currency}) "
            f"{days:.0f} days after {first.deal_type} deal {first.deal_id} "
            f"({first.discount_pct:.0%} discount, ACV {money(first.acv):,.2f} {currency}){rep}"
        )
        if money_class is not None:
            what = _AT_RISK_TEXT[self.at_risk_name](first.deal_id, second.deal_id)
            summary += f"; {money(at_risk):,.2f} {currency} of {what} is {money_class}."
        else:
            summary += "."
        return deal_alert(self.meta, (second.account_id, second.deal_id, first.deal_id),
                          self.severity.at(days), time_text(second.time), summary, at_risk,
                          money_class, currency, second, pair_evidence(first, second, days))


def pair_evidence(first: Deal, second: Deal, days: float) -> dict[str, object]:
    evidence: dict[str, object] = {"days": round(days, 3)}
    for side, deal in (("first", first), ("second", second)):
        evidence.update({
            f"{side}_deal_id": deal.deal_id, f"{side}_event_id": deal.event_id,
            f"{side}_deal_type": deal.deal_type, f"{side}_closed_at": time_text(deal.time),
            f"{side}_rep_id": deal.rep_id, f"{side}_discount_pct": deal.discount_pct,
            f"{side}_acv": money(deal.acv), f"{side}_commission_amount": money(deal.amount),
            f"{side}_paid_upfront": money(deal.paid_upfront),
        })
    return evidence


def _compile(spec: DealAfterDealSpec, ctx: CompileContext) -> DealAfterDeal:
    return DealAfterDeal(ctx.meta, ctx.filter(spec.first), ctx.filter(spec.second),
                         spec.within_days, spec.same_rep, ByDays.of(spec.severity),
                         spec.at_risk, AT_RISK[spec.at_risk], ctx.money(spec))


KIND = RuleKind(DealAfterDealSpec, _compile)
