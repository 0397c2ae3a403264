"""What a finding about a deal puts at risk, by the name a rule file gives it; compiled to a
callable when the rule loads."""

from __future__ import annotations

from collections.abc import Callable

from auditor.events.models import Churn, Deal

AtRisk = Callable[[Deal, Churn | None], float]


def churn_share(deal: Deal, churn: Churn) -> float:
    """f of the rule pack: 1 for a full churn, else the share of the deal's ACV lost."""
    if churn.churn_type == "full" or deal.acv == 0:
        return 1.0
    return min(1.0, churn.arr_lost / deal.acv)


def _none(deal: Deal, churn: Churn | None) -> float:
    return 0.0


def _paid_upfront(deal: Deal, churn: Churn | None) -> float:
    return deal.paid_upfront


def _commission_amount(deal: Deal, churn: Churn | None) -> float:
    return deal.amount


def _upfront_beyond_first_year(deal: Deal, churn: Churn | None) -> float:
    return max(0.0, deal.paid_upfront - deal.amount * 12 / deal.term_months)


def _paid_upfront_x_churn_share(deal: Deal, churn: Churn | None) -> float:
    return deal.paid_upfront * churn_share(deal, churn) if churn is not None else 0.0


AT_RISK: dict[str, AtRisk] = {
    "none": _none,
    "paid_upfront": _paid_upfront,
    "commission_amount": _commission_amount,
    "upfront_beyond_first_year": _upfront_beyond_first_year,
    "paid_upfront_x_churn_share": _paid_upfront_x_churn_share,
}
