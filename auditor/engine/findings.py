"""What every kind's alerts share: times as text, an alert about a deal, the sentence on
churned money and its counterfactual clawback."""

from __future__ import annotations

from dataclasses import fields

from auditor.engine.alerts import MONEY_CLASSES, Alert, alert_id, money
from auditor.events.models import END_TIME, Deal, format_time
from auditor.rules.compiled import RuleMeta

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


# Alerts about a deal are built with positional arguments, a third of the cost of 21 keywords;
# this order is the alert contract's, and a change to it must show here.
_DEAL_ALERT_FIELDS = ("alert_id", "rule", "kind", "severity", "event_time", "summary", "at_risk",
                      "money_class", "currency", "deal_id", "account_id", "rep_id", "team",
                      "plan_id", "group_by", "group", "period", "value", "threshold",
                      "evidence", "labels", "runbook")
if tuple(f.name for f in fields(Alert)) != _DEAL_ALERT_FIELDS:
    raise ImportError("the fields of Alert changed: update deal_alert to match")


def deal_alert(meta: RuleMeta, key: tuple[str, ...], severity: str, event_time: str,
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


def churned_money(at_risk: float, money_class: str | None, deal: Deal, days: float,
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


def class_rank(money_class: str) -> int:
    return MONEY_CLASSES.index(money_class) if money_class in MONEY_CLASSES else 99
