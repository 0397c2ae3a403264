"""Aggregate measures as data: a ratio of two quantities over a period's deals, each a sum or
a count over some of them (a filter, churned or not), optionally itself a rate (a sum divided
by the sum of another field over the same deals).

    measures:
      renewal_rate_ratio:
        describe: renewal commission rate relative to new logos
        numerator: {name: renewal, sum: commission.amount, per: acv, where: {deal_type: renewal}}
        denominator: {name: new_logo, sum: commission.amount, per: acv,
                      where: {deal_type: new_logo}}

A rule names a measure defined under `measures:` in any file of the rules directory, or writes
one in place. A deal contributes to each quantity when it joins its period (n, sum, per), and
to the churned sums when it is counted as churned, so a value costs O(1) at any time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Literal, NamedTuple

from pydantic import Field, model_validator

from auditor.events.models import Deal
from auditor.rules.domains import DEAL_DOMAINS
from auditor.rules.filters import DEAL_FIELDS, Predicate
from auditor.rules.spec import Filter, Strict

# Deal fields a quantity can sum: the numeric ones of the event contract.
SUMMABLE = tuple(sorted(name for name, attr in DEAL_FIELDS.items()
                        if attr in DEAL_DOMAINS and DEAL_DOMAINS[attr].numeric))
Summable = Literal[SUMMABLE]  # type: ignore[valid-type]


class QuantitySpec(Strict):
    """A sum of a deal field, or a count, over the period's deals that pass `where` (and are
    counted as churned, or not, when `churned` is given)."""

    name: str | None = None  # how the rule's min_deals names it
    sum: Summable | None = None
    count: Literal["deals"] | None = None
    # A rate: the sum divided by the sum of this field over the same deals.
    per: Summable | None = None
    where: Filter = Field(default_factory=dict)
    churned: bool | None = None

    @model_validator(mode="after")
    def _sum_or_count(self) -> QuantitySpec:
        if (self.sum is None) == (self.count is None):
            raise ValueError("give one of sum: FIELD or count: deals")
        if self.per is not None and self.sum is None:
            raise ValueError("per divides a sum: give sum: FIELD with it")
        return self


class MeasureSpec(Strict):
    """numerator / denominator; not evaluated when a quantity has fewer deals than the rule's
    min_deals for it, or a denominator (of the ratio, or of a rate) is 0."""

    # The value's name in the alert's sentence; `{months}` is the rule's churn_within_months.
    describe: str = Field(min_length=1)
    numerator: QuantitySpec
    denominator: QuantitySpec
    # A key figure: every evaluation is reported (auditor_commission_retention_ratio, settled
    # or live), crossing the threshold or not, and it has no live aggregate value.
    kpi: bool = False

    def churn_counted(self) -> bool:
        return self.numerator.churned is not None or self.denominator.churned is not None

    def quantity_names(self) -> tuple[str, ...]:
        return tuple(q.name for q in (self.numerator, self.denominator) if q.name)


class QuantityParts(NamedTuple):
    """A quantity over a period, as `Quantity.evaluate` reads it: the deals it counts, its sum
    (their number, for a count), the sum of its `per` field (0 without one), and its value
    (None: fewer deals than its min_deals, or a `per` sum of 0)."""

    deals: float
    total: float
    per: float
    value: float | None


_NOTHING = (0.0, 0.0, 0.0)
_ONE = (1.0, 1.0, 0.0)  # a deal in a count


@dataclass(frozen=True, slots=True)
class Quantity:
    where: Predicate | None
    value: Callable[[Deal], float] | None  # None: a count
    per: Callable[[Deal], float] | None
    churned: bool | None
    min_deals: int

    def compiled(self) -> Callable[[Deal], tuple[float, float, float]]:
        """A deal's (n, sum, per-sum) for this quantity: (0, 0, 0) for a deal its `where`
        leaves out; a count sums 1. A function made for this quantity's parts: it runs for
        every deal and aggregate rule, and one general function paid for every branch."""
        where, value, per = self.where, self.value, self.per
        if value is not None and per is not None:
            def made(deal: Deal) -> tuple[float, float, float]:
                return 1.0, value(deal), per(deal)
        elif value is not None:
            def made(deal: Deal) -> tuple[float, float, float]:
                return 1.0, value(deal), 0.0
        elif per is not None:
            def made(deal: Deal) -> tuple[float, float, float]:
                return 1.0, 1.0, per(deal)
        else:
            def made(deal: Deal) -> tuple[float, float, float]:
                return _ONE
        if where is None:
            return made
        return lambda deal: made(deal) if where(deal) else _NOTHING

    def sums(self, sums: Sequence[float], churned: Sequence[float], at: int
             ) -> tuple[float, float, float]:
        """(deals, sum, per-sum) of the deals this quantity takes, from a period's sums."""
        if self.churned is None:
            return sums[at], sums[at + 1], sums[at + 2]
        if self.churned:
            return churned[at], churned[at + 1], churned[at + 2]
        return (sums[at] - churned[at], sums[at + 1] - churned[at + 1],
                sums[at + 2] - churned[at + 2])

    def evaluate(self, sums: Sequence[float], churned: Sequence[float], at: int) -> float | None:
        n, total, per = self.sums(sums, churned, at)
        if n < self.min_deals:
            return None
        if self.per is None:
            return total
        return total / per if per else None

    def parts(self, sums: Sequence[float], churned: Sequence[float], at: int) -> QuantityParts:
        """The numbers `evaluate` reads at `at`, and its value (to explain a period)."""
        return QuantityParts(*self.sums(sums, churned, at), self.evaluate(sums, churned, at))


@dataclass(frozen=True, slots=True)
class Measure:
    name: str  # as the rules name it; "" for one written in place
    describe: str
    numerator: Quantity
    denominator: Quantity
    counts_churn: bool
    kpi: bool
    # A deal's contributions: its numerator's (n, sum, per-sum), then its denominator's.
    contributions: Callable[[Deal], tuple[float, ...]]

    def value(self, sums: Sequence[float], churned: Sequence[float]) -> float | None:
        top = self.numerator.evaluate(sums, churned, 0)
        bottom = self.denominator.evaluate(sums, churned, 3)
        if top is None or not bottom:
            return None
        return top / bottom

    def parts(self, sums: Sequence[float], churned: Sequence[float]
              ) -> tuple[QuantityParts, QuantityParts]:
        """(numerator, denominator) over a period, as `value` reads them (to explain it)."""
        return self.numerator.parts(sums, churned, 0), self.denominator.parts(sums, churned, 3)


def compile_measure(name: str, spec: MeasureSpec, min_deals: dict[str, int],
                    compile_filter: Callable[[Filter], Predicate | None]) -> Measure:
    def quantity(q: QuantitySpec) -> Quantity:
        return Quantity(compile_filter(q.where),
                        attrgetter(DEAL_FIELDS[q.sum]) if q.sum is not None else None,
                        attrgetter(DEAL_FIELDS[q.per]) if q.per is not None else None,
                        q.churned, min_deals.get(q.name or "", 0))

    numerator, denominator = quantity(spec.numerator), quantity(spec.denominator)
    top, bottom = numerator.compiled(), denominator.compiled()
    return Measure(name, spec.describe, numerator, denominator, spec.churn_counted(), spec.kpi,
                   lambda deal: top(deal) + bottom(deal))


def measure_filters(spec: MeasureSpec) -> dict[tuple[str, ...], Filter]:
    """The measure's filters by their place in it, for the loader's checks."""
    return {("numerator", "where"): spec.numerator.where,
            ("denominator", "where"): spec.denominator.where}


