"""discount-then-churn: a full churn 0..365 days after a deal with discount_pct >= 0.25."""

import pytest
from unit_helpers import churn_dict, deal_dict, run, ts

RULE = "discount-then-churn"


def _alerts(rules, deal, churn):
    return run(rules, [deal, churn]).of(RULE)


def _deal(discount, **kw):
    # A clawback covering the whole year keeps early-churn-unrecovered out of the way.
    return deal_dict(discount_pct=discount,
                     commission={"amount": 2000.0, "paid_upfront": 1500.0,
                                 "clawback_days": 400}, **kw)


@pytest.mark.parametrize("discount", [0.25, 0.3, 0.5, 1.0])
def test_fires_at_and_above_a_quarter_off(rules, discount):
    deal = _deal(discount)
    churn = churn_dict(days=10.0)
    [alert] = _alerts(rules, deal, churn)
    assert alert.severity == "warning"
    assert alert.kind == "churn-after-deal"
    assert alert.at_risk == 1500.0
    assert alert.deal_id == deal["deal_id"]
    assert alert.event_time == ts(10.0)
    assert alert.evidence["discount_pct"] == discount


@pytest.mark.parametrize("discount", [0.2499, 0.0, 0.1])
def test_no_alert_below_a_quarter_off(rules, discount):
    assert _alerts(rules, _deal(discount), churn_dict(days=10.0)) == []


def test_partial_churn_does_not_count(rules):
    churn = churn_dict(days=10.0, churn_type="partial", arr_lost=12000.0)
    assert _alerts(rules, _deal(0.4), churn) == []


@pytest.mark.parametrize(("days", "fires"),
                         [(0.0, True), (364.0, True), (365.0, True), (365.5, False),
                          (400.0, False), (-1.0, False)])
def test_window_is_0_to_365_days(rules, days, fires):
    alerts = _alerts(rules, _deal(0.25), churn_dict(days=days))
    assert len(alerts) == (1 if fires else 0)


def test_any_deal_type_counts(rules):
    for deal_type in ("new_logo", "expansion", "renewal"):
        assert len(_alerts(rules, _deal(0.3, deal_type=deal_type), churn_dict(days=3))) == 1


def test_clawback_does_not_matter_for_this_rule(rules):
    deal = _deal(0.3)
    assert deal["commission"]["clawback_days"] == 400
    assert len(_alerts(rules, deal, churn_dict(days=3))) == 1
