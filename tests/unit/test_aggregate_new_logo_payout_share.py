"""new-logo-payout-share: by team per quarter; >= 5 deals; new_logo commission share > 0.85."""

import pytest
from unit_helpers import deal_dict, run

RULE = "new-logo-payout-share"


def _deal(deal_type, amount, team="team-t", n=0, days=20.0):
    return deal_dict(deal_type=deal_type, team=team, account_id=f"{team}-{deal_type}-{n}",
                     days=days, commission={"amount": amount, "paid_upfront": 0.0})


@pytest.mark.parametrize(("count", "fires"), [(4, False), (5, True), (6, True)])
def test_minimum_five_deals(rules, count, fires):
    deals = [_deal("new_logo", 100.0, n=i) for i in range(count)]
    alerts = run(rules, deals).of(RULE)
    assert len(alerts) == (1 if fires else 0)


def test_alert_fields(rules):
    deals = [_deal("new_logo", 100.0, n=i) for i in range(5)]
    [alert] = run(rules, deals).of(RULE)
    assert alert.kind == "aggregate"
    assert alert.severity == "warning"
    assert alert.group_by == "team"
    assert alert.group == "team-t"
    assert alert.team is None  # an aggregate by team has its team in `group`
    assert alert.period == "2026-Q1"
    assert alert.event_time == "2026-04-01T00:00:00Z"
    assert alert.value == 1.0
    assert alert.threshold == 0.85
    assert alert.at_risk == 0
    assert alert.deal_id is None and alert.rep_id is None and alert.plan_id is None


def test_share_exactly_0_85_does_not_fire(rules):
    # 4 x 21.25 = 85 of 100: exactly 0.85, and the threshold is strict.
    deals = [_deal("new_logo", 21.25, n=i) for i in range(4)] + [_deal("renewal", 15.0)]
    assert run(rules, deals).of(RULE) == []


def test_share_0_851_fires(rules):
    # 4 x 212.75 = 851 of 1000.
    deals = [_deal("new_logo", 212.75, n=i) for i in range(4)] + [_deal("expansion", 149.0)]
    [alert] = run(rules, deals).of(RULE)
    assert alert.value == pytest.approx(0.851)


def test_all_deal_types_count_towards_the_minimum_and_the_total(rules):
    deals = [_deal("new_logo", 1000.0, n=i) for i in range(3)] + [
        _deal("renewal", 10.0), _deal("expansion", 10.0)]
    [alert] = run(rules, deals).of(RULE)
    assert alert.value == pytest.approx(3000.0 / 3020.0)


def test_zero_total_commission_gives_no_alert(rules):
    deals = [_deal("new_logo", 0.0, n=i) for i in range(6)]
    assert run(rules, deals).of(RULE) == []


def test_groups_by_team(rules):
    deals = [_deal("new_logo", 100.0, team="t1", n=i) for i in range(5)] + [
        _deal("new_logo", 100.0, team="t2", n=i) for i in range(4)]
    assert [a.group for a in run(rules, deals).of(RULE)] == ["t1"]
