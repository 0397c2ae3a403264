"""One deal paid: as it was (its own commission) and under a candidate plan's terms.

Under a plan: commission = the rate for the deal type x the ACV, or the TCV for a multi-year
deal (term over 12 months) when the plan pays multi-year deals on TCV; paid upfront = that x
the plan's paid_at_close share (multi_year or single_year). Accelerators are not re-applied:
they depend on quota attainment, which the events do not carry.

A clawback of D days (0: none) and share s recovers s x paid upfront x f of a deal whose
account's first churn after the close came 0..D days after it (real days, both ends included);
f is 1 for a full churn and min(1, arr_lost / acv) for a partial one (1 when the ACV is 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.events.models import Churn, Deal
from auditor.rules.plans import PlanSpec

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Pay:
    amount: float  # commission earned on the deal
    upfront: float  # of which paid at close


@dataclass(frozen=True, slots=True)
class ChurnAfter:
    days: float  # from the close to the account's first churn after it
    share: float  # f: the share of the deal's revenue that left


def as_it_was(deal: Deal) -> Pay:
    return Pay(deal.amount, deal.paid_upfront)


def under_plan(plan: PlanSpec, deal: Deal) -> Pay:
    multi_year = deal.term_months > 12
    base = deal.tcv if multi_year and plan.multi_year_basis == "tcv" else deal.acv
    amount = plan.rates[deal.deal_type] * base
    at_close = plan.paid_at_close.multi_year if multi_year else plan.paid_at_close.single_year
    return Pay(amount, amount * at_close)


def churn_after(deal: Deal, churn: Churn) -> ChurnAfter:
    if churn.churn_type == "full" or deal.acv == 0:
        share = 1.0
    else:
        share = min(1.0, churn.arr_lost / deal.acv)
    return ChurnAfter((churn.time - deal.time) / DAY, share)


def recovered(upfront: float, clawback_days: int, clawback_share: float,
              churn: ChurnAfter | None) -> float:
    if churn is None or clawback_days <= 0 or not 0 <= churn.days <= clawback_days:
        return 0.0
    return clawback_share * upfront * churn.share
