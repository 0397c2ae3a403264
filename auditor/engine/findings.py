"""Turns a rule that fired into an alert: at_risk, summary sentence and evidence."""

from __future__ import annotations

from auditor.engine.alerts import Alert, alert_id, money
from auditor.engine.state import AggregateState
from auditor.events.models import Churn, Deal, format_time
from auditor.rules.compiled import AggregateRule, DealRule, JoinRule, RuleMeta


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


def _deal_alert(meta: RuleMeta, key: tuple[str, ...], severity: str, event_time: float,
                summary: str, at_risk: float, currency: str, deal: Deal,
                evidence: dict[str, object]) -> Alert:
    return Alert(
        alert_id=alert_id(meta.id, *key), rule=meta.id, kind=meta.kind, severity=severity,
        event_time=format_time(event_time), summary=summary, at_risk=money(at_risk),
        currency=currency, deal_id=deal.deal_id, account_id=deal.account_id, rep_id=deal.rep_id,
        team=deal.team, plan_id=deal.plan_id, evidence=evidence, labels=meta.labels,
        runbook=meta.runbook,
    )


def deal_alert(rule: DealRule, deal: Deal, currency: str) -> Alert:
    at_risk = deal_at_risk(rule.at_risk, deal)
    share = deal.paid_upfront / deal.amount if deal.amount else 0.0
    summary = (
        f"Deal {deal.deal_id} ({deal.term_months} months, commission on {deal.basis}) paid "
        f"{share:.0%} of its {money(deal.amount):,.2f} {currency} commission upfront; "
        f"{money(at_risk):,.2f} {currency} is for years after the first."
    )
    evidence = {
        "deal_event_id": deal.event_id, "closed_at": format_time(deal.time),
        "term_months": deal.term_months, "basis": deal.basis,
        "commission_amount": money(deal.amount), "paid_upfront": money(deal.paid_upfront),
        "upfront_share": round(share, 4),
    }
    return _deal_alert(rule.meta, (deal.deal_id,), rule.severity, deal.time, summary,
                       at_risk, currency, deal, evidence)


def join_alert(rule: JoinRule, deal: Deal, churn: Churn, days: float, currency: str) -> Alert:
    severity = rule.severity_for(days)
    at_risk = deal_at_risk(rule.at_risk, deal, churn)
    evidence: dict[str, object] = {
        "deal_event_id": deal.event_id, "churn_event_id": churn.event_id,
        "closed_at": format_time(deal.time), "churned_at": format_time(churn.time),
        "days": round(days, 3), "deal_type": deal.deal_type, "churn_type": churn.churn_type,
        "acv": money(deal.acv), "arr_lost": money(churn.arr_lost),
        "churn_share": round(churn_share(deal, churn), 4), "discount_pct": deal.discount_pct,
        "clawback_days": deal.clawback_days, "commission_amount": money(deal.amount),
        "paid_upfront": money(deal.paid_upfront),
    }
    if rule.deal_after_churn:
        summary = (
            f"Account {deal.account_id} fully churned and was sold again as a {deal.deal_type} "
            f"{days:.0f} days later (deal {deal.deal_id}), earning "
            f"{money(deal.amount):,.2f} {currency} commission."
        )
        return _deal_alert(rule.meta, (deal.deal_id,), severity, deal.time, summary,
                           at_risk, currency, deal, evidence)
    summary = (
        f"Account {deal.account_id} churned ({churn.churn_type}) {days:.0f} days after "
        f"{deal.deal_type} deal {deal.deal_id}"
        + f" ({deal.discount_pct:.0%} discount)"
        + f"; {money(at_risk):,.2f} {currency} of commission paid upfront is unrecovered."
    )
    return _deal_alert(rule.meta, (deal.deal_id, churn.event_id), severity, churn.time,
                       summary, at_risk, currency, deal, evidence)


def aggregate_alert(rule: AggregateRule, state: AggregateState, value: float,
                    evidence: dict[str, object], at_risk: float, currency: str) -> Alert:
    meta = rule.meta
    comparison = {"above": "above", "below": "below", "at_least": "at or above",
                  "at_most": "at or below"}[rule.threshold_op]
    what = {
        "renewal_rate_ratio": "renewal commission rate relative to new logos",
        "new_logo_commission_share": "share of commission paid on new logos",
        "early_churn_share": "share of new-logo and expansion deals fully churned early",
    }[rule.measure]
    summary = (
        f"{rule.group_by} {state.group} in {state.period}: {what} was {value:.2f}, "
        f"{comparison} the threshold {rule.threshold:g}"
        + (f"; {money(at_risk):,.2f} {currency} paid upfront on them." if at_risk else ".")
    )
    return Alert(
        alert_id=alert_id(meta.id, state.group, state.period), rule=meta.id, kind=meta.kind,
        severity=rule.severity, event_time=format_time(state.end), summary=summary,
        at_risk=money(at_risk), currency=currency, group_by=rule.group_by, group=state.group,
        period=state.period, value=round(value, 6), threshold=rule.threshold, evidence=evidence,
        labels=meta.labels, runbook=meta.runbook,
    )
