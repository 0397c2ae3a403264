"""Kind `churn-after-deal`: a churn of the account 0..N days after a deal (one alert per deal
and churn), in either arrival order (e.g. early-churn-unrecovered, discount-then-churn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from auditor.engine.alerts import Alert
from auditor.engine.findings import churned_money, deal_alert, time_text
from auditor.engine.periods import DAY
from auditor.engine.state import AccountState
from auditor.events.models import Churn, Deal
from auditor.rules.compiled import Found
from auditor.rules.kind import CompileContext, RuleKind
from auditor.rules.kinds._join import JoinRule, JoinSpec, join_parts, pair_evidence


class ChurnAfterDealSpec(JoinSpec):
    kind: Literal["churn-after-deal"]
    # Skip the pair when the deal's clawback window (clawback_days > 0) reaches the churn.
    unless_clawback_covers: bool = False

    def has_churn_days(self) -> bool:
        return True


@dataclass(frozen=True, slots=True, eq=False)
class ChurnAfterDeal(JoinRule):
    unless_clawback_covers: bool = False

    def on_deal(self, deal: Deal, state: AccountState, found: Found) -> None:
        if not state.churns or (self.deal is not None and not self.deal(deal)):
            return
        for churn in state.churns:
            self._pair(deal, churn, found)

    def on_churn(self, churn: Churn, state: AccountState, found: Found) -> None:
        if self.churn is not None and not self.churn(churn):
            return
        for deal in state.deals:
            if self.deal is None or self.deal(deal):
                self._pair(deal, churn, found, churn_checked=True)

    def _pair(self, deal: Deal, churn: Churn, found: Found, churn_checked: bool = False
              ) -> None:
        days = (churn.time - deal.time) / DAY
        if (0 <= days <= self.within_days
                and (churn_checked or self.churn is None or self.churn(churn))
                and not self._recovered(deal, days)):
            found.alerts.append(self._alert(deal, churn, days, found.currency))

    def _recovered(self, deal: Deal, days: float) -> bool:
        """A clawback window (clawback_days > 0) reaching the churn day recovers the pay."""
        return (self.unless_clawback_covers and deal.clawback_days > 0
                and days <= deal.clawback_days)

    def _alert(self, deal: Deal, churn: Churn, days: float, currency: str) -> Alert:
        at_risk = self.at_risk(deal, churn)
        evidence = pair_evidence(deal, churn, days)
        money_class = self.money.of(deal.clawback_days, days) if self.money is not None else None
        summary = (
            f"Account {deal.account_id} churned ({churn.churn_type}) {days:.0f} days after "
            f"{deal.deal_type} deal {deal.deal_id} ({deal.discount_pct:.0%} discount); "
            + churned_money(at_risk, money_class, deal, days, currency, evidence)
        )
        return deal_alert(self.meta, (deal.account_id, deal.deal_id, churn.event_id),
                          self.severity.at(days), time_text(churn.time), summary, at_risk,
                          money_class, currency, deal, evidence)


def _compile(spec: ChurnAfterDealSpec, ctx: CompileContext) -> ChurnAfterDeal:
    return ChurnAfterDeal(*join_parts(spec, ctx), spec.unless_clawback_covers)


KIND = RuleKind(ChurnAfterDealSpec, _compile)
