"""Commission retention, the KPI: of the commission paid on a quarter's deals by a plan or
team, the share whose account had no full churn within N months of the close.

It is the value of an aggregate rule whose measure is a key figure (`kpi: true`, as the
measure `commission_retention` of rules/measures.yaml); a figure is `settled` once the
watermark has passed the quarter's end + N months + the allowed lateness, and `live` (an
estimate over what is known) before that.
"""

from __future__ import annotations

from typing import NamedTuple

from auditor.engine.state import AggregateState
from auditor.rules.kinds.aggregate import AggregateRule


class RetentionValue(NamedTuple):
    group_by: str  # plan_id or team
    group: str
    period: str  # the calendar quarter of the deals' close
    status: str  # settled or live
    months: int
    paid: float  # commission paid on the period's deals
    retained: float  # of it, on accounts with no full churn within the window
    share: float | None  # retained / paid; None when too few deals or nothing paid

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group_by, self.group, self.period)


def retention_value(rule: AggregateRule, state: AggregateState, share: float | None,
                    settled: bool) -> RetentionValue:
    paid = sum(t[1] for t in state.totals().values())
    return RetentionValue(rule.group_by, state.group, state.period,
                          "settled" if settled else "live",
                          rule.window.months if rule.window is not None else 0,
                          round(paid, 2), round(paid - state.churned_amount, 2),
                          None if share is None else round(share, 6))
