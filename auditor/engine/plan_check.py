"""Deals whose commission contradicts their registered plan (rules/plans.yaml).

One alert per deal (rule `plan-contradiction`), listing every difference: the rate for its deal
type, the clawback window, the basis of a multi-year deal, and a share paid at signature above
the plan's. A deal on a plan that is not registered is not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from auditor.engine.alerts import Alert, alert_id, money
from auditor.engine.state import AccountState
from auditor.events.models import Deal, format_time
from auditor.rules.compiled import CompiledRule, Found, MoneyClass, RuleMeta
from auditor.rules.plans import PlanRegistry

RULE = "plan-contradiction"


def contradictions(registry: PlanRegistry, deal: Deal) -> list[str]:
    plan = registry.plans.get(deal.plan_id)
    if plan is None:
        return []
    tolerance = registry.audit
    found = []
    rate = plan.rates[deal.deal_type]
    if abs(deal.rate - rate) > tolerance.rate_tolerance:
        found.append(f"rate {deal.rate:g} where the plan pays {rate:g} on {deal.deal_type}")
    if deal.clawback_days != plan.clawback_days:
        found.append(f"clawback {deal.clawback_days} days where the plan has "
                     f"{plan.clawback_days}")
    if deal.term_months > 12 and deal.basis != plan.multi_year_basis:
        found.append(f"paid on {deal.basis} where the plan pays multi-year deals on "
                     f"{plan.multi_year_basis}")
    at_close = (plan.paid_at_close.multi_year if deal.term_months > 12
                else plan.paid_at_close.single_year)
    share = deal.paid_upfront / deal.amount if deal.amount > 0 else 0.0
    if share > at_close + tolerance.paid_at_close_tolerance:
        found.append(f"{share:.0%} paid at signature where the plan pays {at_close:.0%}")
    return found


def plan_alert(registry: PlanRegistry, deal: Deal, currency: str) -> Alert | None:
    found = contradictions(registry, deal)
    if not found:
        return None
    plan = registry.plans[deal.plan_id]
    # What the plan would have paid at close, had the deal followed it.
    expected = deal.acv * plan.rates[deal.deal_type]
    if deal.term_months > 12 and plan.multi_year_basis == "tcv":
        expected = deal.tcv * plan.rates[deal.deal_type]
    share = plan.paid_at_close.multi_year if deal.term_months > 12 else (
        plan.paid_at_close.single_year)
    at_risk = max(0.0, deal.paid_upfront - expected * share)
    return Alert(
        alert_id=alert_id(RULE, deal.account_id, deal.deal_id), rule=RULE, kind="deal",
        severity="warning",
        event_time=format_time(deal.time),
        summary=f"Deal {deal.deal_id} contradicts plan {deal.plan_id}: " + "; ".join(found) + ".",
        # Paid at signature beyond what the plan pays: a rate the facts do not justify.
        at_risk=money(at_risk), money_class="overpaid", currency=currency, deal_id=deal.deal_id,
        account_id=deal.account_id, rep_id=deal.rep_id, team=deal.team, plan_id=deal.plan_id,
        evidence={"deal_event_id": deal.event_id, "differences": found,
                  "commission_amount": money(deal.amount), "paid_upfront": money(deal.paid_upfront),
                  "plan_paid_at_close": money(expected * share),
                  "money": {"overpaid": money(at_risk)}},
        labels={"area": "plan"}, runbook="Check the deal against the plan in rules/plans.yaml; "
        "if the plan is out of date, update the registry, else correct the payout.",
    )


_META = RuleMeta(RULE, "deal", "a deal contradicts its registered plan", "", {}, "plans.yaml")
_OVERPAID = MoneyClass("overpaid")


@dataclass(frozen=True, slots=True, eq=False)
class PlanCheck(CompiledRule):
    """The check of every deal against its registered plan, run with the rules (after what a
    deal alone shows, before joins) when the rules directory has a plans.yaml."""

    ORDER: ClassVar[int] = 1

    plans: PlanRegistry
    meta: RuleMeta = _META
    money: MoneyClass | None = _OVERPAID

    def on_deal(self, deal: Deal, state: AccountState, found: Found) -> None:
        alert = plan_alert(self.plans, deal, found.currency)
        if alert is not None:
            found.alerts.append(alert)

    def severities(self) -> tuple[str, ...]:
        return ("warning",)
