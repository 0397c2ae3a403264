"""Alert contract v1: deterministic ids, every field present, nulls where not applicable,
money in cents, event_time as RFC 3339 with Z."""

import hashlib
import json
import re

import pytest
from unit_helpers import churn_dict, deal_dict, run, ts

from auditor.engine.alerts import alert_id

CONTRACT_FIELDS = {
    "alert_id", "rule", "kind", "severity", "event_time", "summary", "at_risk", "money_class",
    "currency", "deal_id", "account_id", "rep_id", "team", "plan_id", "group_by", "group",
    "period", "value", "threshold", "evidence", "labels", "runbook",
}
DEAL_FIELDS = ("deal_id", "account_id", "rep_id", "team", "plan_id")
AGGREGATE_FIELDS = ("group_by", "group", "period", "value", "threshold")
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _scenario():
    """Events that make every rule of the default pack fire once."""
    deal = deal_dict(account_id="acct-9", rep_id="rep-9", team="team-9", plan_id="plan-9",
                     term_months=36, discount_pct=0.3, days=0.0,
                     commission={"basis": "tcv", "amount": 1000.0, "paid_upfront": 950.0})
    churn = churn_dict(account_id="acct-9", days=45.0)
    resold = deal_dict(account_id="acct-9", rep_id="rep-9", team="team-9", plan_id="plan-9",
                       days=60.0)
    # rep-9: 4 new logos (deal, resold, x0, x1), one churned early: 0.25.
    # team-9: 5 new logos: share 1.0. plan-9: renewals earn far less than new logos.
    others = [deal_dict(account_id=f"x{i}", rep_id="rep-9" if i < 2 else "rep-8",
                        team="team-9", plan_id="plan-9", days=1.0 + i,
                        commission={"amount": 1000.0}) for i in range(3)]
    renewals = [deal_dict(account_id=f"r{i}", rep_id="rep-r", team="team-r", plan_id="plan-9",
                          deal_type="renewal", acv=12000.0, days=2.0,
                          commission={"amount": 10.0}) for i in range(3)]
    return deal, churn, resold, [deal, *others, *renewals, churn, resold, *_PAIR]


# renewal-discount-after-new-logo: a renewal at 30% off 1 day after the same rep's new logo.
_PAIR = [deal_dict(account_id="acct-p", deal_id="P1", rep_id="rep-p", team="team-p",
                   plan_id="plan-p", days=3.0),
         deal_dict(account_id="acct-p", deal_id="P2", rep_id="rep-p", team="team-p",
                   plan_id="plan-p", deal_type="renewal", discount_pct=0.3, days=4.0)]


@pytest.fixture(scope="module")
def every_rule(rules):
    deal, churn, resold, events = _scenario()
    result = run(rules, events)
    by_rule = {}
    for alert in result.alerts:
        assert alert.rule not in by_rule, f"{alert.rule} fired twice"
        by_rule[alert.rule] = alert
    # Every rule but commission retention, whose findings need a year of churn (its own test
    # in test_engine_edges.py checks their shape).
    assert set(by_rule) == {r.meta.id for r in rules.rules
                            if not r.meta.id.startswith("commission-retention")}
    return deal, churn, resold, by_rule


def test_every_contract_field_is_present_and_json_serialisable(every_rule):
    *_, by_rule = every_rule
    for alert in by_rule.values():
        data = json.loads(alert.to_json())
        assert set(data) == CONTRACT_FIELDS
        assert data["severity"] in ("info", "warning", "critical")
        assert data["currency"] == "USD"
        assert isinstance(data["summary"], str) and data["summary"]
        assert isinstance(data["evidence"], dict) and data["evidence"]
        assert isinstance(data["labels"], dict)
        assert data["runbook"]


@pytest.mark.parametrize("rule", ["tcv-paid-upfront", "early-churn-unrecovered",
                                  "discount-then-churn", "churn-and-resell",
                                  "renewal-discount-after-new-logo"])
def test_deal_findings_name_the_deal_and_null_the_aggregate_fields(every_rule, rule):
    deal, _, resold, by_rule = every_rule
    data = json.loads(by_rule[rule].to_json())
    source = {"churn-and-resell": resold, "renewal-discount-after-new-logo": _PAIR[1]}.get(
        rule, deal)
    assert {f: data[f] for f in DEAL_FIELDS} == {f: source[f] for f in DEAL_FIELDS}
    assert all(data[f] is None for f in AGGREGATE_FIELDS)


@pytest.mark.parametrize("rule", ["renewal-rate-gap", "new-logo-payout-share",
                                  "rep-early-churn-rate"])
def test_aggregate_findings_null_the_deal_fields(every_rule, rule):
    *_, by_rule = every_rule
    data = json.loads(by_rule[rule].to_json())
    assert all(data[f] is None for f in DEAL_FIELDS)
    assert data["kind"] == "aggregate"
    assert data["group_by"] in ("team", "plan_id", "rep_id")
    assert data["group"] == {"team": "team-9", "plan_id": "plan-9",
                             "rep_id": "rep-9"}[data["group_by"]]
    assert data["period"] == "2026-Q1"
    assert data["event_time"] == "2026-04-01T00:00:00Z"
    assert isinstance(data["value"], float)
    assert isinstance(data["threshold"], float)


def test_alert_ids_are_sha256_of_the_rule_and_the_key(every_rule):
    deal, churn, resold, by_rule = every_rule
    expected_keys = {
        # Per-deal findings are keyed by the account too: deal ids are unique per account only.
        "tcv-paid-upfront": (deal["account_id"], deal["deal_id"]),
        "early-churn-unrecovered": (deal["account_id"], deal["deal_id"], churn["event_id"]),
        "discount-then-churn": (deal["account_id"], deal["deal_id"], churn["event_id"]),
        "churn-and-resell": (resold["account_id"], resold["deal_id"]),
        "renewal-discount-after-new-logo": ("acct-p", "P2", "P1"),
        "renewal-rate-gap": ("plan-9", "2026-Q1"),
        "new-logo-payout-share": ("team-9", "2026-Q1"),
        "rep-early-churn-rate": ("rep-9", "2026-Q1"),
    }
    for rule, key in expected_keys.items():
        got = by_rule[rule].alert_id
        assert re.fullmatch(r"[0-9a-f]{64}", got)
        assert got == alert_id(rule, *key)
        assert got == hashlib.sha256("\x1f".join((rule, *key)).encode()).hexdigest()
    assert len({a.alert_id for a in by_rule.values()}) == len(by_rule)


def test_alert_ids_are_the_same_across_two_engine_runs(rules):
    *_, events = _scenario()
    first = sorted((a.rule, a.alert_id) for a in run(rules, events).alerts)
    second = sorted((a.rule, a.alert_id) for a in run(rules, events).alerts)
    assert first == second
    assert len(first) == 8


def test_alert_ids_differ_by_churn_event(rules):
    deal = deal_dict()
    churns = [churn_dict(days=10.0), churn_dict(days=20.0)]
    alerts = run(rules, [deal, *churns]).of("early-churn-unrecovered")
    assert len({a.alert_id for a in alerts}) == 2


def test_event_times_are_utc_with_z(every_rule):
    *_, by_rule = every_rule
    for alert in by_rule.values():
        assert RFC3339_Z.match(alert.event_time), alert.event_time


def test_event_time_is_the_later_event_converted_to_utc(rules):
    deal = deal_dict(closed_at="2026-02-01T10:00:00+05:00")
    churn = churn_dict(churned_at="2026-02-10T22:30:00-03:00")
    [alert] = run(rules, [churn, deal]).of("early-churn-unrecovered")
    assert alert.event_time == "2026-02-11T01:30:00Z"
    churn2 = churn_dict(account_id="z", churned_at="2026-02-01T10:00:00+05:00")
    resold = deal_dict(account_id="z", closed_at="2026-02-10T22:30:00-03:00")
    [alert] = run(rules, [resold, churn2]).of("churn-and-resell")
    assert alert.event_time == "2026-02-11T01:30:00Z"


def test_deal_rule_event_time_is_the_deals(rules):
    deal = deal_dict(term_months=24, commission={"basis": "tcv"},
                     closed_at="2026-03-31T23:30:00-02:00")
    [alert] = run(rules, [deal]).of("tcv-paid-upfront")
    assert alert.event_time == "2026-04-01T01:30:00Z"


def test_event_time_keeps_fractional_seconds(rules):
    deal = deal_dict(days=0.0)
    churn = churn_dict(days=10.25 + 0.5 / 86400)
    [alert] = run(rules, [deal, churn]).of("early-churn-unrecovered")
    assert alert.event_time == ts(10.25 + 0.5 / 86400) == "2026-01-15T06:00:00.500000Z"


@pytest.mark.parametrize(
    ("amount", "paid", "arr_lost", "acv", "expected"),
    [
        (1000.0, 333.333333, 12000.0, 12000.0, 333.33),
        (1000.0, 666.666, 12000.0, 12000.0, 666.67),
        (1000.0, 1000.0, 1.0, 3.0, 333.33),  # partial: 1000 x 1/3
        (1000.0, 1000.0, 2.0, 3.0, 666.67),
        (1000.0, 0.005, 12000.0, 12000.0, round(0.005, 2)),
    ],
)
def test_money_is_rounded_to_cents(rules, amount, paid, arr_lost, acv, expected):
    deal = deal_dict(acv=acv, commission={"amount": amount, "paid_upfront": paid})
    churn_type = "full" if arr_lost == acv else "partial"
    churn = churn_dict(days=3.0, churn_type=churn_type, arr_lost=arr_lost)
    [alert] = run(rules, [deal, churn]).of("early-churn-unrecovered")
    assert alert.at_risk == expected
    assert json.loads(alert.to_json())["at_risk"] == expected


def test_aggregate_at_risk_is_rounded_to_cents(rules):
    deals = [deal_dict(account_id=f"q{i}", rep_id="rr",
                       commission={"amount": 1000.0, "paid_upfront": 100.0 / 3})
             for i in range(4)]
    churns = [churn_dict(account_id="q0", days=1.0), churn_dict(account_id="q1", days=1.0)]
    [alert] = run(rules, [*deals, *churns]).of("rep-early-churn-rate")
    # Each churned deal's 33.333... in cents, then added: at_risk is what evidence.money and
    # money_by_deal add up to.
    assert alert.at_risk == 66.66


def test_alerts_are_counted_by_rule_severity_and_team(rules):
    *_, events = _scenario()
    counters = run(rules, events).counters
    assert counters.alerts[("early-churn-unrecovered", "critical", "team-9")] == 1
    assert counters.alerts[("new-logo-payout-share", "warning", "team-9")] == 1
    assert counters.alerts[("renewal-rate-gap", "warning", "")] == 1
    assert counters.alerts[("renewal-discount-after-new-logo", "warning", "team-p")] == 1
    assert sum(counters.alerts.values()) == 8
    assert counters.at_risk[("churn-and-resell", "team-9", "USD", "overpaid")] == 1200.0
