"""What the join stage tells the aggregate stage: a deal counted in a (rule, group, period), or
one of those deals whose account churned soon enough to count against it.

In the worker these cross a repartition topic (auditor/worker/records.py gives their wire form);
in replay they are passed directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# (deal_type, commission amount, acv, paid_upfront): what an aggregate period of format 1 kept
# of a deal, and all a fact of that format tells of it.
DealEntry = tuple[str, float, float, float]


def member(account_id: str, deal_id: str) -> str:
    """A deal's key inside an aggregate period: deal ids are unique per account only."""
    return f"{account_id}\x1f{deal_id}"


def deal_of(member_key: str) -> str:
    return member_key.partition("\x1f")[2]


class AggregateFact:
    # What a fact is (to_dict, from_dict, to_row, the repartition topic): FIELDS, in the
    # constructor's order. `key` is derived from them; so is `member`, when asked for.
    FIELDS = ("kind", "rule", "group", "period", "period_end", "account_id", "deal_id",
              "deal_type", "amount", "acv", "paid_upfront", "days", "money_class", "plan_id",
              "team", "deal_time", "values")
    __slots__ = (*FIELDS, "key")

    DEAL = "deal"
    CHURNED = "churned"  # the deal's account churned soon enough to count against it

    def __init__(self, kind: str, rule: str, group: str, period: str, period_end: float,
                 account_id: str, deal_id: str, deal_type: str, amount: float, acv: float,
                 paid_upfront: float, days: float = 0.0, money_class: str | None = None,
                 plan_id: str = "", team: str = "", deal_time: float = 0.0,
                 values: Sequence[float] = ()) -> None:
        self.kind = kind
        self.rule = rule
        self.group = group
        self.period = period
        self.period_end = period_end
        self.account_id = account_id
        self.deal_id = deal_id
        self.deal_type = deal_type
        self.amount = amount
        self.acv = acv
        self.paid_upfront = paid_upfront
        # A churned fact: days from the deal to the churn that counts it (the earliest such),
        # the class of the deal's money by the rule (its clawback reaches that day?), and
        # where the money belongs, should the finding claim it (the deal's plan, team and
        # time; a deal fact leaves them empty).
        self.days = days
        self.money_class = money_class
        self.plan_id = plan_id
        self.team = team
        self.deal_time = deal_time
        # The deal's contributions to its rule's measure (auditor/rules/measures.py); empty
        # in a fact of format 1.
        self.values = values
        self.key = f"{rule}\x1f{group}\x1f{period}"  # every fact is applied, or sent, by key

    @property
    def member(self) -> str:
        """The deal's key inside its period."""
        return member(self.account_id, self.deal_id)

    @property
    def entry(self) -> DealEntry:
        """What a period of format 1 kept of the deal."""
        return self.deal_type, self.amount, self.acv, self.paid_upfront

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def to_row(self) -> tuple[Any, ...]:
        """What it is, positionally: `AggregateFact(*fact.to_row())` is the same fact (the
        repartition topic's form, and between replay's processes: field names in every fact
        were half its bytes)."""
        return (self.kind, self.rule, self.group, self.period, self.period_end, self.account_id,
                self.deal_id, self.deal_type, self.amount, self.acv, self.paid_upfront,
                self.days, self.money_class, self.plan_id, self.team, self.deal_time,
                self.values)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> AggregateFact:
        """Inverse of `to_row` (ValueError for a row of another length)."""
        if len(row) != len(cls.FIELDS):
            raise ValueError(f"a fact has {len(cls.FIELDS)} fields, not {len(row)}")
        fact = cls(*row)
        fact.values = tuple(fact.values)  # a JSON list when read back
        return fact

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateFact:
        fact = cls(**data)
        fact.values = tuple(fact.values)  # a JSON list when read back
        return fact
