"""What the join stage tells the aggregate stage: a deal counted in a (rule, group, period), or
one of those deals whose account churned soon enough to count against it.

In the worker these cross a repartition topic (auditor/worker/records.py gives their wire form);
in replay they are passed directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# (deal_type, commission amount, acv, paid_upfront): what an aggregate period keeps of a deal.
DealEntry = tuple[str, float, float, float]


def member(account_id: str, deal_id: str) -> str:
    """A deal's key inside an aggregate period: deal ids are unique per account only."""
    return f"{account_id}\x1f{deal_id}"


def deal_of(member_key: str) -> str:
    return member_key.partition("\x1f")[2]


class AggregateFact:
    # What a fact is (to_dict, from_dict, the repartition topic): FIELDS. `key` and `member`
    # are derived from them; `entry`, when given, is the deal's DealEntry, one tuple shared by
    # the facts of one deal and kept as is by the periods it counts in (a fact read back from
    # the topic has none).
    FIELDS = ("account_id", "acv", "amount", "days", "deal_id", "deal_time", "deal_type", "group",
              "kind", "money_class", "paid_upfront", "period", "period_end", "plan_id", "rule",
              "team", "values")
    __slots__ = (*FIELDS, "entry", "key", "member")

    DEAL = "deal"
    CHURNED = "churned"  # the deal's account churned soon enough to count against it

    def __init__(self, kind: str, rule: str, group: str, period: str, period_end: float,
                 account_id: str, deal_id: str, deal_type: str, amount: float, acv: float,
                 paid_upfront: float, entry: DealEntry | None = None,
                 member_key: str | None = None, days: float = 0.0,
                 money_class: str | None = None, plan_id: str = "", team: str = "",
                 deal_time: float = 0.0, values: Sequence[float] = ()) -> None:
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
        # and the class of the deal's money by the rule (its clawback reaches that day?).
        # and where the money belongs, should the finding claim it (the deal's plan, team
        # and time; a deal fact leaves them empty).
        self.days = days
        self.money_class = money_class
        self.plan_id = plan_id
        self.team = team
        self.deal_time = deal_time
        # The deal's contributions to its rule's measure (auditor/rules/measures.py).
        self.values = values
        self.entry = entry
        self.key = f"{rule}\x1f{group}\x1f{period}"  # every fact is applied, or sent, by key
        # Given when a deal makes several facts: one string for all of them.
        self.member = member(account_id, deal_id) if member_key is None else member_key

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def to_args(self) -> tuple[Any, ...]:
        """The constructor's arguments, in its order: `AggregateFact(*fact.to_args())` is the
        same fact, `entry` and `member` included (a compact form between processes)."""
        row = self.to_row()
        return (*row[:11], self.entry, self.member, *row[11:])

    def to_row(self) -> tuple[Any, ...]:
        """What it is, positionally: `to_args` without `entry` and `member` (which are
        derived), for the repartition topic (field names in every fact were half its bytes)."""
        return (self.kind, self.rule, self.group, self.period, self.period_end, self.account_id,
                self.deal_id, self.deal_type, self.amount, self.acv, self.paid_upfront,
                self.days, self.money_class, self.plan_id, self.team, self.deal_time,
                self.values)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> AggregateFact:
        """Inverse of `to_row` (ValueError for a row of another length)."""
        (kind, rule, group, period, period_end, account_id, deal_id, deal_type, amount, acv,
         paid_upfront, days, money_class, plan_id, team, deal_time, values) = row
        return cls(kind, rule, group, period, period_end, account_id, deal_id, deal_type,
                   amount, acv, paid_upfront, None, None, days, money_class, plan_id, team,
                   deal_time, tuple(values))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateFact:
        fact = cls(**data)
        fact.values = tuple(fact.values)  # a JSON list when read back
        return fact
