"""Kind `aggregate`: a group of deals (by any text field of the deal) over a calendar period
whose measure crosses a threshold (e.g. renewal-rate-gap, rep-early-churn-rate).

At the join stage (keyed by account) a deal becomes a fact for its (rule, group, period), and a
churn that counts one of the account's deals as churned becomes another; the aggregate stage
(auditor/engine/aggregate_stage.py) sums them and evaluates the period with this rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from auditor.engine.alerts import Alert, alert_id, money
from auditor.engine.facts import CHURNED, DEAL, AggregateFact, DealEntry, deal_of, fact_of
from auditor.engine.findings import class_rank, time_text
from auditor.engine.periods import DAY, PERIODS, add_months
from auditor.engine.state import AccountState, AggregateState
from auditor.events.models import Churn, Deal
from auditor.rules.compiled import CompiledRule, Found, MoneyClass, RuleMeta
from auditor.rules.domains import DEAL_DOMAINS
from auditor.rules.filters import DEAL_FIELDS, Predicate
from auditor.rules.kind import CompileContext, RuleKind, SpecError
from auditor.rules.measures import Measure, MeasureSpec, compile_measure
from auditor.rules.spec import THRESHOLD_OPS, Days, Filter, RuleSpecBase, Severity, Threshold

# Deal fields a rule can group by: the text ones of the event contract.
GROUPABLE = tuple(sorted(name for name, attr in DEAL_FIELDS.items()
                         if attr in DEAL_DOMAINS and not DEAL_DOMAINS[attr].numeric))
Groupable = Literal[GROUPABLE]  # type: ignore[valid-type]
MinDeals = Annotated[int, Field(ge=0)]


class AggregateRuleSpec(RuleSpecBase):
    """Fires on a group whose deals of one calendar period cross a threshold."""

    FILTERS: ClassVar[dict[str, str]] = {"deal": "deal", "churn": "churn"}

    kind: Literal["aggregate"]
    # A measure defined under `measures:` in the rules directory, or one written in place.
    measure: Annotated[str, Field(min_length=1)] | MeasureSpec
    group_by: Groupable
    period: Literal["month", "quarter", "year"] = "quarter"
    deal: Filter = Field(default_factory=dict)
    churn: Filter = Field(default_factory=dict)
    # A deal counts as churned when a matching churn comes this soon after it: within days,
    # or within calendar months after the close (the period settles that long after its end).
    churn_within_days: Days | None = None
    churn_within_months: Annotated[int, Field(ge=1, le=120)] | None = None
    # Fewer deals in the period (a number), or in a named quantity of the measure (a mapping
    # by quantity name): not evaluated.
    min_deals: MinDeals | dict[str, MinDeals] = 0
    threshold: Threshold
    settle_days: Days = 0
    severity: Severity
    at_risk: Literal["none", "churned_paid_upfront"] = "none"

    def has_churn_days(self) -> bool:
        return self.churn_within_days is not None

    def grouped_by(self) -> str | None:
        return str(self.group_by)

    @model_validator(mode="after")
    def _one_window(self) -> AggregateRuleSpec:
        if self.churn_within_days is not None and self.churn_within_months is not None:
            raise ValueError("give churn_within_days or churn_within_months, not both")
        if self.at_risk == "churned_paid_upfront" and not (
            self.churn_within_days or self.churn_within_months
        ):
            raise ValueError("at_risk churned_paid_upfront needs a churn window "
                             "(churn_within_days or churn_within_months)")
        return self


@dataclass(frozen=True, slots=True)
class ChurnWindow:
    """When a churn counts a deal as churned, and what the evidence says about it."""

    days: float = 0.0  # 0..days after the close
    months: int = 0  # or (close, close + months calendar months]

    def contains(self, deal_time: float, churn_time: float) -> bool:
        if self.months:
            return deal_time < churn_time <= add_months(deal_time, self.months)
        return 0 <= (churn_time - deal_time) / DAY <= self.days

    def end_after(self, end: float) -> float:
        """When the window of a period's last deal closes."""
        return add_months(end, self.months) if self.months else end

    def evidence(self, state: AggregateState) -> dict[str, object]:
        churned_ids = [deal_of(m) for m in sorted(state.churned)]
        if self.months:
            paid = sum(t[1] for t in state.totals().values())
            return {"deals": state.count, "months": self.months,
                    "commission_paid": money(paid),
                    "commission_retained": money(paid - state.churned_amount),
                    "churned_deals": state.churned_count, "churned_deal_ids": churned_ids}
        return {"deals": state.count, "churned_deals": len(churned_ids),
                "churned_deal_ids": churned_ids,
                "churned_paid_upfront": money(state.churned_upfront)}


class _EntryDeal:
    """The fields of a deal in its entry (facts.DealEntry: what records of format 1 have of
    it); asking for any other raises KeyError (the entry cannot tell)."""

    __slots__ = ("acv", "amount", "deal_type", "paid_upfront")

    def __init__(self, deal_type: str, amount: float, acv: float, paid_upfront: float) -> None:
        self.deal_type, self.amount, self.acv, self.paid_upfront = (
            deal_type, amount, acv, paid_upfront)

    def __getattr__(self, name: str) -> object:
        raise KeyError(name)


_COMPARISON = {"above": "above", "below": "below", "at_least": "at or above",
               "at_most": "at or below"}


@dataclass(frozen=True, slots=True, eq=False)
class AggregateRule(CompiledRule):
    ORDER: ClassVar[int] = 3

    meta: RuleMeta
    measure: Measure
    group_by: str
    group_of: Callable[[Deal], str | None]
    period_of: Callable[[float], tuple[str, float]]
    deal: Predicate | None
    churn: Predicate | None
    window: ChurnWindow | None  # None: the measure does not count churned deals
    min_deals: int  # of the period's deals
    threshold_op: str  # above, below, at_least, at_most
    threshold: float
    settle_days: float
    severity: str
    money_at_risk: bool  # at_risk churned_paid_upfront
    money: MoneyClass | None

    # Join stage: facts.
    def on_deal(self, deal: Deal, state: AccountState, found: Found) -> None:
        if self.deal is not None and not self.deal(deal):
            return
        group = self.group_of(deal)
        if group is None:  # an optional field the deal does not have: in no group
            return
        period, end = self.period_of(deal.time)
        values = self.measure.contributions(deal)
        found.facts.append(fact_of((  # once per deal and rule: a tuple, made in C
            DEAL, self.meta.id, group, period, end, deal.account_id, deal.deal_id,
            deal.deal_type, deal.amount, deal.acv, deal.paid_upfront, 0.0, None, "", "", 0.0,
            values)))
        if self.window is None or not state.churns:
            return
        days = [(c.time - deal.time) / DAY for c in state.churns if self._counts(deal, c)]
        if days:
            found.facts.append(self._churned(deal, group, period, end, min(days), values))

    def on_churn(self, churn: Churn, state: AccountState, found: Found) -> None:
        if self.window is None or (self.churn is not None and not self.churn(churn)):
            return
        for deal in state.deals:
            if ((self.deal is None or self.deal(deal))
                    and self.window.contains(deal.time, churn.time)):
                group = self.group_of(deal)
                if group is None:
                    continue
                period, end = self.period_of(deal.time)
                found.facts.append(self._churned(
                    deal, group, period, end, (churn.time - deal.time) / DAY,
                    self.measure.contributions(deal)))

    def _counts(self, deal: Deal, churn: Churn) -> bool:
        assert self.window is not None
        return self.window.contains(deal.time, churn.time) and (
            self.churn is None or self.churn(churn))

    def _churned(self, deal: Deal, group: str, period: str, end: float, days: float,
                 values: tuple[float, ...]) -> AggregateFact:
        money_class = (self.money.of(deal.clawback_days, days) if self.money is not None
                       else None)
        return fact_of((CHURNED, self.meta.id, group, period, end, deal.account_id,
                        deal.deal_id, deal.deal_type, deal.amount, deal.acv, deal.paid_upfront,
                        days, money_class, deal.plan_id, deal.team, deal.time, values))

    def window_days(self) -> float:
        days = self.window.days if self.window is not None else 0.0
        months = self.window.months if self.window is not None else 0
        return max(self.settle_days, days) + months * 31  # a month is at most 31 days

    def severities(self) -> tuple[str, ...]:
        return (self.severity,)

    def team_known(self) -> bool:
        return self.group_by == "team"

    def money_classes(self) -> tuple[str, ...]:
        return self.money.classes() if self.money_at_risk and self.money is not None else ()

    # Aggregate stage: evaluation.
    def settles_after(self, end: float) -> float:
        """When a period ending at `end` settles, before the allowed lateness."""
        if self.window is not None:
            end = self.window.end_after(end)
        return end + self.settle_days * DAY

    def value(self, state: AggregateState) -> float | None:
        """The period's value, or None when it is not evaluated (too few deals, or a zero
        denominator)."""
        if state.count < self.min_deals:
            return None
        try:
            sums, churned = state.measure_sums(self.entry_contributions)
        except LookupError:  # restored sums of a measure over fields the entries lack
            return None
        return self.measure.value(sums, churned)

    def entry_contributions(self, entry: DealEntry) -> tuple[float, ...]:
        """A deal's contributions from its entry (type, commission, ACV, paid upfront): what a
        period or fact of format 1 has of it (LookupError when the measure needs more)."""
        return self.measure.contributions(_EntryDeal(*entry))  # type: ignore[arg-type]

    def crosses(self, value: float) -> bool:
        op, limit = self.threshold_op, self.threshold
        if op == "above":
            return value > limit
        if op == "below":
            return value < limit
        if op == "at_least":
            return value >= limit
        return value <= limit

    def explain(self, state: AggregateState) -> tuple[dict[str, object], float]:
        """(evidence, at_risk) of a period that fired: the numbers behind its value, and for
        a rule with an at_risk the money of each churned deal by class."""
        if self.window is None:
            evidence: dict[str, object] = {"deals": state.count}
            totals = state.totals()
            for deal_type in sorted(totals):
                count, commission, acv = totals[deal_type]
                evidence[deal_type] = {"deals": int(count), "commission": money(commission),
                                       "acv": money(acv)}
            return evidence, 0.0
        evidence = self.window.evidence(state)
        if not self.money_at_risk:
            return evidence, 0.0
        # Each deal's amount in cents first, so the classes add up to at_risk to the cent.
        by_class: dict[str, float] = {}
        by_deal = []
        for m in sorted(state.churned):
            how = state.churned[m]
            money_class = how.money_class or "unclassified"
            amount = money(how.paid_upfront)
            by_class[money_class] = money(by_class.get(money_class, 0.0) + amount)
            account_id, _, deal_id = m.partition("\x1f")
            by_deal.append({"account_id": account_id, "deal_id": deal_id,
                            "class": money_class, "amount": amount,
                            "plan_id": how.plan_id, "team": how.team,
                            "closed_at": time_text(how.deal_time)})
        evidence["money"] = dict(sorted(by_class.items()))
        evidence["money_by_deal"] = by_deal
        return evidence, money(sum(by_class.values()))

    def alert(self, state: AggregateState, value: float, evidence: dict[str, object],
              at_risk: float, currency: str) -> Alert:
        meta = self.meta
        months = self.window.months if self.window is not None else 0
        what = self.measure.describe.replace("{months}", str(months))
        by_class = evidence.get("money")
        money_class = None
        if isinstance(by_class, dict) and by_class:
            # The class of the largest amount; ties broken in MONEY_CLASSES order.
            money_class = max(by_class, key=lambda c: (by_class[c], -class_rank(c)))
            parts = ", ".join(f"{by_class[c]:,.2f} {currency} {c}"
                              for c in sorted(by_class, key=class_rank))
            paid = f"; {money(at_risk):,.2f} {currency} paid upfront on them ({parts})."
        else:
            paid = (f"; {money(at_risk):,.2f} {currency} paid upfront on them." if at_risk
                    else ".")
        if evidence.get("status") == "live":
            paid = paid[:-1] + (f" (a live estimate: {months} months have not passed yet).")
        summary = (
            f"{self.group_by} {state.group} in {state.period}: {what} was {value:.2f}, "
            f"{_COMPARISON[self.threshold_op]} the threshold {self.threshold:g}" + paid
        )
        return Alert(
            alert_id=alert_id(meta.id, state.group, state.period), rule=meta.id,
            kind=meta.kind, severity=self.severity, event_time=time_text(state.end),
            summary=summary, at_risk=money(at_risk), money_class=money_class,
            currency=currency, group_by=self.group_by, group=state.group,
            period=state.period, value=round(value, 6), threshold=self.threshold,
            evidence=evidence, labels=meta.labels, runbook=meta.runbook,
        )


def _compile(spec: AggregateRuleSpec, ctx: CompileContext) -> AggregateRule:
    if isinstance(spec.measure, str):
        name, measure_spec = spec.measure, ctx.measures.get(spec.measure)
        if measure_spec is None:
            known = ", ".join(sorted(ctx.measures)) or "none are defined"
            raise SpecError(("measure",), f"measure: unknown measure {name!r}; defined "
                                          f"under measures: {known}")
    else:
        name, measure_spec = "", spec.measure
    assert isinstance(measure_spec, MeasureSpec)
    window = None
    if spec.churn_within_days is not None or spec.churn_within_months is not None:
        window = ChurnWindow(spec.churn_within_days or 0.0, spec.churn_within_months or 0)
    if measure_spec.churn_counted() and window is None:
        raise SpecError(("measure",), "the measure counts churned deals: give "
                                      "churn_within_days or churn_within_months")
    if window is not None and not measure_spec.churn_counted():
        raise SpecError(("churn_within_days" if spec.churn_within_days is not None
                         else "churn_within_months",),
                        "a churn window applies to a measure that counts churned deals "
                        "(a quantity with churned: true or false)")
    by_name: dict[str, int] = {}
    min_deals = 0
    if isinstance(spec.min_deals, dict):
        names = measure_spec.quantity_names()
        for key, count in spec.min_deals.items():
            if key not in names:
                raise SpecError(("min_deals", key),
                                f"min_deals: {key} is not a quantity of the measure; its "
                                f"named quantities: {', '.join(names) or 'none'}")
            by_name[key] = count
    else:
        min_deals = spec.min_deals
    measure = compile_measure(name, measure_spec, by_name, ctx.filter)
    op = next(k for k in THRESHOLD_OPS if getattr(spec.threshold, k) is not None)
    return AggregateRule(
        ctx.meta, measure, spec.group_by, attrgetter(DEAL_FIELDS[spec.group_by]),
        PERIODS[spec.period], ctx.filter(spec.deal), ctx.filter(spec.churn, "churn"), window,
        min_deals, op, float(getattr(spec.threshold, op)), spec.settle_days, spec.severity,
        spec.at_risk == "churned_paid_upfront", ctx.money(spec))


KIND = RuleKind(AggregateRuleSpec, _compile)
