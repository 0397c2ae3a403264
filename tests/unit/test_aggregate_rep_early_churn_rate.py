"""rep-early-churn-rate: by rep per quarter; >= 4 new_logo+expansion deals; share of them fully
churned 0..90 days after close >= 0.25; at_risk = sum of paid_upfront of the churned deals."""

import pytest
from unit_helpers import churn_dict, deal_dict, run

RULE = "rep-early-churn-rate"


def _deals(count, rep="rep-r", deal_type="new_logo", start=0, days=5.0):
    return [deal_dict(rep_id=rep, deal_type=deal_type, account_id=f"{rep}-acct-{start + i}",
                      days=days, commission={"amount": 1000.0, "paid_upfront": 100.0 + i})
            for i in range(count)]


def _churn(deal, after_days, **kw):
    return churn_dict(account_id=deal["account_id"], days=5.0 + after_days, **kw)


def test_one_of_four_fully_churned_within_90_days_fires(rules):
    deals = _deals(4)
    [alert] = run(rules, [*deals, _churn(deals[2], 90.0)]).of(RULE)
    assert alert.kind == "aggregate"
    assert alert.severity == "critical"
    assert alert.group_by == "rep_id"
    assert alert.group == "rep-r"
    assert alert.period == "2026-Q1"
    assert alert.event_time == "2026-04-01T00:00:00Z"
    assert alert.value == 0.25
    assert alert.threshold == 0.25
    assert alert.at_risk == 102.0  # paid_upfront of deals[2]
    assert alert.team is None
    assert alert.rep_id is None  # the rep is in `group`


def test_three_deals_are_too_few(rules):
    deals = _deals(3)
    assert run(rules, [*deals, _churn(deals[0], 10.0)]).of(RULE) == []


def test_churn_at_90_and_a_half_days_does_not_count(rules):
    deals = _deals(4)
    assert run(rules, [*deals, _churn(deals[0], 90.5)]).of(RULE) == []


def test_partial_churn_does_not_count(rules):
    deals = _deals(4)
    churn = _churn(deals[0], 10.0, churn_type="partial", arr_lost=12000.0)
    assert run(rules, [*deals, churn]).of(RULE) == []


def test_churn_before_close_does_not_count(rules):
    deals = _deals(4)
    assert run(rules, [*deals, _churn(deals[0], -1.0)]).of(RULE) == []


def test_at_risk_sums_the_paid_upfront_of_every_churned_deal(rules):
    deals = _deals(5)
    churns = [_churn(deals[1], 1.0), _churn(deals[3], 30.0), _churn(deals[4], 89.0)]
    [alert] = run(rules, [*deals, *churns]).of(RULE)
    assert alert.value == pytest.approx(3 / 5)
    assert alert.at_risk == 101.0 + 103.0 + 104.0
    assert sorted(alert.evidence["churned_deal_ids"]) == sorted(
        deals[i]["deal_id"] for i in (1, 3, 4))


def test_renewals_do_not_count_towards_the_minimum(rules):
    deals = _deals(3) + _deals(1, deal_type="renewal", start=10)
    assert run(rules, [*deals, _churn(deals[0], 10.0)]).of(RULE) == []


def test_expansions_count(rules):
    deals = _deals(2) + _deals(2, deal_type="expansion", start=10)
    [alert] = run(rules, [*deals, _churn(deals[3], 10.0)]).of(RULE)
    assert alert.value == 0.25


def test_below_a_quarter_does_not_fire(rules):
    deals = _deals(5)
    assert run(rules, [*deals, _churn(deals[0], 10.0)]).of(RULE) == []  # 0.2


def test_churn_arriving_before_the_deals_counts(rules):
    deals = _deals(4)
    [alert] = run(rules, [_churn(deals[0], 10.0), *deals]).of(RULE)
    assert alert.value == 0.25
    assert alert.at_risk == 100.0


def test_two_churns_of_one_account_count_the_deal_once(rules):
    deals = _deals(4)
    churns = [_churn(deals[0], 10.0), _churn(deals[0], 20.0)]
    [alert] = run(rules, [*deals, *churns]).of(RULE)
    assert alert.value == 0.25
    assert alert.at_risk == 100.0
