"""What the join stage tells the aggregate stage: one deal's contribution to a group's period.

In the worker these travel through a repartition topic keyed by `key`, so they must be plain
data, and applying one twice must change nothing (at-least-once delivery).
"""

from __future__ import annotations

from typing import Any

# (deal_type, commission amount, acv, paid_upfront): what an aggregate period keeps of a deal.
DealEntry = tuple[str, float, float, float]


class AggregateFact:
    # What a fact is (to_dict, from_dict, the repartition topic): FIELDS. `key` is derived from
    # them; `entry`, when given, is the deal's DealEntry, one tuple shared by the facts of one
    # deal and kept as is by the periods it counts in (a fact read back from the topic has none).
    FIELDS = ("acv", "amount", "deal_id", "deal_type", "group", "kind", "paid_upfront", "period",
              "period_end", "rule", "watermark")
    __slots__ = (*FIELDS, "entry", "key")

    DEAL = "deal"
    CHURNED = "churned"  # the deal's account churned soon enough to count against it

    def __init__(self, kind: str, rule: str, group: str, period: str, period_end: float,
                 deal_id: str, deal_type: str, amount: float, acv: float, paid_upfront: float,
                 watermark: float, entry: DealEntry | None = None) -> None:
        self.kind = kind
        self.rule = rule
        self.group = group
        self.period = period
        self.period_end = period_end
        self.deal_id = deal_id
        self.deal_type = deal_type
        self.amount = amount
        self.acv = acv
        self.paid_upfront = paid_upfront
        self.watermark = watermark  # the join stage's, so the aggregate stage can settle periods
        self.entry = entry
        self.key = f"{rule}\x1f{group}\x1f{period}"  # every fact is applied, or sent, by key

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateFact:
        return cls(**data)
