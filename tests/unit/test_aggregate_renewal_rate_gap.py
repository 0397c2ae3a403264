"""renewal-rate-gap: by plan_id per quarter; >= 3 renewal and >= 3 new_logo deals;
(renewal commission / renewal acv) / (new_logo commission / new_logo acv) < 0.3."""

import pytest
from unit_helpers import deal_dict, run

RULE = "renewal-rate-gap"


def _deals(renewal_amounts, new_logo_amounts, *, renewal_acv=1000.0, new_logo_acv=1000.0,
           plan="plan-x", days=10.0):
    out = []
    for n, amount in enumerate(renewal_amounts):
        out.append(deal_dict(deal_type="renewal", plan_id=plan, acv=renewal_acv,
                             account_id=f"r-{plan}-{n}", days=days + n,
                             commission={"amount": amount, "paid_upfront": 0.0}))
    for n, amount in enumerate(new_logo_amounts):
        out.append(deal_dict(deal_type="new_logo", plan_id=plan, acv=new_logo_acv,
                             account_id=f"n-{plan}-{n}", days=days + n,
                             commission={"amount": amount, "paid_upfront": 0.0}))
    return out


def test_fires_with_three_and_three_when_renewals_pay_far_less(rules):
    alerts = run(rules, _deals([100.0] * 3, [1000.0] * 3)).of(RULE)
    [alert] = alerts
    assert alert.kind == "aggregate"
    assert alert.severity == "warning"
    assert alert.group_by == "plan_id"
    assert alert.group == "plan-x"
    assert alert.period == "2026-Q1"
    assert alert.event_time == "2026-04-01T00:00:00Z"
    assert alert.value == pytest.approx(0.1)
    assert alert.threshold == 0.3
    assert alert.at_risk == 0
    assert alert.team is None
    assert alert.deal_id is None


@pytest.mark.parametrize(("renewals", "new_logos", "fires"),
                         [(2, 3, False), (3, 2, False), (2, 2, False), (3, 3, True),
                          (4, 5, True), (0, 3, False)])
def test_minimum_deal_counts(rules, renewals, new_logos, fires):
    alerts = run(rules, _deals([100.0] * renewals, [1000.0] * new_logos)).of(RULE)
    assert len(alerts) == (1 if fires else 0)


@pytest.mark.parametrize(("renewal_amount", "fires"),
                         [(299.99, True), (299.0, True), (300.0, False), (300.01, False)])
def test_threshold_is_strictly_below_point_three(rules, renewal_amount, fires):
    # New logos earn 1.0 per unit of ACV, renewals renewal_amount / 1000: value is exact.
    alerts = run(rules, _deals([renewal_amount] * 3, [1000.0] * 3)).of(RULE)
    assert len(alerts) == (1 if fires else 0)
    if fires:
        assert alerts[0].value == pytest.approx(renewal_amount / 1000.0)


def test_value_uses_sums_not_an_average_of_rates(rules):
    # renewal: (10 + 10 + 280) / (100 + 100 + 1000) = 0.25; new logos 3000 / 3000 = 1
    deals = [
        deal_dict(deal_type="renewal", plan_id="p", acv=100.0, account_id="r1",
                  commission={"amount": 10.0}),
        deal_dict(deal_type="renewal", plan_id="p", acv=100.0, account_id="r2",
                  commission={"amount": 10.0}),
        deal_dict(deal_type="renewal", plan_id="p", acv=1000.0, account_id="r3",
                  commission={"amount": 280.0}),
        *[deal_dict(deal_type="new_logo", plan_id="p", acv=1000.0, account_id=f"n{i}",
                    commission={"amount": 1000.0}) for i in range(3)],
    ]
    [alert] = run(rules, deals).of(RULE)
    assert alert.value == pytest.approx(0.25)


def test_expansions_are_not_counted(rules):
    deals = _deals([100.0] * 2, [1000.0] * 3) + [
        deal_dict(deal_type="expansion", plan_id="plan-x", account_id=f"e{i}",
                  commission={"amount": 1.0}) for i in range(3)]
    assert run(rules, deals).of(RULE) == []


@pytest.mark.parametrize(
    "kw",
    [
        {"renewal_acv": 0.0},  # renewal rate has a zero denominator
        {"new_logo_acv": 0.0},  # new logo rate has a zero denominator
    ],
)
def test_zero_acv_gives_no_alert(rules, kw):
    assert run(rules, _deals([100.0] * 3, [1000.0] * 3, **kw)).of(RULE) == []


def test_zero_new_logo_commission_gives_no_alert(rules):
    # The ratio's denominator (new logo rate) is 0.
    assert run(rules, _deals([100.0] * 3, [0.0] * 3)).of(RULE) == []


def test_zero_renewal_commission_fires_with_value_zero(rules):
    [alert] = run(rules, _deals([0.0] * 3, [1000.0] * 3)).of(RULE)
    assert alert.value == 0.0


def test_groups_by_plan(rules):
    deals = _deals([100.0] * 3, [1000.0] * 3, plan="p1") + _deals([100.0] * 2, [1000.0] * 3,
                                                                 plan="p2")
    alerts = run(rules, deals).of(RULE)
    assert [a.group for a in alerts] == ["p1"]


def test_deals_of_different_quarters_do_not_add_up(rules):
    deals = _deals([100.0] * 3, [1000.0] * 2, days=10.0) + _deals([], [1000.0], days=100.0)
    assert run(rules, deals).of(RULE) == []
