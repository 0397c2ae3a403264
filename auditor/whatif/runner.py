"""Every historical deal of a plan paid again under the candidate, added up per team and quarter.

Per plan, team and calendar quarter (UTC) of `closed_at`: commission paid as it was (the deal's
own `commission.amount`) and under the candidate; recovered as it was (the deal's own
`clawback_days`, share 1) and under the candidate (its `clawback_days` and `clawback_share`);
and the paid-upfront amount of the churned deals, each way, from which the unrecovered
remainder follows. A deal is *churned* when its account's first churn after the close came
within the plan's churn window: the longer of the candidate's clawback and the longest clawback
the plan's deals actually had, so both sides are measured on the same deals and every recovered
deal is a churned one. With no clawback either way the window is 0 and no deal is counted
churned. Deals of a plan the candidate does not have are counted apart and not compared.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from auditor.engine.periods import quarter_of
from auditor.events.models import Deal
from auditor.rules.plans import PlanRegistry, PlanSpec
from auditor.whatif.candidate import changes
from auditor.whatif.history import History
from auditor.whatif.payout import as_it_was, churn_after, recovered, under_plan


@dataclass(slots=True)
class Figures:
    """Sums in the reporting currency, unrounded."""

    deals: int = 0
    churned_deals: int = 0
    paid_actual: float = 0.0
    paid_candidate: float = 0.0
    recovered_actual: float = 0.0
    recovered_candidate: float = 0.0
    upfront_churned_actual: float = 0.0  # paid upfront on the churned deals
    upfront_churned_candidate: float = 0.0

    @property
    def unrecovered_actual(self) -> float:
        return self.upfront_churned_actual - self.recovered_actual

    @property
    def unrecovered_candidate(self) -> float:
        return self.upfront_churned_candidate - self.recovered_candidate

    def add(self, other: Figures) -> None:
        self.deals += other.deals
        self.churned_deals += other.churned_deals
        self.paid_actual += other.paid_actual
        self.paid_candidate += other.paid_candidate
        self.recovered_actual += other.recovered_actual
        self.recovered_candidate += other.recovered_candidate
        self.upfront_churned_actual += other.upfront_churned_actual
        self.upfront_churned_candidate += other.upfront_churned_candidate


@dataclass
class PlanResult:
    plan_id: str
    changes: dict[str, list[Any]]  # {field: [registry value, candidate value]}
    churn_window_days: int
    rows: dict[tuple[str, str], Figures] = field(default_factory=dict)  # (team, quarter)
    totals: Figures = field(default_factory=Figures)


@dataclass
class WhatIf:
    currency: str
    history: History
    plans: list[PlanResult]
    other_plans: dict[str, int]  # deals of plans the candidate does not have, by plan


def run_whatif(history: History, before: PlanRegistry | None, candidate: PlanRegistry,
               currency: str) -> WhatIf:
    by_plan: dict[str, list[Deal]] = {plan_id: [] for plan_id in candidate.plans}
    other: Counter[str] = Counter()
    for deal in history.deals:
        if deal.plan_id in by_plan:
            by_plan[deal.plan_id].append(deal)
        else:
            other[deal.plan_id] += 1
    old = before.plans if before is not None else {}
    results = [_plan_result(candidate.plans[plan_id], old.get(plan_id), by_plan[plan_id],
                            history) for plan_id in sorted(by_plan)]
    return WhatIf(currency, history, results, dict(sorted(other.items())))


def _plan_result(plan: PlanSpec, before: PlanSpec | None, deals: list[Deal],
                 history: History) -> PlanResult:
    window = max([plan.clawback_days, *(deal.clawback_days for deal in deals)])
    result = PlanResult(plan.id, changes(before, plan), window)
    for deal in deals:
        figures = deal_figures(plan, deal, history, window)
        key = (deal.team, quarter_of(deal.time)[0])
        result.rows.setdefault(key, Figures()).add(figures)
        result.totals.add(figures)
    result.rows = dict(sorted(result.rows.items()))
    return result


def deal_figures(plan: PlanSpec, deal: Deal, history: History, window: int) -> Figures:
    """One deal's figures, as it was and under `plan`."""
    actual, candidate = as_it_was(deal), under_plan(plan, deal)
    churn = history.first_churn_after(deal)
    after = churn_after(deal, churn) if churn is not None else None
    churned = after is not None and window > 0 and after.days <= window
    return Figures(
        deals=1, churned_deals=int(churned),
        paid_actual=actual.amount, paid_candidate=candidate.amount,
        recovered_actual=recovered(actual.upfront, deal.clawback_days, 1.0, after),
        recovered_candidate=recovered(candidate.upfront, plan.clawback_days,
                                      plan.clawback_share, after),
        upfront_churned_actual=actual.upfront if churned else 0.0,
        upfront_churned_candidate=candidate.upfront if churned else 0.0,
    )
