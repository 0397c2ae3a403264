"""early-churn-unrecovered: a churn 0..180 days after a new_logo or expansion deal that no
clawback covers."""

import pytest
from unit_helpers import churn_dict, deal_dict, run, ts

RULE = "early-churn-unrecovered"


def _alerts(rules, deal, churn):
    return run(rules, [deal, churn]).of(RULE)


@pytest.mark.parametrize(
    ("days", "severity"),
    [(0.0, "critical"), (45.0, "critical"), (90.0, "critical"), (90.5, "warning"),
     (91.0, "warning"), (179.0, "warning"), (180.0, "warning")],
)
def test_fires_within_180_days_with_tiered_severity(rules, days, severity):
    deal = deal_dict(commission={"paid_upfront": 1000.0, "amount": 1200.0})
    churn = churn_dict(days=days)
    [alert] = _alerts(rules, deal, churn)
    assert alert.severity == severity
    assert alert.kind == "churn-after-deal"
    assert alert.at_risk == 1000.0
    assert alert.deal_id == deal["deal_id"]
    assert alert.account_id == "acct-1"
    assert alert.event_time == ts(days)
    assert alert.evidence["churn_event_id"] == churn["event_id"]
    assert alert.evidence["deal_event_id"] == deal["event_id"]


@pytest.mark.parametrize("days", [180.5, 181.0, 365.0, -0.5, -10.0])
def test_no_alert_outside_0_to_180_days(rules, days):
    assert _alerts(rules, deal_dict(), churn_dict(days=days)) == []


def test_clawback_equal_to_the_days_covers_the_churn(rules):
    deal = deal_dict(commission={"clawback_days": 100})
    assert _alerts(rules, deal, churn_dict(days=100.0)) == []


def test_clawback_longer_than_the_days_covers_the_churn(rules):
    deal = deal_dict(commission={"clawback_days": 120})
    assert _alerts(rules, deal, churn_dict(days=30.0)) == []


def test_clawback_one_day_short_does_not_cover(rules):
    deal = deal_dict(commission={"clawback_days": 99})
    [alert] = _alerts(rules, deal, churn_dict(days=100.0))
    assert alert.severity == "warning"
    assert alert.evidence["clawback_days"] == 99


def test_clawback_half_a_day_short_does_not_cover(rules):
    deal = deal_dict(commission={"clawback_days": 60})
    [alert] = _alerts(rules, deal, churn_dict(days=60.5))
    assert alert.severity == "critical"


def test_clawback_zero_means_no_clawback(rules):
    deal = deal_dict(commission={"clawback_days": 0})
    [alert] = _alerts(rules, deal, churn_dict(days=0.0))
    assert alert.severity == "critical"
    [alert] = _alerts(rules, deal_dict(commission={"clawback_days": 0}), churn_dict(days=10.0))
    assert alert.severity == "critical"


def test_full_churn_puts_all_paid_upfront_at_risk(rules):
    deal = deal_dict(acv=10000.0, commission={"amount": 1500.0, "paid_upfront": 1000.0})
    [alert] = _alerts(rules, deal, churn_dict(days=5.0, churn_type="full", arr_lost=1.0))
    assert alert.at_risk == 1000.0


@pytest.mark.parametrize(
    ("arr_lost", "expected"),
    [(2500.0, 250.0), (5000.0, 500.0), (10000.0, 1000.0), (20000.0, 1000.0), (0.0, 0.0),
     (3333.0, 333.3)],
)
def test_partial_churn_at_risk_is_upfront_times_share_of_acv_lost(rules, arr_lost, expected):
    deal = deal_dict(acv=10000.0, commission={"amount": 1000.0, "paid_upfront": 1000.0})
    churn = churn_dict(days=5.0, churn_type="partial", arr_lost=arr_lost)
    [alert] = _alerts(rules, deal, churn)
    assert alert.at_risk == expected


def test_partial_churn_of_a_deal_with_zero_acv_counts_as_full(rules):
    deal = deal_dict(acv=0.0, tcv=0.0, commission={"amount": 800.0, "paid_upfront": 700.0})
    churn = churn_dict(days=5.0, churn_type="partial", arr_lost=50.0)
    [alert] = _alerts(rules, deal, churn)
    assert alert.at_risk == 700.0
    assert alert.evidence["churn_share"] == 1


def test_expansion_deals_count(rules):
    deal = deal_dict(deal_type="expansion")
    [alert] = _alerts(rules, deal, churn_dict(days=20.0))
    assert alert.deal_id == deal["deal_id"]


def test_renewal_deals_are_ignored(rules):
    deal = deal_dict(deal_type="renewal")
    assert _alerts(rules, deal, churn_dict(days=20.0)) == []
    assert _alerts(rules, deal_dict(deal_type="renewal"),
                   churn_dict(days=20.0, churn_type="partial", arr_lost=100.0)) == []


def test_churn_of_another_account_does_not_join(rules):
    assert _alerts(rules, deal_dict(account_id="a"), churn_dict(account_id="b", days=1)) == []


def test_one_alert_per_deal_and_churn_pair(rules):
    deal1 = deal_dict(days=0.0)
    deal2 = deal_dict(days=10.0, deal_type="expansion")
    churn1 = churn_dict(days=20.0, churn_type="partial", arr_lost=100.0)
    churn2 = churn_dict(days=30.0)
    result = run(rules, [deal1, deal2, churn1, churn2]).of(RULE)
    pairs = {(a.deal_id, a.evidence["churn_event_id"]) for a in result}
    assert len(result) == 4
    assert pairs == {(d["deal_id"], c["event_id"]) for d in (deal1, deal2)
                     for c in (churn1, churn2)}
    assert len({a.alert_id for a in result}) == 4
