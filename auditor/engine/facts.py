"""What the join stage tells the aggregate stage: one deal's contribution to a group's period.

In the worker these travel through a repartition topic keyed by `key`, so they must be plain
data, and applying one twice must change nothing (at-least-once delivery).
"""

from __future__ import annotations

from typing import Any


class AggregateFact:
    __slots__ = ("acv", "amount", "deal_id", "deal_type", "group", "kind", "paid_upfront",
                 "period", "period_end", "rule", "watermark")

    DEAL = "deal"
    CHURNED = "churned"  # the deal's account churned soon enough to count against it

    def __init__(self, kind: str, rule: str, group: str, period: str, period_end: float,
                 deal_id: str, deal_type: str, amount: float, acv: float, paid_upfront: float,
                 watermark: float) -> None:
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

    @property
    def key(self) -> str:
        return f"{self.rule}\x1f{self.group}\x1f{self.period}"

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateFact:
        return cls(**data)
