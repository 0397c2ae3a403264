"""Turns a rule that fired into an alert: at_risk, summary sentence and evidence."""

from __future__ import annotations

from dataclasses import fields

from auditor.engine.alerts import MONEY_CLASSES, Alert, alert_id, money
from auditor.engine.state import AggregateState
from auditor.events.models import END_TIME, Churn, Deal, format_time
from auditor.rules.compiled import AggregateRule, DealRule, JoinRule, RuleMeta

_DATES: dict[int, str] = {}  # day number -> "YYYY-MM-DD"
_HOURS = [f"T{hour:02d}:" for hour in range(24)]
_MINUTES_SECONDS = [f"{m:02d}:{s:02d}Z" for m in range(60) for s in range(60)]


def time_text(epoch: float) -> str:
    """`format_time`, from tables for the whole seconds that events carry."""
    if type(epoch) is float and epoch.is_integer() and epoch < END_TIME:
        day, second = divmod(int(epoch), 86400)
        date = _DATES.get(day)
        if date is None:
            date = format_time(day * 86400.0)[:10]
            if len(_DATES) > 100_000:  # bounded even on absurd input
                _DATES.clear()
            _DATES[day] = date
        hour, second = divmod(second, 3600)
        return date + _HOURS[hour] + _MINUTES_SECONDS[second]
    return format_time(epoch)


def churn_share(deal: Deal, churn: Churn) -> float:
    """f of the rule pack: 1 for a full churn, else the share of the deal's ACV lost."""
    if churn.churn_type == "full" or deal.acv == 0:
        return 1.0
    return min(1.0, churn.arr_lost / deal.acv)


def deal_at_risk(kind: str, deal: Deal, churn: Churn | None = None) -> float:
    if kind == "paid_upfront":
        return deal.paid_upfront
    if kind == "commission_amount":
        return deal.amount
    if kind == "upfront_beyond_first_year":
        return max(0.0, deal.paid_upfront - deal.amount * 12 / deal.term_months)
    if kind == "paid_upfront_x_churn_share" and churn is not None:
        return deal.paid_upfront * churn_share(deal, churn)
    return 0.0


# Alerts about a deal are built with positional arguments, a third of the cost of 21 keywords;
# this order is the alert contract's, and a change to it must show here.
_DEAL_ALERT_FIELDS = ("alert_id", "rule", "kind", "severity", "event_time", "summary", "at_risk",
                      "money_class", "currency", "deal_id", "account_id", "rep_id", "team",
                      "plan_id", "group_by", "group", "period", "value", "threshold",
                      "evidence", "labels", "runbook")
if tuple(f.name for f in fields(Alert)) != _DEAL_ALERT_FIELDS:
    raise ImportError("the fields of Alert changed: update _deal_alert to match")


def _deal_alert(meta: RuleMeta, key: tuple[str, ...], severity: str, event_time: str,
                summary: str, at_risk: float, money_class: str | None, currency: str,
                deal: Deal, evidence: dict[str, object]) -> Alert:
    if money_class is not None:
        evidence["money"] = {money_class: money(at_risk)}
    return Alert(
        alert_id(meta.id, *key), meta.id, meta.kind, severity, event_time, summary,
        money(at_risk), money_class, currency, deal.deal_id, deal.account_id, deal.rep_id,
        deal.team, deal.plan_id, None, None, None, None, None, evidence, meta.labels,
        meta.runbook,
    )


# Clawback windows a counterfactual names: the shortest that would have reached the churn.
COUNTERFACTUAL_WINDOWS = (30, 60, 90, 180, 365)


def counterfactual_window(days: float) -> int | None:
    return next((w for w in COUNTERFACTUAL_WINDOWS if days <= w), None)


def deal_alert(rule: DealRule, deal: Deal, currency: str) -> Alert:
    at_risk = deal_at_risk(rule.at_risk, deal)
    share = deal.paid_upfront / deal.amount if deal.amount else 0.0
    summary = (
        f"Deal {deal.deal_id} ({deal.term_months} months, commission on {deal.basis}) paid "
        f"{share:.0%} of its {money(deal.amount):,.2f} {currency} commission upfront; "
        f"{money(at_risk):,.2f} {currency} is for years after the first, paid ahead of "
        f"revenue not yet earned."
    )
    closed_at = time_text(deal.time)
    evidence = {
        "deal_event_id": deal.event_id, "closed_at": closed_at,
        "term_months": deal.term_months, "basis": deal.basis,
        "commission_amount": money(deal.amount), "paid_upfront": money(deal.paid_upfront),
        "upfront_share": round(share, 4),
    }
    money_class = rule.money.otherwise if rule.money is not None else None
    return _deal_alert(rule.meta, (deal.account_id, deal.deal_id), rule.severity, closed_at,
                       summary, at_risk, money_class, currency, deal, evidence)


def join_alert(rule: JoinRule, deal: Deal, churn: Churn, days: float, currency: str) -> Alert:
    severity = rule.severity_for(days)
    at_risk = deal_at_risk(rule.at_risk, deal, churn)
    closed_at, churned_at = time_text(deal.time), time_text(churn.time)
    evidence: dict[str, object] = {
        "deal_event_id": deal.event_id, "churn_event_id": churn.event_id,
        "closed_at": closed_at, "churned_at": churned_at,
        "days": round(days, 3), "deal_type": deal.deal_type, "churn_type": churn.churn_type,
        "acv": money(deal.acv), "arr_lost": money(churn.arr_lost),
        "churn_share": round(churn_share(deal, churn), 4), "discount_pct": deal.discount_pct,
        "clawback_days": deal.clawback_days, "commission_amount": money(deal.amount),
        "paid_upfront": money(deal.paid_upfront),
    }
    money_class = rule.money.of(deal.clawback_days, days) if rule.money is not None else None
    if rule.deal_after_churn:
        summary = (
            f"Account {deal.account_id} fully churned and was sold again as a {deal.deal_type} "
            f"{days:.0f} days later (deal {deal.deal_id}), earning "
            f"{money(deal.amount):,.2f} {currency} commission"
            + (f", {money(at_risk):,.2f} {currency} of it {money_class}." if money_class
               else ".")
        )
        return _deal_alert(rule.meta, (deal.account_id, deal.deal_id), severity, closed_at,
                           summary, at_risk, money_class, currency, deal, evidence)
    summary = (
        f"Account {deal.account_id} churned ({churn.churn_type}) {days:.0f} days after "
        f"{deal.deal_type} deal {deal.deal_id} ({deal.discount_pct:.0%} discount); "
        + _churned_money(at_risk, money_class, deal, days, currency, evidence)
    )
    return _deal_alert(rule.meta, (deal.account_id, deal.deal_id, churn.event_id), severity,
                       churned_at, summary, at_risk, money_class, currency, deal, evidence)


def _churned_money(at_risk: float, money_class: str | None, deal: Deal, days: float,
                   currency: str, evidence: dict[str, object]) -> str:
    """The sentence on commission paid on revenue that left, by what it is; an unrecovered
    amount names the clawback that would have recovered it (also in the evidence)."""
    amount = f"{money(at_risk):,.2f} {currency} of commission paid upfront"
    if money_class == "recoverable":
        return (f"{amount} is recoverable under the deal's {deal.clawback_days}-day "
                f"clawback.")
    if money_class != "unrecovered":
        return f"{amount} is at risk." if money_class is None else f"{amount} is {money_class}."
    window = counterfactual_window(days)
    if window is None or not at_risk:
        return f"{amount} is unrecovered."
    evidence["counterfactual"] = {"clawback_days": window, "recovered": money(at_risk)}
    return f"{amount} is unrecovered; a {window}-day clawback would have recovered it."


def _class_rank(money_class: str) -> int:
    return MONEY_CLASSES.index(money_class) if money_class in MONEY_CLASSES else 99


def aggregate_alert(rule: AggregateRule, state: AggregateState, value: float,
                    evidence: dict[str, object], at_risk: float, currency: str) -> Alert:
    meta = rule.meta
    comparison = {"above": "above", "below": "below", "at_least": "at or above",
                  "at_most": "at or below"}[rule.threshold_op]
    what = {
        "renewal_rate_ratio": "renewal commission rate relative to new logos",
        "new_logo_commission_share": "share of commission paid on new logos",
        "early_churn_share": "share of new-logo and expansion deals fully churned early",
        "commission_retention": (f"share of commission paid on accounts still customers "
                                 f"{rule.churn_within_months} months later"),
    }[rule.measure]
    by_class = evidence.get("money")
    money_class = None
    if isinstance(by_class, dict) and by_class:
        # The class of the largest amount; ties broken in MONEY_CLASSES order.
        money_class = max(by_class, key=lambda c: (by_class[c], -_class_rank(c)))
        parts = ", ".join(f"{by_class[c]:,.2f} {currency} {c}"
                          for c in sorted(by_class, key=_class_rank))
        paid = f"; {money(at_risk):,.2f} {currency} paid upfront on them ({parts})."
    else:
        paid = f"; {money(at_risk):,.2f} {currency} paid upfront on them." if at_risk else "."
    if evidence.get("status") == "live":
        paid = paid[:-1] + (f" (a live estimate: {rule.churn_within_months} months have not "
                            f"passed yet).")
    summary = (
        f"{rule.group_by} {state.group} in {state.period}: {what} was {value:.2f}, "
        f"{comparison} the threshold {rule.threshold:g}" + paid
    )
    return Alert(
        alert_id=alert_id(meta.id, state.group, state.period), rule=meta.id, kind=meta.kind,
        severity=rule.severity, event_time=time_text(state.end), summary=summary,
        at_risk=money(at_risk), money_class=money_class, currency=currency,
        group_by=rule.group_by, group=state.group,
        period=state.period, value=round(value, 6), threshold=rule.threshold, evidence=evidence,
        labels=meta.labels, runbook=meta.runbook,
    )
