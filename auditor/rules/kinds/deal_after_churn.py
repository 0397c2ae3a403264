"""Kind `deal-after-churn`: a deal closed 0..N days after a churn of its account, once per deal
whatever the arrival order; its evidence is the most recent qualifying churn known when it
fired (e.g. churn-and-resell)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from auditor.engine.alerts import Alert, money
from auditor.engine.findings import deal_alert, time_text
from auditor.engine.periods import DAY
from auditor.engine.state import AccountState
from auditor.events.models import Churn, Deal
from auditor.rules.compiled import Found
from auditor.rules.kind import CompileContext, RuleKind
from auditor.rules.kinds._join import JoinRule, JoinSpec, join_parts, pair_evidence


class DealAfterChurnSpec(JoinSpec):
    kind: Literal["deal-after-churn"]


@dataclass(frozen=True, slots=True, eq=False)
class DealAfterChurn(JoinRule):
    def on_deal(self, deal: Deal, state: AccountState, found: Found) -> None:
        if not state.churns or (self.deal is not None and not self.deal(deal)):
            return
        best: tuple[float, Churn] | None = None
        for churn in state.churns:
            days = (deal.time - churn.time) / DAY
            if 0 <= days <= self.within_days and (self.churn is None or self.churn(churn)) and (
                best is None or days < best[0]
            ):
                best = (days, churn)  # the most recent qualifying churn is the evidence
        if best is not None:
            state.mark_fired(self._fired_key(deal))
            found.alerts.append(self._alert(deal, best[1], best[0], found.currency))

    def on_churn(self, churn: Churn, state: AccountState, found: Found) -> None:
        if self.churn is not None and not self.churn(churn):
            return
        for deal in state.deals:
            if self.deal is not None and not self.deal(deal):
                continue
            days = (deal.time - churn.time) / DAY
            key = self._fired_key(deal)
            if 0 <= days <= self.within_days and key not in state.fired:
                state.mark_fired(key)
                found.alerts.append(self._alert(deal, churn, days, found.currency))

    def _fired_key(self, deal: Deal) -> str:
        return f"{self.meta.id}\x1f{deal.deal_id}"

    def _alert(self, deal: Deal, churn: Churn, days: float, currency: str) -> Alert:
        at_risk = self.at_risk(deal, churn)
        money_class = self.money.of(deal.clawback_days, days) if self.money is not None else None
        summary = (
            f"Account {deal.account_id} fully churned and was sold again as a {deal.deal_type} "
            f"{days:.0f} days later (deal {deal.deal_id}), earning "
            f"{money(deal.amount):,.2f} {currency} commission"
            + (f", {money(at_risk):,.2f} {currency} of it {money_class}." if money_class
               else ".")
        )
        return deal_alert(self.meta, (deal.account_id, deal.deal_id), self.severity.at(days),
                          time_text(deal.time), summary, at_risk, money_class, currency, deal,
                          pair_evidence(deal, churn, days))


def _compile(spec: DealAfterChurnSpec, ctx: CompileContext) -> DealAfterChurn:
    return DealAfterChurn(*join_parts(spec, ctx))


KIND = RuleKind(DealAfterChurnSpec, _compile)
