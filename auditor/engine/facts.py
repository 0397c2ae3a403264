"""What the join stage tells the aggregate stage: a deal counted in a (rule, group, period), or
one of those deals whose account churned soon enough to count against it.

In the worker these cross a repartition topic (auditor/worker/records.py gives their wire form);
in replay they are passed directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

# (deal_type, commission amount, acv, paid_upfront): what an aggregate period of format 1 kept
# of a deal, and all a fact of that format tells of it.
DealEntry = tuple[str, float, float, float]


def member(account_id: str, deal_id: str) -> str:
    """A deal's key inside an aggregate period: deal ids are unique per account only."""
    return f"{account_id}\x1f{deal_id}"


def deal_of(member_key: str) -> str:
    return member_key.partition("\x1f")[2]


# A fact's kinds: a deal counted in its period, or one whose account churned soon enough to
# count against it.
DEAL = "deal"
CHURNED = "churned"


class AggregateFact(NamedTuple):
    """A row, in its fields' order: a tuple is a tenth of the cost of an object with fields to
    make, and each deal makes one per aggregate rule that takes it. `key` is derived from the
    fields, and so is `member`, when asked for. `fact_of(fields)` makes one from a tuple of
    every field without the named constructor's work (the hot path)."""

    kind: str
    rule: str
    group: str
    period: str
    period_end: float
    account_id: str
    deal_id: str
    deal_type: str
    amount: float
    acv: float
    paid_upfront: float
    # A churned fact: days from the deal to the churn that counts it (the earliest such), the
    # class of the deal's money by the rule (its clawback reaches that day?), and where the
    # money belongs, should the finding claim it (the deal's plan, team and time; a deal fact
    # leaves them empty).
    days: float = 0.0
    money_class: str | None = None
    plan_id: str = ""
    team: str = ""
    deal_time: float = 0.0
    # The deal's contributions to its rule's measure (auditor/rules/measures.py); empty in a
    # fact of format 1.
    values: Sequence[float] = ()

    @property
    def key(self) -> str:
        """Every fact is applied, or sent, by key: its rule, group and period."""
        return f"{self.rule}\x1f{self.group}\x1f{self.period}"

    @property
    def member(self) -> str:
        """The deal's key inside its period."""
        return member(self.account_id, self.deal_id)

    @property
    def entry(self) -> DealEntry:
        """What a period of format 1 kept of the deal."""
        return self.deal_type, self.amount, self.acv, self.paid_upfront

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()

    def to_row(self) -> tuple[Any, ...]:
        """What it is, positionally, as a plain tuple: `AggregateFact.from_row(fact.to_row())`
        is the same fact (the repartition topic's form, and between replay's processes: field
        names in every fact were half its bytes)."""
        return tuple(self)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> AggregateFact:
        """Inverse of `to_row` (ValueError for a row of another length)."""
        if len(row) != len(FIELDS):
            raise ValueError(f"a fact has {len(FIELDS)} fields, not {len(row)}")
        return fact_of((*row[:-1], tuple(row[-1])))  # values: a JSON list when read back

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AggregateFact:
        fact = cls(**data)
        return fact._replace(values=tuple(fact.values))  # a JSON list when read back


# What a fact is (to_dict, from_dict, to_row, the repartition topic): its fields, in order.
FIELDS: tuple[str, ...] = AggregateFact._fields
# A fact from a tuple of all its fields, in order, unchecked.
fact_of: Callable[[tuple[Any, ...]], AggregateFact] = partial(tuple.__new__, AggregateFact)
