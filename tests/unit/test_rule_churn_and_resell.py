"""churn-and-resell: a new_logo deal closed 0..365 days after a full churn of the account."""

import pytest
from unit_helpers import churn_dict, deal_dict, run, ts

RULE = "churn-and-resell"


def _resell(days, **kw):
    return deal_dict(days=days, commission={"amount": 3000.0, "paid_upfront": 1000.0}, **kw)


@pytest.mark.parametrize("days", [0.0, 0.5, 100.0, 364.5, 365.0])
def test_new_logo_within_a_year_of_a_full_churn_fires(rules, days):
    churn = churn_dict(days=0.0)
    deal = _resell(days)
    [alert] = run(rules, [churn, deal]).of(RULE)
    assert alert.severity == "critical"
    assert alert.kind == "deal-after-churn"
    assert alert.at_risk == 3000.0  # commission.amount, not paid_upfront
    assert alert.deal_id == deal["deal_id"]
    assert alert.account_id == "acct-1"
    assert alert.event_time == ts(days)  # the deal is the later event
    assert alert.evidence["churn_event_id"] == churn["event_id"]


@pytest.mark.parametrize("days", [365.5, 366.0, 500.0, -0.5, -30.0])
def test_outside_0_to_365_days_no_alert(rules, days):
    assert run(rules, [churn_dict(days=0.0), _resell(days)]).of(RULE) == []


def test_not_after_a_partial_churn(rules):
    churn = churn_dict(days=0.0, churn_type="partial", arr_lost=100.0)
    assert run(rules, [churn, _resell(30.0)]).of(RULE) == []


@pytest.mark.parametrize("deal_type", ["expansion", "renewal"])
def test_not_for_other_deal_types(rules, deal_type):
    assert run(rules, [churn_dict(), _resell(30.0, deal_type=deal_type)]).of(RULE) == []


def test_not_for_another_account(rules):
    assert run(rules, [churn_dict(account_id="x"), _resell(3, account_id="y")]).of(RULE) == []


def test_once_per_deal_with_two_qualifying_churns_before_it(rules):
    churn1 = churn_dict(days=0.0)
    churn2 = churn_dict(days=50.0)
    deal = _resell(100.0)
    alerts = run(rules, [churn1, churn2, deal]).of(RULE)
    assert len(alerts) == 1
    # The most recent qualifying churn is named as evidence.
    assert alerts[0].evidence["churn_event_id"] == churn2["event_id"]


def test_once_per_deal_when_both_churns_arrive_after_the_deal(rules):
    churn1 = churn_dict(days=0.0)
    churn2 = churn_dict(days=50.0)
    deal = _resell(100.0)
    alerts = run(rules, [deal, churn1, churn2]).of(RULE)
    assert len(alerts) == 1
    assert alerts[0].deal_id == deal["deal_id"]


def test_once_per_deal_when_churns_arrive_either_side_of_the_deal(rules):
    churn1 = churn_dict(days=0.0)
    churn2 = churn_dict(days=50.0)
    deal = _resell(100.0)
    assert len(run(rules, [churn2, deal, churn1]).of(RULE)) == 1


def test_each_resold_deal_fires(rules):
    churn = churn_dict(days=0.0)
    deal1, deal2 = _resell(10.0), _resell(20.0)
    alerts = run(rules, [churn, deal1, deal2]).of(RULE)
    assert sorted(a.deal_id for a in alerts) == sorted([deal1["deal_id"], deal2["deal_id"]])
